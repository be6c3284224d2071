"""The whole store verified against its ledger: `taxgate ledger verify`.

One pass over the entries recomputes the log (every leaf hash, tile and checkpoint, and the
checkpoints someone kept outside the store) and, beside it, every row each package binds to an
entry (`BINDINGS`): entry without row, row without entry, any field that differs, any value of the
wrong type. This module only gathers the bindings; each package says what its entries record.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import text

from taxgate import notices, orders, remediation, review
from taxgate.ledger import Finding, KeptCheckpoint, RowCheck, verify_log
from taxgate.release import entries
from taxgate.store import Store

BINDINGS = (*entries.BINDINGS, *orders.BINDINGS, *notices.BINDINGS, *review.BINDINGS, *remediation.BINDINGS)


@contextmanager
def snapshot(store: Store):
    """One connection that sees one state of the store for the whole walk, and locks out nobody:
    a deferred read on SQLite (WAL), a read-only repeatable-read transaction on PostgreSQL."""
    with store.engine.connect() as connection:
        connection = connection.execution_options(taxgate_read_only=True)
        if store.dialect == "postgresql":
            connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        try:
            yield connection
        finally:
            connection.rollback()


def verify_store(store: Store, verifier_key: str, kept: Sequence[KeptCheckpoint] = (),
                 chunk: int = 50_000) -> Iterator[Finding]:
    """Every finding about the ledger and the rows bound to it, in ledger order."""
    with snapshot(store) as connection:
        rows = RowCheck(connection, BINDINGS, chunk)
        yield from verify_log(connection, verifier_key, kept, visit=rows.visit, chunk=chunk)
        size = connection.execute(text("SELECT size FROM ledger_head WHERE id = 1")).scalar_one_or_none()
        if isinstance(size, int) and rows.last == size - 1:  # the walk reached the end: rows beyond it are findings
            yield from rows.finish(size)
