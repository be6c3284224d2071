"""notices by batch and order

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 20:29:22.493324
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('batch_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('order_id', sa.Integer(), nullable=True))
        batch_op.create_unique_constraint('uq_notices_kind_batch_order', ['kind', 'batch_id', 'order_id'])
        batch_op.create_foreign_key('fk_notices_batch', 'batches', ['batch_id'], ['id'])
        batch_op.create_foreign_key('fk_notices_order', 'orders', ['order_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.drop_constraint('fk_notices_order', type_='foreignkey')
        batch_op.drop_constraint('fk_notices_batch', type_='foreignkey')
        batch_op.drop_constraint('uq_notices_kind_batch_order', type_='unique')
        batch_op.drop_column('order_id')
        batch_op.drop_column('batch_id')
