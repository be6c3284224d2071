"""the service under attack: who changed access (ledgered account events), every read of taxpayer
data (IRS Pub. 1075 audit records), rate limits shared by every server on the store, worker leases
and attempts on submissions, repeated refusals counted instead of added

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 12:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'account_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('event', sa.String(length=32), nullable=False),
        sa.Column('username', sa.String(length=64), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('token_id', sa.Integer(), nullable=True),
        sa.Column('actor', sa.String(length=200), nullable=False),
        sa.Column('via', sa.String(length=16), nullable=False),
        sa.Column('ledger_index', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('ledger_index'),
    )
    op.create_index(op.f('ix_account_events_username'), 'account_events', ['username'], unique=False)
    op.create_table(
        'data_reads',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('username', sa.String(length=64), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('event', sa.String(length=32), nullable=False),
        sa.Column('object', sa.String(length=200), nullable=False),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.Column('origin', sa.String(length=64), nullable=False),
        sa.Column('detail', sa.Text(), server_default='', nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_data_reads_at'), 'data_reads', ['at'], unique=False)
    op.create_index(op.f('ix_data_reads_username'), 'data_reads', ['username'], unique=False)
    op.create_table(
        'rate_counts',
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('second', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('hits', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('key', 'second'),
    )
    with op.batch_alter_table('submissions') as batch_op:
        batch_op.add_column(sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('lease_owner', sa.String(length=64), server_default='', nullable=False))
        batch_op.add_column(sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('access_refusals') as batch_op:
        batch_op.add_column(sa.Column('repeats', sa.Integer(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('last_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('access_refusals') as batch_op:
        batch_op.drop_column('last_at')
        batch_op.drop_column('repeats')
    with op.batch_alter_table('submissions') as batch_op:
        batch_op.drop_column('lease_until')
        batch_op.drop_column('lease_owner')
        batch_op.drop_column('attempts')
    op.drop_table('rate_counts')
    op.drop_index(op.f('ix_data_reads_username'), table_name='data_reads')
    op.drop_index(op.f('ix_data_reads_at'), table_name='data_reads')
    op.drop_table('data_reads')
    op.drop_index(op.f('ix_account_events_username'), table_name='account_events')
    op.drop_table('account_events')
