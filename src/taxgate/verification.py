"""The whole store verified against its ledger: `taxgate ledger verify`.

One walk over the entries recomputes the log (every leaf hash, tile and checkpoint, and the
checkpoints someone kept outside the store) and, beside it, every row each package binds to an
entry (`BINDINGS`): entry without row, row without entry, any field that differs, any value of the
wrong type. This module only gathers the bindings; each package says what its entries record.

A large ledger is walked by two processes at once (the machine has two cores): one recomputes the
log and checks the first third of the rows, the other checks the rest. Both stop at the size read
when the walk began; what was appended meanwhile is checked against its rows at the end, in one
snapshot, so appends going on beside a verify are never findings.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

from sqlalchemy import func, select, text

from taxgate import accounts, notices, orders, remediation, review
from taxgate.ledger import Finding, KeptCheckpoint, LedgerError, RowCheck, verify_log
from taxgate.ledger.log import raw
from taxgate.ledger.verify import tile_widths, walk_entries
from taxgate.processes import Workers
from taxgate.release import entries
from taxgate.store import Store, open_store
from taxgate.store.models import LedgerEntry, LedgerHead

BINDINGS = (
    *entries.BINDINGS,
    *orders.BINDINGS,
    *notices.BINDINGS,
    *review.BINDINGS,
    *remediation.BINDINGS,
    *accounts.BINDINGS,
)
PARALLEL_FROM = 200_000  # entries; below this, starting a second process costs more than it saves
KEPT_PER_JOB = 10_000  # findings a job hands back; the rest are counted


@contextmanager
def snapshot(store: Store):
    """One connection that sees one state of the store for the whole walk, and locks out nobody:
    a deferred read on SQLite (WAL), a read-only repeatable-read transaction on PostgreSQL."""
    with store.engine.connect() as connection:
        connection = connection.execution_options(taxgate_read_only=True)
        if store.dialect == "postgresql":
            connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            _lenient_moments(connection.connection.dbapi_connection)
        else:  # text that is not UTF-8 is read (and found to differ), not a crash in the driver
            dbapi = connection.connection.dbapi_connection
            dbapi.text_factory = _lenient_text
        connection.execute(text("SELECT 1"))  # the transaction, and its snapshot, begin here
        try:
            yield connection
        finally:
            connection.rollback()
            if store.dialect != "postgresql":
                dbapi.text_factory = str
            else:
                connection.invalidate()  # its lenient loader stays with it: it is not given to anyone else


def _lenient_text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _lenient_moments(dbapi) -> None:
    """On PostgreSQL a moment Python cannot hold ('infinity', year 10000) is read as its text, to be
    found wrong, rather than failing inside the driver."""
    import psycopg
    from psycopg.types.datetime import TimestamptzLoader

    class Lenient(TimestamptzLoader):
        def load(self, data):
            try:
                return super().load(data)
            except psycopg.DataError:
                return bytes(data).decode("utf-8", "replace")

    dbapi.adapters.register_loader("timestamptz", Lenient)


def _size(connection) -> int | None:
    size = connection.execute(
        select(raw(LedgerHead.size)).where(LedgerHead.id == 1)
    ).scalar_one_or_none()
    return size if type(size) is int and size >= 0 else None


def verify_store(
    store: Store,
    verifier_key: str,
    kept: Sequence[KeptCheckpoint] = (),
    chunk: int = 50_000,
    workers: int | None = None,
    checkpoints_at_least: int = 0,
) -> Iterator[Finding]:
    """Every finding about the ledger and the rows bound to it; `checkpoints_at_least`: how many
    checkpoints the signer's record says the store held (fewer is a finding)."""
    workers = workers if workers is not None else min(2, len(os.sched_getaffinity(0)))
    with snapshot(store) as connection:
        size = _size(connection)
        if size is None or size < PARALLEL_FROM or workers < 2:
            rows = RowCheck(connection, BINDINGS, chunk)
            yield from verify_log(
                connection,
                verifier_key,
                kept,
                visit=rows.visit,
                chunk=chunk,
                checkpoints_at_least=checkpoints_at_least,
            )
            if (
                size is not None and rows.last == size - 1
            ):  # the walk reached the end: rows beyond it are findings
                yield from rows.finish(size)
            return
    url = store.engine.url.render_as_string(hide_password=False)
    # The log's own walk costs about 0.28 of checking every row (profiled at 1M entries): the
    # first process walks it and checks the rows below the cut, the second the rest, evenly.
    cut = size * 36 // 100
    with Workers(2) as pool:
        jobs = [
            pool.submit(
                _log_and_first_rows,
                url,
                verifier_key,
                tuple(kept),
                size,
                cut,
                chunk,
                checkpoints_at_least,
            ),
            pool.submit(_rows, url, cut, size, chunk),
        ]
        for job in jobs:
            try:
                found, more = job.result()
            except BrokenProcessPool as exc:
                raise LedgerError(
                    f"a verifying process stopped before it finished ({exc}): nothing was "
                    "verified; run again, or with one process (--workers 1)"
                ) from None
            yield from found
            if more:
                yield Finding(None, f"{more:,} more findings of the same walk are not listed")
    with snapshot(store) as connection:  # what was appended while the walk went on
        now = _size(connection) or size
        beyond = RowCheck(connection, BINDINGS, chunk, lo=size)
        yield from walk_entries(connection, size, now, beyond.visit, chunk)
        yield from beyond.finish(now)
        yield from tile_widths(connection, now)
        past = connection.execute(
            select(func.min(LedgerEntry.idx)).where(LedgerEntry.idx >= now)
        ).scalar_one_or_none()
        if past is not None:
            yield Finding(
                past,
                f"ledger_entries row {past}: entry {past} lies past the ledger's end ({now:,}): it "
                "was inserted outside the ledger",
            )


def _kept(found: Iterator[Finding]) -> tuple[list[Finding], int]:
    kept, more = [], 0
    for finding in found:
        if len(kept) < KEPT_PER_JOB:
            kept.append(finding)
        else:
            more += 1
    return kept, more


def _log_and_first_rows(
    url: str, verifier_key: str, kept: tuple, size: int, cut: int, chunk: int, at_least: int
):
    """In a worker: the log's first `size` entries recomputed, and the rows naming entries below `cut`."""
    store = open_store(url, upgrade=False)
    try:
        with snapshot(store) as connection:
            rows = RowCheck(connection, BINDINGS, chunk, hi=cut)
            found = list(
                verify_log(
                    connection,
                    verifier_key,
                    kept,
                    visit=rows.visit,
                    chunk=chunk,
                    size=size,
                    checkpoints_at_least=at_least,
                    visit_below=cut,
                )
            )
            if rows.last == cut - 1:
                found.extend(rows.finish(cut))
            return _kept(iter(found))
    finally:
        store.close()


def _rows(url: str, lo: int, hi: int, chunk: int):
    """In a worker: the rows naming entries in [lo, hi), against those entries."""
    store = open_store(url, upgrade=False)
    try:
        with snapshot(store) as connection:
            rows = RowCheck(connection, BINDINGS, chunk, lo=lo, hi=hi)
            found = list(walk_entries(connection, lo, hi, rows.visit, chunk))
            found.extend(rows.finish(hi))
            return _kept(iter(found))
    finally:
        store.close()
