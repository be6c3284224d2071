"""the statute across batches: each request's keys (request id, person and case, officer, case,
reason text), registered before its batch is decided, so that later batches of the agency are
judged against them

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 15:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'request_keys',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('batch_id', sa.Integer(), nullable=False),
        sa.Column('row_number', sa.Integer(), nullable=False),
        sa.Column('scope', sa.String(length=120), nullable=False),
        sa.Column('as_of', sa.String(length=10), nullable=False),
        sa.Column('request_key', sa.BigInteger(), nullable=True),
        sa.Column('person_case_key', sa.BigInteger(), nullable=True),
        sa.Column('official_key', sa.BigInteger(), nullable=True),
        sa.Column('case_key', sa.BigInteger(), nullable=True),
        sa.Column('relevance_key', sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(['batch_id'], ['batches.id'], name='fk_request_keys_batch'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('batch_id', 'row_number'),
    )
    op.create_index('ix_request_keys_request', 'request_keys', ['scope', 'request_key'])
    op.create_index('ix_request_keys_person_case', 'request_keys', ['scope', 'person_case_key'])
    op.create_index('ix_request_keys_official', 'request_keys', ['scope', 'official_key', 'as_of', 'case_key'])
    op.create_index('ix_request_keys_relevance', 'request_keys', ['scope', 'relevance_key', 'as_of'])


def downgrade() -> None:
    op.drop_table('request_keys')
