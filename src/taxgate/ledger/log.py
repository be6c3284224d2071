"""The log in the store: entries, C2SP tiles, proofs and the stored checkpoints.

Entries are canonical JSON (`canonical`); entry i's leaf hash is SHA-256(0x00 || entry). Tree hashes
are kept as C2SP tlog-tiles (256 hashes of one tree height per tile), so a proof at ten million
entries reads a handful of rows. Appends happen inside the caller's transaction, so the rows that
record an event (a decision, a disclosure) and its ledger entry commit together or not at all.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import type_coerce
from sqlalchemy.types import NullType

from taxgate.ledger import merkle
from taxgate.ledger.checkpoint import Checkpoint, Signer
from taxgate.store import Store
from taxgate.store.bulk import driver_cursor, insert_rows
from taxgate.store.models import CheckpointRecord, LedgerEntry, LedgerHead, LedgerTile

ORIGIN = "taxgate.example/ledger"
TILE = 256  # hashes per tile; tile level L holds tree height 8 L
TILE_HEIGHT = 8
MAX_ENTRY = 0xFFFF


class LedgerError(ValueError):
    """A ledger request that cannot be met (an index past the end, say); one line for the user."""


_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(rb"[\[\]{}]")


def loads(text: str | bytes, depth: int = 64, **options):
    """JSON from the store or from someone else, refused (ValueError) past `depth` levels of
    nesting before it is parsed: Python's own limit answers with a RecursionError that CPython
    3.11 does not always recover from."""
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    level = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub(b"", data)):
        level += 1 if bracket in (b"[", b"{") else -1
        if level > depth:
            raise ValueError(f"JSON nested more than {depth} deep")
    return json.loads(text, **{"parse_constant": _not_json, "parse_float": _finite, **options})


def _not_json(constant: str):
    """NaN and Infinity are Python's extensions, not JSON (RFC 8259): a value that holds one is
    refused like any other text that is not JSON (and cannot pass for a null when re-encoded)."""
    raise ValueError(f"{constant} is not a JSON value")


def _finite(text: str) -> float:
    """A number past a float's range (1e400) is infinite once read, and orjson writes an infinite
    float as null: refused, as NaN is."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is past the range of a number")
    return value


def raw(column):
    """A column as the driver hands it over, unconverted: a value stored with the wrong type (text
    in a BLOB column, say) reaches the check that names it instead of failing inside a converter."""
    return type_coerce(column, NullType()).label(column.key)


def is_int(value) -> bool:
    return type(value) is int


def stream(connection, query, chunk: int = 50_000):
    """The rows of `query` as the driver hands them over, a chunk at a time, in the transaction of
    `connection` (begun): no per-row conversion, since a full verify reads tens of millions. On
    PostgreSQL a server-side cursor keeps memory bounded."""
    sql = str(query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    dbapi = connection.connection.dbapi_connection
    server_side = connection.dialect.name == "postgresql"
    named = {"name": f"taxgate_{uuid.uuid4().hex[:12]}"} if server_side else {}
    fast = connection.dialect.name == "sqlite" and dbapi.text_factory is not str
    done = 0
    try:
        with driver_cursor(connection, **named) as cursor:
            if server_side:
                cursor.itersize = chunk
            try:
                cursor.execute(sql)
                while rows := (
                    _fetch_utf8(cursor, dbapi, chunk) if fast else cursor.fetchmany(chunk)
                ):
                    yield from rows
                    done += len(rows)
                return
            except _UndecodableText:
                pass
        # Text that is not UTF-8 (altered): read again with the connection's lenient decoder,
        # past the rows already handed over (the snapshot holds still, the order is the query's).
        with driver_cursor(connection) as cursor:
            cursor.execute(sql)
            while done and (skipped := cursor.fetchmany(min(chunk, done))):
                done -= len(skipped)
            while rows := cursor.fetchmany(chunk):
                yield from rows
    except connection.dialect.loaded_dbapi.Error as exc:  # a value the driver cannot even read
        raise LedgerError(
            f"the store cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0]}): it was "
            "altered where the driver cannot follow"
        ) from None


class _UndecodableText(Exception):
    pass


def _fetch_utf8(cursor, dbapi, chunk: int) -> list:
    """A chunk read with SQLite's own UTF-8 decoding, not a Python decoder called for each value
    (a tenth of a verify's time, profiled); text that is not UTF-8 raises _UndecodableText."""
    lenient, dbapi.text_factory = dbapi.text_factory, str
    try:
        return cursor.fetchmany(chunk)
    except dbapi.OperationalError as exc:
        if "decode" in str(exc):
            raise _UndecodableText from None
        raise
    finally:
        dbapi.text_factory = lenient


def canonical(entry: dict, *, checked: bool = True) -> bytes:
    """RFC 8785 (JCS) bytes of an entry. Entries hold strings, integers, booleans, null, lists and
    objects, never floats (a weight is written as a decimal string), and for those JCS is exactly
    sorted keys, no spaces, UTF-8, the escapes JSON requires and no others: orjson writes exactly
    that, thirteen times faster than the standard library's encoder (a full verify re-encodes every
    row's entry), and tests check it against a JCS library and that encoder, byte for byte.
    `checked=False` skips the float check, for entries rebuilt by a binding from typed fields."""
    if checked:
        _no_floats(entry.values())
    return orjson.dumps(entry, option=_CANONICAL)


# Sorted keys; a datetime or a dataclass is refused (TypeError) as the standard encoder refuses it,
# never written in a form of orjson's choosing: an entry says in its own fields what a moment is.
_CANONICAL = (
    orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


def _no_floats(values) -> None:
    for value in values:
        kind = type(value)
        if kind is float:
            raise TypeError("ledger entries hold no floats: write the number as a decimal string")
        if kind is dict:
            _no_floats(value.values())
        elif kind is list:
            _no_floats(value)


@dataclass(frozen=True, slots=True)
class Finding:
    """Something `verify` found wrong: the entry it concerns (None when it is not one entry's) and
    one line that names the entry, the table and the row."""

    index: int | None
    message: str

    def __str__(self) -> str:
        return self.message


class _Tiles:
    """Tile reads for one proof or append, cached for its duration."""

    def __init__(self, session: Session):
        self.session = session
        self.cache: dict[tuple[int, int], bytes] = {}

    def tile(self, level: int, n: int) -> bytes:
        key = (level, n)
        if key not in self.cache:
            found = self.session.execute(
                select(raw(LedgerTile.hashes)).where(LedgerTile.level == level, LedgerTile.n == n)
            ).scalar_one_or_none()
            if found is not None and type(found) is not bytes:
                raise LedgerError(
                    f"ledger_tiles row {level}/{n} holds {type(found).__name__}, not hashes: "
                    "the store was altered (run `taxgate ledger verify`)"
                )
            self.cache[key] = found or b""
        return self.cache[key]

    def perfect(self, height: int, index: int) -> bytes:
        """Hash of the perfect subtree at `height` (its leaves: index << height onwards)."""
        level, below = divmod(height, TILE_HEIGHT)
        first = index << below  # its first node at the tile's height
        data = self.tile(level, first // TILE)
        offset = (first % TILE) * 32
        nodes = [data[i : i + 32] for i in range(offset, offset + (32 << below), 32)]
        if len(nodes) != 1 << below or any(len(h) != 32 for h in nodes):
            raise LedgerError(f"subtree {height}/{index} is not complete in the stored tiles")
        return merkle.root(nodes)


# session.info's keys: the entries a transaction appended, (the transaction, [(first index,
# [entry bytes])]), dropped if a savepoint in it rolls back; and the last transaction that appended
# at all (APPENDING), never dropped, so a read of the log inside it is known to see its own entries.
APPENDED = "taxgate.ledger.appended"
APPENDING = "taxgate.ledger.appending"


class Ledger:
    def __init__(self, store: Store, origin: str = ORIGIN):
        self.store = store
        self.origin = origin

    # -- appending -------------------------------------------------------------------------------

    def append(self, session: Session, entries: Sequence[dict]) -> range:
        """Append entries in the caller's transaction; returns their indexes."""
        return self.append_encoded(
            session, [(b, merkle.leaf_hash(b)) for b in map(canonical, entries)]
        )

    def append_encoded(self, session: Session, encoded: Sequence[tuple[bytes, bytes]]) -> range:
        """`append` of entries already encoded, each as (`canonical(entry)`, its leaf hash): made
        where the entries are (pass 3's workers make a batch's decisions' entries)."""
        start = self._locked_size(session)
        if any(len(b) > MAX_ENTRY for b, _ in encoded):
            # C2SP entry bundles prefix each entry with a uint16
            raise LedgerError(
                f"a ledger entry is at most {MAX_ENTRY:,} bytes: ledger a digest of what is larger"
            )
        if encoded:
            insert_rows(
                session.connection(),
                LedgerEntry.__table__,
                [
                    {"idx": start + i, "entry": b, "leaf_hash": h}
                    for i, (b, h) in enumerate(encoded)
                ],
            )
            self._extend(session, 0, start, [h for _, h in encoded])
            session.execute(
                update(LedgerHead).where(LedgerHead.id == 1).values(size=start + len(encoded))
            )
            # What this transaction appended, for `signing` once it commits (APPENDED).
            transaction = session.get_transaction()
            session.info[APPENDING] = transaction
            if session.info.get(APPENDED, (None,))[0] is not transaction:
                session.info[APPENDED] = (transaction, [])
            session.info[APPENDED][1].append((start, [b for b, _ in encoded]))
        return range(start, start + len(encoded))

    def next_index(self, session: Session) -> int:
        """The index the next entry appended in this transaction will have (the head is locked)."""
        return self._locked_size(session)

    def _locked_size(self, session: Session) -> int:
        """The size, with the head row locked until the transaction ends: appends are numbered
        without gaps or races, and a checkpoint signs a size nobody is appending to."""
        size = session.execute(
            select(raw(LedgerHead.size)).where(LedgerHead.id == 1).with_for_update()
        ).scalar_one()
        return _checked_size(size)

    def _extend(self, session: Session, level: int, first: int, hashes: list[bytes]) -> None:
        """Add nodes first.. at tile level `level`; a tile that fills passes its root up a level."""
        n0 = first // TILE
        existing = b""
        if first % TILE:
            existing = _Tiles(session).tile(level, n0)
            if len(existing) != (first % TILE) * 32:
                raise LedgerError(
                    f"tile {level}/{n0} holds {len(existing) // 32} hashes, expected {first % TILE}"
                )
        data = existing + b"".join(hashes)
        completed: list[bytes] = []
        new_rows, changed = [], []
        for k in range(0, len(data), TILE * 32):
            chunk, n = data[k : k + TILE * 32], n0 + k // (TILE * 32)
            if n == n0 and existing:
                changed.append({"level": level, "n": n, "hashes": chunk})
            else:
                new_rows.append({"level": level, "n": n, "hashes": chunk})
            if len(chunk) == TILE * 32:
                completed.append(merkle.root([chunk[i : i + 32] for i in range(0, len(chunk), 32)]))
        if changed:
            session.execute(update(LedgerTile), changed)
        if new_rows:
            session.execute(insert(LedgerTile), new_rows)
        if completed:
            self._extend(
                session, level + 1, n0, completed
            )  # tiles fill in order: the first to fill is n0

    # -- reading ---------------------------------------------------------------------------------

    def size(self, session: Session) -> int:
        return _checked_size(
            session.execute(select(raw(LedgerHead.size)).where(LedgerHead.id == 1)).scalar_one()
        )

    def entry(self, session: Session, index: int) -> bytes:
        found = session.execute(
            select(raw(LedgerEntry.entry)).where(LedgerEntry.idx == index)
        ).scalar_one_or_none()
        if found is None:
            raise LedgerError(f"no ledger entry {index}")
        if type(found) is not bytes:
            raise LedgerError(
                f"ledger entry {index} is stored as {type(found).__name__}, not bytes: the store "
                "was altered (run `taxgate ledger verify`)"
            )
        return found

    def root(self, session: Session, size: int | None = None) -> bytes:
        size = self.size(session) if size is None else size
        self._check_size(session, size)
        return merkle.subtree_hash(_Tiles(session).perfect, 0, size) if size else merkle.EMPTY_ROOT

    def _check_size(self, session: Session, size: int) -> None:
        if not 0 <= size <= self.size(session):
            raise LedgerError(f"the ledger has {self.size(session)} entries, not {size}")

    def prove(self, session: Session, index: int, size: int | None = None) -> list[bytes]:
        size = self.size(session) if size is None else size
        self._check_size(session, size)
        try:
            return merkle.inclusion_proof(_Tiles(session).perfect, index, size)
        except merkle.ProofError as exc:
            raise LedgerError(str(exc)) from None

    def consistency(self, session: Session, old: int, new: int | None = None) -> list[bytes]:
        new = self.size(session) if new is None else new
        self._check_size(session, new)
        try:
            return merkle.consistency_proof(_Tiles(session).perfect, old, new)
        except merkle.ProofError as exc:
            raise LedgerError(str(exc)) from None

    def store_checkpoint(self, session: Session, signer: Signer, size: int, root: bytes) -> str:
        """Sign and keep the tree head (size, root); the caller has checked it (`signing`)."""
        note = signer.sign(Checkpoint(self.origin, size, root))
        session.add(CheckpointRecord(size=size, note=note, signed_at=datetime.now(UTC)))
        session.flush()
        return note

    def stored_checkpoints(self, session: Session) -> list[tuple[int, str]]:
        """(size, note) of every stored checkpoint, smallest first, as stored (unverified)."""
        return [
            (size, note)
            for size, note in session.execute(
                select(raw(CheckpointRecord.size), raw(CheckpointRecord.note)).order_by(
                    CheckpointRecord.size
                )
            )
        ]

    def latest_checkpoint(self, session: Session) -> str | None:
        note = session.execute(
            select(raw(CheckpointRecord.note)).order_by(CheckpointRecord.size.desc()).limit(1)
        ).scalar_one_or_none()
        return note if isinstance(note, str) else None


def _checked_size(size) -> int:
    if not is_int(size) or size < 0:
        raise LedgerError(
            f"the ledger's stored size is {size!r} ({type(size).__name__}), not a count: the store was "
            "altered (run `taxgate ledger verify`)"
        )
    return size
