"""witnesses' cosignatures; every row bound to its ledger entry: the index of each later event on a
row (a lift, a sending, a certification, a closing), held items ledgered, what batches and orders
rows lacked of their entries (the signer's name, when an order was recorded)

Rows recorded before this revision get their new columns from the ledger entries that already
record them. Two things cannot be filled in that way, and `taxgate ledger verify` reports them:
held items (no entry recorded them before this revision) and the fields that decision and
disclosure entries carry from now on (the requested TIN, the evidence's SHA-256, the time of
release). A store that must verify row by row is started afresh.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 09:00:00
"""

import json
from datetime import datetime

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

def upgrade() -> None:
    with op.batch_alter_table('batches') as batch_op:
        batch_op.add_column(sa.Column('signed_by', sa.String(length=200), server_default='', nullable=False))
    with op.batch_alter_table('orders') as batch_op:
        batch_op.add_column(sa.Column('added_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('lifted_index', sa.BigInteger(), nullable=True))
        batch_op.create_unique_constraint('uq_orders_lifted_index', ['lifted_index'])
    with op.batch_alter_table('notices') as batch_op:
        batch_op.add_column(sa.Column('sent_index', sa.BigInteger(), nullable=True))
        batch_op.create_unique_constraint('uq_notices_sent_index', ['sent_index'])
    with op.batch_alter_table('held_items') as batch_op:
        batch_op.add_column(sa.Column('ledger_index', sa.BigInteger(), nullable=True))
        batch_op.create_unique_constraint('uq_held_items_ledger_index', ['ledger_index'])
    with op.batch_alter_table('incidents') as batch_op:
        batch_op.add_column(sa.Column('certified_index', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('closed_index', sa.BigInteger(), nullable=True))
        batch_op.create_unique_constraint('uq_incidents_certified_index', ['certified_index'])
        batch_op.create_unique_constraint('uq_incidents_closed_index', ['closed_index'])
    op.create_table('ledger_cosignatures',
    sa.Column('size', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('witness', sa.String(length=200), nullable=False),
    sa.Column('line', sa.Text(), nullable=False),
    sa.Column('cosigned_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('size', 'witness')
    )
    _fill_from_the_ledger(op.get_bind())


def _fill_from_the_ledger(connection) -> None:
    """Each row's new columns from the entries that record it."""
    later = []
    rows = connection.execute(sa.text("SELECT idx, entry FROM ledger_entries ORDER BY idx"))
    for idx, raw in rows:
        try:
            entry = json.loads(bytes(raw))
        except (TypeError, ValueError):
            continue  # verify names it
        if isinstance(entry, dict):
            later.append((idx, entry.get("kind"), entry))
    updates = {
        "batch_received": "UPDATE batches SET signed_by = :by WHERE received_index = :i",
        "order_added": "UPDATE orders SET added_at = :at WHERE ledger_index = :i",
        "order_lifted": "UPDATE orders SET lifted_index = :i WHERE ledger_index = :ref",
        "notice_sent": "UPDATE notices SET sent_index = :i WHERE ledger_index = :ref",
        "disposal_certified": "UPDATE incidents SET certified_index = :i WHERE ledger_index = :ref",
        "incident_closed": "UPDATE incidents SET closed_index = :i WHERE ledger_index = :ref",
    }
    moment = sa.bindparam("at", type_=sa.DateTime(timezone=True))
    for idx, kind, entry in later:
        if kind not in updates:
            continue
        ref = entry.get("order_entry", entry.get("notice_entry", entry.get("incident_entry")))
        at = datetime.fromisoformat(entry["at"]) if isinstance(entry.get("at"), str) else None
        statement = sa.text(updates[kind])
        if ":at" in updates[kind]:
            statement = statement.bindparams(moment)
        connection.execute(statement, {"i": idx, "ref": ref, "by": entry.get("signed_by", ""), "at": at})


def downgrade() -> None:
    op.drop_table('ledger_cosignatures')
    with op.batch_alter_table('incidents') as batch_op:
        batch_op.drop_constraint('uq_incidents_closed_index', type_='unique')
        batch_op.drop_constraint('uq_incidents_certified_index', type_='unique')
        batch_op.drop_column('closed_index')
        batch_op.drop_column('certified_index')
    with op.batch_alter_table('held_items') as batch_op:
        batch_op.drop_constraint('uq_held_items_ledger_index', type_='unique')
        batch_op.drop_column('ledger_index')
    with op.batch_alter_table('notices') as batch_op:
        batch_op.drop_constraint('uq_notices_sent_index', type_='unique')
        batch_op.drop_column('sent_index')
    with op.batch_alter_table('orders') as batch_op:
        batch_op.drop_constraint('uq_orders_lifted_index', type_='unique')
        batch_op.drop_column('lifted_index')
        batch_op.drop_column('added_at')
    with op.batch_alter_table('batches') as batch_op:
        batch_op.drop_column('signed_by')
