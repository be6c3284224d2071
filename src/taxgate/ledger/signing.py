"""Signing checkpoints, so that a log rewritten in the store is never signed.

The key lives off the database host (TAXGATE_LEDGER_KEY, default ./taxgate-ledger.key). Beside it
the signer keeps its own record of the last checkpoint it signed, of how many checkpoints the store
held then, and of where in the signed tree the entries a release reads lie (orders, reviews:
`INDEXED`), found by their content when they were signed (`<key>.last`, JSON). Before it signs
again it requires what Certificate
Transparency requires of a log: the store still holds that checkpoint and no fewer checkpoints than
then, and the tree now extends it (a consistency proof from the last signed size to the new one,
checked against the recorded root). A store whose checkpoints were cut, or whose log was rewritten
and re-appended, is refused with one line, and nothing is signed.
"""

from __future__ import annotations

import fcntl
import json
import os
from bisect import bisect_right
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from taxgate.ledger import merkle
from taxgate.ledger.bindings import TamperedError
from taxgate.ledger.checkpoint import (
    Checkpoint,
    CheckpointError,
    Signer,
    create_key_file,
    verify_note,
)
from taxgate.ledger.log import (
    APPENDED,
    APPENDING,
    ORIGIN,
    TILE,
    Ledger,
    LedgerError,
    _Tiles,
    is_int,
    loads,
    raw,
    stream,
)
from taxgate.store import Store
from taxgate.store.models import LedgerEntry, LedgerTile

# The kinds of entry that decide a release and are read from the ledger itself, never from a table or
# a column the store could change: the orders in force, and officers' reviews (a request reviewed
# once is not reviewed again, whatever its row says).
INDEXED = ("order_added", "order_lifted", "review")
_MARKERS = {kind: f'"kind":"{kind}"'.encode() for kind in INDEXED}


def key_path(path: Path | str | None = None) -> Path:
    return Path(path or os.environ.get("TAXGATE_LEDGER_KEY") or "taxgate-ledger.key")


def record_path(key: Path) -> Path:
    """Where the signer records the last checkpoint it signed: beside the key."""
    return key.with_suffix(".last")


def load_signer(path: Path | str | None = None, origin: str = ORIGIN) -> Signer:
    """The checkpoint signing key: TAXGATE_LEDGER_KEY or ./taxgate-ledger.key, made on first use
    (owner-only), with the verifier key beside it in `.pub`. Keep it off the database host."""
    path = key_path(path)
    if path.exists():
        try:
            signer = Signer.from_text(path.read_text(encoding="utf-8"))
        except CheckpointError as exc:
            raise LedgerError(f"signing key {path}: {exc}") from None
    else:
        signer = Signer.generate(origin)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            create_key_file(path, signer.to_text() + "\n")
        except FileExistsError:  # another process made it first: theirs is the key
            return load_signer(path, origin)
    public = path.with_suffix(".pub")
    if not public.exists():  # first use, or a run stopped between writing the key and this
        temporary = public.with_suffix(f".pub.{os.getpid()}.partial")
        with suppress(OSError):  # a convenience: the key alone signs
            temporary.write_text(signer.verifier_key() + "\n", encoding="utf-8")
            os.replace(temporary, public)
    return signer


@contextmanager
def _exclusive(key: Path):
    """One signer at a time per key (the server's timer, a worker finishing a batch, the CLI): a
    lock on the key file itself."""
    with open(key, "rb") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Record:
    """What the signer keeps beside its key: the last checkpoint it signed, how many checkpoints the
    store held then, and the indexes of the `INDEXED` entries in that tree (None: not recorded)."""

    checkpoint: Checkpoint | None
    note: str | None
    stored: int
    indexed: dict[str, list[int]] | None


def read_record(key: Path, verifier_key: str) -> Record:
    """The signer's record beside `key`, its checkpoint checked against the log's verifier key."""
    record = record_path(key)
    if not record.exists():
        return Record(None, None, 0, {kind: [] for kind in INDEXED})
    try:
        kept = json.loads(record.read_text(encoding="utf-8"))
        indexed = kept.get("indexed")
        return Record(
            verify_note(kept["checkpoint"], verifier_key),
            kept["checkpoint"],
            int(kept["stored"]),
            {kind: [int(i) for i in indexed.get(kind, [])] for kind in INDEXED}
            if indexed
            else None,
        )
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
    ) as exc:  # CheckpointError is a ValueError
        raise LedgerError(
            f"the signer's record {record} cannot be read ({exc}): restore it from a backup; "
            "nothing is signed without it"
        ) from None


def _write_record(key: Path, note: str, stored: int, indexed: dict[str, list[int]]) -> None:
    record = record_path(key)
    temporary = record.with_suffix(".last.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"checkpoint": note, "stored": stored, "indexed": indexed}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temporary, record)


def _indexed_in(session: Session, lo: int, hi: int) -> dict[str, list[int]]:
    """The `INDEXED` entries among entries [lo, hi), found by their content, each checked against
    the leaf hash the tree holds for it (its level-0 tile), so what is recorded is what is signed."""
    found: dict[str, list[int]] = {kind: [] for kind in INDEXED}
    if hi <= lo:
        return found
    tiles = {
        n: hashes
        for n, hashes in session.execute(
            select(LedgerTile.n, raw(LedgerTile.hashes)).where(
                LedgerTile.level == 0, LedgerTile.n.between(lo // TILE, (hi - 1) // TILE)
            )
        )
    }
    query = (
        select(raw(LedgerEntry.idx), raw(LedgerEntry.entry))
        .where(LedgerEntry.idx >= lo, LedgerEntry.idx < hi)
        .order_by(LedgerEntry.idx)
    )
    expected = lo
    for idx, entry in stream(session.connection(), query):
        tile = tiles.get(idx // TILE) if is_int(idx) else None
        at = (idx % TILE) * 32 if tile is not None else 0
        if (
            idx != expected
            or type(entry) is not bytes
            or type(tile) is not bytes
            or tile[at : at + 32] != merkle.leaf_hash(entry)
        ):
            raise LedgerError(
                f"ledger entry {expected} does not match the tree's hash of it: run `taxgate "
                "ledger verify`; nothing is signed"
            )
        expected += 1
        for kind, marker in _MARKERS.items():
            if marker in entry and _kind_of(entry) == kind:
                found[kind].append(idx)
    if expected != hi:
        raise LedgerError(
            f"ledger entry {expected} is missing: run `taxgate ledger verify`; nothing is signed"
        )
    return found


def sign_checkpoint(
    store: Store, path: Path | str | None = None, *, trust_store: bool = False
) -> str:
    """Sign the current tree head after checking that it extends the last one this key signed, and
    record it beside the key; returns the note (the one already stored, if this size was signed).

    `trust_store` starts the signer's record from the store's latest checkpoint, once, for a key
    that signed before it kept a record; a key with a record never needs it."""
    key = key_path(path)
    signer = load_signer(key)
    ledger = Ledger(store)
    with _exclusive(key):
        record = read_record(key, signer.verifier_key())
        last, stored_then = record.checkpoint, record.stored
        with store.session.begin() as session:
            size = ledger._locked_size(session)  # nobody appends while we check and sign
            stored = {}
            for stored_size, note in ledger.stored_checkpoints(session):
                try:
                    stored[stored_size] = verify_note(
                        note, signer.verifier_key(), origin=ledger.origin
                    )
                except (CheckpointError, TypeError) as exc:
                    raise LedgerError(
                        f"the stored checkpoint at size {stored_size!r} does not verify ({exc}): "
                        "run `taxgate ledger verify`; nothing is signed"
                    ) from None
                if stored[stored_size].size != stored_size:
                    raise LedgerError(
                        f"the checkpoint stored as size {stored_size!r} is for size "
                        f"{stored[stored_size].size:,}: run `taxgate ledger verify`; nothing is signed"
                    )
            if last is None and stored:
                if not trust_store:
                    raise LedgerError(
                        f"this key keeps no record of the checkpoints it signed ({record_path(key)} is missing) but "
                        f"the store holds {len(stored)} signed with it: put the record back, or start it from the "
                        "store once with `taxgate ledger checkpoint --trust-store` after `taxgate ledger verify "
                        "--checkpoint` passes against a checkpoint kept elsewhere"
                    )
                last = stored[max(stored)]
            if last is not None:
                kept = stored.get(last.size)
                if kept is None or kept.root != last.root:
                    raise LedgerError(
                        f"the store no longer holds the checkpoint this key signed last (size {last.size:,}): its "
                        "checkpoint history was cut or rewritten; nothing is signed"
                    )
                if len(stored) < stored_then:
                    raise LedgerError(
                        f"the store holds {len(stored)} checkpoints, fewer than the {stored_then} "
                        "it held when this key "
                        "signed last: its checkpoint history was cut; nothing is signed"
                    )
                if size < last.size:
                    raise LedgerError(
                        f"the ledger has {size:,} entries, fewer than the {last.size:,} this key signed "
                        "last: entries were removed; nothing is signed"
                    )
            root = ledger.root(session, size)
            if last is not None:
                try:
                    merkle.verify_consistency(
                        last.size,
                        size,
                        last.root,
                        root,
                        ledger.consistency(session, last.size, size),
                    )
                except merkle.ProofError:
                    raise LedgerError(
                        f"the tree of {size:,} entries does not extend the one this key signed last (size "
                        f"{last.size:,}): the log was rewritten; nothing is signed"
                    ) from None
            known = (
                record.indexed
                if record.checkpoint is not None and record.indexed is not None
                else None
            )
            since = last.size if known is not None else 0
            new = _indexed_in(session, since, size)
            indexed = {kind: [*(known or {}).get(kind, []), *new[kind]] for kind in INDEXED}
            if size in stored:
                if stored[size].root != root:
                    raise LedgerError(
                        f"the checkpoint stored at size {size:,} does not match the tree: run "
                        "`taxgate ledger verify`; nothing is signed"
                    )
                note = next(n for s, n in ledger.stored_checkpoints(session) if s == size)
                held = len(stored)
            else:
                note = ledger.store_checkpoint(session, signer, size, root)
                held = len(stored) + 1
        if last is None or size > last.size or held != stored_then or record.indexed is None:
            _write_record(key, note, held, indexed)
    return note


def _parsed(entry: bytes, idx: int) -> dict:
    try:
        parsed = loads(entry)
    except ValueError:
        raise TamperedError(f"ledger entry {idx} is not an entry taxgate writes") from None
    if not isinstance(parsed, dict):
        raise TamperedError(f"ledger entry {idx} is not an entry taxgate writes")
    return parsed


def _kind_of(entry: bytes):
    try:
        parsed = loads(entry)
    except ValueError:
        return None
    return parsed.get("kind") if isinstance(parsed, dict) else None


_scanned: dict[
    tuple, tuple[int, list[tuple[int, dict]]]
] = {}  # the unsigned tail already read, per tree


@event.listens_for(Session, "after_commit")
def _own_appends_read(session: Session) -> None:
    """Entries this process appended in a transaction that committed are known without reading
    them back: `entries_of_kinds`'s tail moves past them when it had read up to their first (a
    batch's chunks no longer re-read the chunk before). Whatever another process appended in
    between is still read from the store; and a transaction that rolled back (even a savepoint
    in it) moves nothing."""
    if session.in_nested_transaction():
        return  # a savepoint released: its transaction may still roll back; wait for that one
    transaction, appended = session.info.pop(APPENDED, (None, None))
    if not appended or transaction is not session.get_transaction():
        return  # nothing appended, or in a transaction that ended unwritten (a session closed)
    url = str(session.get_bind().url)
    keys = [key for key in list(_scanned) if key[0] == url]  # the timer thread may add one
    try:
        # The entries that may be of an indexed kind, found in one pass over each span's bytes.
        marked = [(start, entries, _marked(entries)) for start, entries in appended]
        for key in keys:
            scanned_to, tail = _scanned.get(key, (None, ()))
            tail = list(tail)
            for start, entries, candidates in marked:
                if start != scanned_to:
                    break
                for i in candidates:
                    parsed = _parsed(entries[i], start + i)
                    if parsed.get("kind") in key[3]:
                        tail.append((start + i, parsed))
                scanned_to = start + len(entries)
            _scanned[key] = (scanned_to, tail)
    except Exception:  # the commit is done: never fail it; the tail is read again instead
        for key in keys:
            _scanned.pop(key, None)


def _marked(entries: list[bytes]) -> list[int]:
    """The positions of the entries holding any kind's marker (`_MARKERS`): a search of all of them
    joined, since a batch's chunk holds 50,000 entries and almost never one of these."""
    blob = b"\n".join(entries)
    found: set[int] = set()
    ends = None
    for marker in _MARKERS.values():
        at = blob.find(marker)
        while at != -1:
            if ends is None:
                ends = list(accumulate(len(entry) + 1 for entry in entries))
            found.add(bisect_right(ends, at))
            at = blob.find(marker, at + 1)
    return sorted(found)


@event.listens_for(Session, "after_soft_rollback")
def _rolled_back(session: Session, previous_transaction) -> None:
    session.info.pop(APPENDED, None)


def entries_of_kinds(
    session: Session, kinds: tuple[str, ...], path: Path | str | None = None
) -> list[tuple[int, dict]]:
    """The entries of `kinds` (some of `INDEXED`), in ledger order, as the ledger holds them and
    whatever the tables or columns say: those the signer recorded, each proved included in the
    checkpoint it signed, and every entry after that checkpoint, read by its content (once per
    process: later calls read only what was appended since). TamperedError if one does not verify."""
    key = key_path(path)
    record = read_record(key, load_signer(key).verifier_key())
    signed = record.checkpoint if record.indexed is not None else None
    size = signed.size if signed is not None else 0
    tiles = _Tiles(session)
    found = []
    for kind in kinds:
        for idx in (record.indexed or {}).get(kind, []) if signed is not None else []:
            entry = session.execute(
                select(raw(LedgerEntry.entry)).where(LedgerEntry.idx == idx)
            ).scalar_one_or_none()
            try:
                if type(entry) is not bytes:
                    raise merkle.ProofError("missing or retyped")
                merkle.verify_inclusion(
                    idx,
                    size,
                    merkle.leaf_hash(entry),
                    merkle.inclusion_proof(tiles.perfect, idx, size),
                    signed.root,
                )
            except (merkle.ProofError, LedgerError):
                raise TamperedError(
                    f"ledger entry {idx} ({kind}) is not the entry the signed checkpoint of size "
                    f"{size:,} holds"
                ) from None
            found.append((idx, loads(entry)))
    head = Ledger(None).size(session)
    cache_key = (str(session.get_bind().url), size, signed.root if signed else b"", kinds)
    scanned_to, tail = _scanned.get(cache_key, (size, []))
    query = (
        select(raw(LedgerEntry.idx), raw(LedgerEntry.entry), raw(LedgerEntry.leaf_hash))
        .where(LedgerEntry.idx >= scanned_to, LedgerEntry.idx < head)
        .order_by(LedgerEntry.idx)
    )
    tail = list(tail)
    markers = [_MARKERS[kind] for kind in kinds]
    for idx, entry, leaf in stream(session.connection(), query):
        if type(entry) is not bytes or type(leaf) is not bytes or merkle.leaf_hash(entry) != leaf:
            raise TamperedError(f"ledger entry {idx} does not match its leaf hash")
        if any(marker in entry for marker in markers):
            parsed = _parsed(entry, idx)
            if parsed.get("kind") in kinds:
                tail.append((idx, parsed))
    if session.info.get(APPENDING) is not session.get_transaction():
        # Kept only when this transaction has appended nothing: what it read of its own entries
        # is gone if it rolls back, and another entry may take their places.
        for stale in [k for k in list(_scanned) if (k[0], k[3]) == (cache_key[0], kinds)]:
            _scanned.pop(stale, None)  # an older checkpoint's tail
        _scanned[cache_key] = (max(head, scanned_to), tail)
    return sorted(found + tail, key=lambda pair: pair[0])
