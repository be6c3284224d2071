"""the statute across batches: each batch's place in its requester's history and its requests' keys
(request id, person and case, officer and case, reason text), registered before it is decided, so
that later batches of the agency are judged against them

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


def _keys(name: str, *columns: sa.Column, key: tuple[str, ...]) -> None:
    op.create_table(name, *columns, sa.PrimaryKeyConstraint(*key), sqlite_with_rowid=False)


def upgrade() -> None:
    op.create_table(
        'history_scopes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('scope', sa.String(length=120), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('scope'),
    )
    op.create_table(
        'history_batches',
        sa.Column('batch_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('scope', sa.String(length=120), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('as_of', sa.String(length=10), nullable=False),
        sa.Column('received', sa.String(length=10), nullable=False),
        sa.Column('requests', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['batch_id'], ['batches.id'], name='fk_history_batches_batch'),
        sa.PrimaryKeyConstraint('batch_id'),
        sa.UniqueConstraint('scope', 'seq'),
    )
    for name in ('history_request_ids', 'history_person_cases'):
        _keys(name, sa.Column('scope', sa.BigInteger(), autoincrement=False, nullable=False),
              sa.Column('key', sa.BigInteger(), autoincrement=False, nullable=False),
              sa.Column('batch_id', sa.Integer(), autoincrement=False, nullable=False),
              sa.Column('row_number', sa.Integer(), autoincrement=False, nullable=False),
              key=('scope', 'key', 'batch_id', 'row_number'))
    _keys('history_official_cases', sa.Column('scope', sa.BigInteger(), autoincrement=False, nullable=False),
          sa.Column('official_key', sa.BigInteger(), autoincrement=False, nullable=False),
          sa.Column('case_key', sa.BigInteger(), autoincrement=False, nullable=False),
          sa.Column('batch_id', sa.Integer(), autoincrement=False, nullable=False),
          key=('scope', 'official_key', 'case_key', 'batch_id'))
    _keys('history_reasons', sa.Column('scope', sa.BigInteger(), autoincrement=False, nullable=False),
          sa.Column('relevance_key', sa.BigInteger(), autoincrement=False, nullable=False),
          sa.Column('batch_id', sa.Integer(), autoincrement=False, nullable=False),
          sa.Column('uses', sa.Integer(), nullable=False),
          key=('scope', 'relevance_key', 'batch_id'))
    op.create_table(
        'history_officers',
        sa.Column('scope', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('official_key', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint('scope', 'official_key'),
    )


def downgrade() -> None:
    for name in ('history_officers', 'history_reasons', 'history_official_cases', 'history_person_cases',
                 'history_request_ids', 'history_batches', 'history_scopes'):
        op.drop_table(name)
