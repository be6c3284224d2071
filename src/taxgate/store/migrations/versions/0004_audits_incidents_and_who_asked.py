"""audits, incidents, and who asked

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 20:59:20.618574
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('rule_set_version', sa.String(length=64), nullable=False),
    sa.Column('policy_version', sa.String(length=64), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=False),
    sa.Column('run_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('audited', sa.Integer(), nullable=False),
    sa.Column('not_made', sa.Integer(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('ledger_index', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['batches.id'], name='fk_audits_batch'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ledger_index')
    )
    with op.batch_alter_table('audits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audits_batch_id'), ['batch_id'], unique=False)

    op.create_table('incidents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('audit_id', sa.Integer(), nullable=False),
    sa.Column('agency', sa.String(length=64), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('disposal_certified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('disposal_certified_by', sa.String(length=200), server_default='', nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ledger_index', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['audit_id'], ['audits.id'], name='fk_incidents_audit'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('audit_id'),
    sa.UniqueConstraint('ledger_index')
    )
    op.create_table('audit_findings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('audit_id', sa.Integer(), nullable=False),
    sa.Column('disclosure_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('path', sa.String(length=16), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('reasons', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['audit_id'], ['audits.id'], name='fk_findings_audit'),
    sa.ForeignKeyConstraint(['disclosure_id'], ['disclosures.id'], name='fk_findings_disclosure'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_findings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_findings_audit_id'), ['audit_id'], unique=False)

    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('official', sa.String(length=200), server_default='', nullable=False))
        batch_op.add_column(sa.Column('case_number', sa.String(length=200), server_default='', nullable=False))

    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('incident_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('tin', sa.String(length=16), server_default='', nullable=False))
        batch_op.create_unique_constraint('uq_notices_kind_incident_tin', ['kind', 'incident_id', 'tin'])
        batch_op.create_foreign_key('fk_notices_incident', 'incidents', ['incident_id'], ['id'])



def downgrade() -> None:
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.drop_constraint('fk_notices_incident', type_='foreignkey')
        batch_op.drop_constraint('uq_notices_kind_incident_tin', type_='unique')
        batch_op.drop_column('tin')
        batch_op.drop_column('incident_id')

    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.drop_column('case_number')
        batch_op.drop_column('official')

    with op.batch_alter_table('audit_findings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_findings_audit_id'))

    op.drop_table('audit_findings')
    op.drop_table('incidents')
    with op.batch_alter_table('audits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audits_batch_id'))

    op.drop_table('audits')
