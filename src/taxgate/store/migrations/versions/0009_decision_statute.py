"""each decision keeps the statute its request cites (the purpose the § 6103(p)(3)(A) accounting
states), ledgered in the decision's entry when the request cites one; a lifted order keeps who
lifted it, on what authority and why, ledgered in its lift

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 18:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('decisions') as batch:
        batch.add_column(sa.Column('statute', sa.Text(), nullable=False, server_default=''))
    with op.batch_alter_table('orders') as batch:
        batch.add_column(sa.Column('lifted_by', sa.String(length=200), nullable=False, server_default=''))
        batch.add_column(sa.Column('lifted_authority', sa.String(length=200), nullable=False, server_default=''))
        batch.add_column(sa.Column('lifted_reason', sa.Text(), nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('orders') as batch:
        for column in ('lifted_reason', 'lifted_authority', 'lifted_by'):
            batch.drop_column(column)
    with op.batch_alter_table('decisions') as batch:
        batch.drop_column('statute')
