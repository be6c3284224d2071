"""The tables follow the ledger: each row that records an event is bound to the entry it records.

A `Binding` says, for one kind of entry, which table's rows record it (the column holding the
entry's index, the row's fields) and how to build, from a row, the entry it must equal byte for
byte. `RowCheck` walks the entries beside every binding's rows, all ordered by index, in the same
pass as the log's own verification: an entry whose row is missing, a row whose entry is missing or
of another kind, a field that differs, a value stored with the wrong type, two rows claiming one
entry: each is one finding naming the entry, the table and the row. `checked_row` does the same for
one row, for code about to act on it (a release reads nothing the ledger does not say).
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement, FromClause

from taxgate.ledger import merkle
from taxgate.ledger.log import Finding, LedgerError, canonical, is_int, loads, raw, stream
from taxgate.store.models import LedgerEntry


class TamperedError(LedgerError):
    """The store disagrees with its ledger where an action would rely on it: nothing is done."""

    def __init__(self, finding: str):
        super().__init__(
            f"the store disagrees with its ledger: {finding}; nothing is done until "
            "`taxgate ledger verify` passes"
        )


# What a field may hold, as the driver hands it over (SQLite keeps moments as text).
_TYPES = {
    "int": (int,),
    "int?": (int, type(None)),
    "str": (str,),
    "str?": (str, type(None)),
    "real?": (float, int, type(None)),
    "moment": (datetime, str),
    "moment?": (datetime, str, type(None)),
    "bool": (bool, int),
}


@dataclass(frozen=True)
class Field:
    name: str
    column: ColumnElement
    kind: str = "str"


@dataclass(frozen=True)
class Binding:
    kind: str  # the entry kind
    table: str  # the table whose rows record it
    index: ColumnElement  # the column holding the entry's index
    key: ColumnElement  # the row's identity, for findings
    fields: tuple[Field, ...]
    entry: Callable[
        [dict, object], dict
    ]  # the entry a row records, from its fields (and `prepare`'s context)
    source: FromClause | None = None  # the table, with joins for fields from other tables
    present: ColumnElement | None = None  # which rows record such an entry (default: every row)
    describe: Callable[[dict], str] = lambda row: ""
    check: Callable[[dict], str | None] | None = None  # an invariant of the row beyond its entry
    prepare: Callable[[Connection], object] | None = None  # context read once, for `entry`
    types: tuple = field(init=False, repr=False, compare=False)
    names: tuple = field(init=False, repr=False, compare=False)
    moments: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:  # worked out once: a full verify reads millions of rows
        object.__setattr__(self, "types", tuple(_TYPES[f.kind] for f in self.fields))
        object.__setattr__(self, "names", tuple(f.name for f in self.fields))
        object.__setattr__(
            self, "moments", tuple(f.name for f in self.fields if f.kind.startswith("moment"))
        )

    def query(self, *where):
        columns = [raw(self.index).label("_index"), raw(self.key).label("_key")]
        columns += [raw(f.column).label(f.name) for f in self.fields]
        query = select(*columns)
        if self.source is not None:
            query = query.select_from(self.source)
        if self.present is not None:
            query = query.where(self.present)
        return query.where(*where)

    def name(self, key, row: dict | None) -> str:
        detail = self.describe(row) if row else ""
        return f"{self.table} row {key}" + (f" ({detail})" if detail else "")


def moment(value) -> datetime:
    """A moment as stored (a datetime, or SQLite's text), in UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def at(value) -> str | None:
    """A moment as entries write it: UTC, to the second."""
    return None if value is None else moment(value).astimezone(UTC).isoformat(timespec="seconds")


def _read(binding: Binding, values: tuple) -> tuple[dict | None, str | None]:
    """A row's fields, type-checked; (None, what is wrong) for a value of the wrong type."""
    if not all(map(isinstance, values, binding.types)):
        for f, value, allowed in zip(binding.fields, values, binding.types):
            if not isinstance(value, allowed):
                return (
                    None,
                    f"{f.name} is stored as {type(value).__name__} ({value!r:.40}), not {f.kind.rstrip('?')}",
                )
    row = dict(zip(binding.names, values))
    for name in binding.moments:
        if row[name] is not None:
            try:
                row[name] = moment(row[name])
            except (ValueError, TypeError, OverflowError):
                return None, f"{name} is stored as {row[name]!r:.40}, not a moment"
    return row, None


def _differences(expected: dict, blob: bytes) -> str:
    try:
        found = loads(blob)
    except ValueError:
        return "the entry is not JSON"
    if not isinstance(found, dict):
        return "the entry is not a JSON object"
    if found.get("kind") != expected.get("kind"):
        return f"it is a {found.get('kind')!r} entry, not a {expected.get('kind')!r} one"
    changed = list(_changed(found, expected, ""))
    if not changed:
        return "they differ in encoding"
    return "; ".join(
        f"{path} is {_short(then)} in the ledger, {_short(now)} in the table"
        for path, then, now in changed[:3]
    ) + (f" (and {len(changed) - 3} more)" if len(changed) > 3 else "")


def _changed(ledgered: dict, table: dict, prefix: str):
    """(path, ledgered value, table value) of each field that differs, nested objects by path."""
    for key in sorted(set(ledgered) | set(table)):
        then, now = ledgered.get(key, "<absent>"), table.get(key, "<absent>")
        if then == now:
            continue
        if isinstance(then, dict) and isinstance(now, dict):
            yield from _changed(then, now, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", then, now


def _short(value) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _expected(binding: Binding, row: dict, context) -> tuple[bytes | None, str | None]:
    try:
        return canonical(binding.entry(row, context), checked=False), None
    except (
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        OverflowError,
        RecursionError,
    ) as exc:  # a stored value that cannot be an entry's
        return None, f"its fields cannot make an entry ({type(exc).__name__}: {str(exc)[:80]})"


class _Stream:
    """One binding's rows naming entries in [lo, hi), by index, with the findings met on the way
    (rows that cannot be read; with `lo` None also rows naming no entry or a negative one)."""

    def __init__(
        self,
        binding: Binding,
        connection: Connection,
        lo: int | None,
        hi: int | None,
        chunk: int,
        findings: list[Finding],
    ):
        self.binding, self.connection, self.findings = binding, connection, findings
        where = []
        if lo is not None:
            where.append(binding.index >= lo)
        if hi is not None:  # with no lower bound, rows naming no entry (NULL) are this range's too
            where.append(
                binding.index < hi
                if lo is not None
                else or_(binding.index < hi, binding.index.is_(None))
            )
        self.rows = stream(connection, binding.query(*where).order_by(binding.index), chunk)
        self._context, self._prepared = None, binding.prepare is None

    @property
    def context(self):
        """What `prepare` reads, read once and only if a row needs it."""
        if not self._prepared:
            self._context, self._prepared = self.binding.prepare(self.connection), True
        return self._context

    def next(self) -> tuple[int, object, dict | None, str | None] | None:
        """(index, key, fields or None, what is wrong) of the next row that names an entry."""
        b = self.binding
        for index, key, *values in self.rows:
            row, wrong = _read(b, values)
            if index is None:
                self.findings.append(
                    Finding(
                        None,
                        f"{b.name(key, row)} records a {b.kind!r} event that no ledger "
                        "entry records",
                    )
                )
                continue
            if not is_int(index):
                self.findings.append(
                    Finding(
                        None,
                        f"{b.name(key, row)}: its ledger index is stored as "
                        f"{type(index).__name__} {index!r:.40}, not a number",
                    )
                )
                continue
            return index, key, row, wrong
        return None


class RowCheck:
    """The rows of every binding that name entries in [lo, hi) (None: unbounded), checked against
    the entries as a walk over them passes (`visit`, in index order)."""

    def __init__(
        self,
        connection: Connection,
        bindings: Sequence[Binding],
        chunk: int = 50_000,
        lo: int | None = None,
        hi: int | None = None,
    ):
        self.findings: list[Finding] = []  # met while reading rows, yielded at the next entry
        self.streams = [_Stream(b, connection, lo, hi, chunk, self.findings) for b in bindings]
        self.kinds = {b.kind: b.table for b in bindings}
        self.heap: list[tuple[int, int, tuple]] = []
        self.last = -1  # the last entry visited
        for number in range(len(self.streams)):
            self._push(number)

    def _push(self, number: int) -> None:
        found = self.streams[number].next()
        if found is not None:
            heapq.heappush(self.heap, (found[0], number, found))

    def _pending(self) -> Iterator[Finding]:
        yield from self.findings
        self.findings.clear()

    def visit(self, idx: int, blob: bytes) -> list[Finding]:
        """The findings about entry `idx` and the rows that claim it (usually none)."""
        self.last = idx
        heap = self.heap
        found: list[Finding] = []
        while heap and heap[0][0] < idx:  # a row naming an entry already claimed by another row
            _, number, (index, key, row, _) = heapq.heappop(heap)
            b = self.streams[number].binding
            found.append(
                Finding(
                    index,
                    f"{b.name(key, row)} names ledger entry {index}, which another row records or "
                    "which does not exist",
                )
            )
            self._push(number)
        claims = []
        while heap and heap[0][0] == idx:
            claims.append(heapq.heappop(heap))
        if not claims:
            found.extend(self._unclaimed(idx, blob))
        for position, (_, number, (_index, key, row, wrong)) in enumerate(claims):
            source = self.streams[number]
            b = source.binding
            if position:
                first = self.streams[claims[0][1]].binding
                found.append(
                    Finding(
                        idx,
                        f"{b.name(key, row)} and a {first.table} row both claim ledger entry {idx}",
                    )
                )
            elif wrong is not None:
                found.append(
                    Finding(idx, f"{b.name(key, row)} (ledger entry {idx}, {b.kind}): {wrong}")
                )
            else:
                expected, error = _expected(b, row, source.context)
                if error is not None:
                    found.append(
                        Finding(idx, f"{b.name(key, row)} (ledger entry {idx}, {b.kind}): {error}")
                    )
                elif expected != blob:
                    found.append(
                        Finding(
                            idx,
                            f"ledger entry {idx} ({b.kind}) and {b.name(key, row)} differ: "
                            f"{_differences(json.loads(expected), blob)}",
                        )
                    )
                elif b.check is not None and (problem := b.check(row)):
                    found.append(
                        Finding(
                            idx, f"{b.name(key, row)} (ledger entry {idx}, {b.kind}): {problem}"
                        )
                    )
            self._push(number)
        if self.findings:
            found.extend(self._pending())
        return found

    def _unclaimed(self, idx: int, blob: bytes) -> Iterator[Finding]:
        try:
            kind = loads(blob).get("kind")
        except (ValueError, AttributeError):
            yield Finding(idx, f"ledger entry {idx} is not a JSON object")
            return
        if kind in self.kinds:
            yield Finding(
                idx,
                f"ledger entry {idx} ({kind}) has no row in {self.kinds[kind]}: the row was deleted "
                "or re-pointed",
            )
        else:
            yield Finding(
                idx, f"ledger entry {idx} is a {kind!r} entry, which no table of taxgate's records"
            )

    def finish(self, size: int) -> Iterator[Finding]:
        yield from self._pending()
        while self.heap:
            _, number, (index, key, row, _) = heapq.heappop(self.heap)
            b = self.streams[number].binding
            yield Finding(
                index,
                f"{b.name(key, row)} names ledger entry {index}, but the ledger has {size:,} entries",
            )
            self._push(number)
            yield from self._pending()


def checked_row(connection: Connection, binding: Binding, key) -> dict:
    """One row's fields, after checking them against the entry it records (TamperedError if they
    differ, if the entry is missing, or if the entry does not match its leaf hash)."""
    found = checked_rows(connection, binding, binding.key == key)
    if not found:
        raise TamperedError(f"no {binding.table} row {key} records a {binding.kind!r} event")
    return found[0]


def checked_rows(connection: Connection, binding: Binding, *where) -> list[dict]:
    """The rows `where` selects, each checked against the entry it records, as `checked_row`."""
    rows = connection.execute(binding.query(*where).order_by(binding.index)).all()
    indexes = [index for index, *_ in rows if is_int(index)]
    wanted = set(indexes)  # rows recorded together name entries close together: one range read
    blobs = (
        {
            idx: (blob, leaf)
            for idx, blob, leaf in connection.execute(
                select(
                    raw(LedgerEntry.idx), raw(LedgerEntry.entry), raw(LedgerEntry.leaf_hash)
                ).where(LedgerEntry.idx.between(min(indexes), max(indexes)))
            )
            if idx in wanted
        }
        if indexes
        else {}
    )
    context = binding.prepare(connection) if binding.prepare and rows else None
    checked = []
    for index, key, *values in rows:
        row, wrong = _read(binding, values)
        name = binding.name(key, row)
        if wrong is not None:
            raise TamperedError(f"{name}: {wrong}")
        if not is_int(index):
            raise TamperedError(f"{name} names no ledger entry")
        blob, leaf = blobs.get(index, (None, None))
        if type(blob) is not bytes or type(leaf) is not bytes or merkle.leaf_hash(blob) != leaf:
            raise TamperedError(
                f"ledger entry {index}, which {name} records, is missing or altered"
            )
        expected, error = _expected(binding, row, context)
        if error is not None:
            raise TamperedError(f"{name}: {error}")
        if expected != blob:
            raise TamperedError(
                f"ledger entry {index} ({binding.kind}) and {name} differ: "
                f"{_differences(json.loads(expected), blob)}"
            )
        if binding.check is not None and (problem := binding.check(row)):
            raise TamperedError(f"{name} (ledger entry {index}, {binding.kind}): {problem}")
        checked.append(row)
    return checked
