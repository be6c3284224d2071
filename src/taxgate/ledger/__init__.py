"""The ledger: an append-only RFC 9162 Merkle log of every event, kept in the store.

Entries are canonical JSON (`canonical`); entry i's leaf hash is SHA-256(0x00 || entry). Tree hashes
are kept as C2SP tlog-tiles (256 hashes of one tree height per tile), so a proof at ten million
entries reads a handful of rows. A signed checkpoint (`checkpoint`) commits to a size and root;
`verify` recomputes everything from the entries and names the first one that does not fit.

Appends happen inside the caller's transaction, so the rows that record an event (a decision, a
disclosure) and its ledger entry commit together or not at all.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from taxgate.ledger import merkle
from taxgate.ledger.checkpoint import Checkpoint, CheckpointError, Signer, verify as verify_note
from taxgate.store import Store
from taxgate.store.models import Checkpoint as CheckpointRow
from taxgate.store.models import LedgerEntry, LedgerHead, LedgerTile

ORIGIN = "taxgate.example/ledger"
TILE = 256  # hashes per tile; tile level L holds tree height 8 L
TILE_HEIGHT = 8

__all__ = ["ORIGIN", "Ledger", "LedgerError", "Problem", "canonical", "check_proof", "inclusion_proof", "load_signer"]


class LedgerError(ValueError):
    """A ledger request that cannot be met (an index past the end, say); one line for the user."""


def canonical(entry: dict) -> bytes:
    """RFC 8785 (JCS) bytes of an entry. Entries hold strings, integers, booleans, null, lists and
    objects, never floats (a weight is written as a decimal string), and for those JCS is exactly
    sorted keys, no spaces, UTF-8: json does it several times faster than a general JCS library
    (tests check the two agree)."""
    _no_floats(entry.values())
    return _ENCODE(entry).encode()


_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def _no_floats(values) -> None:
    for value in values:
        kind = type(value)
        if kind is float:
            raise TypeError("ledger entries hold no floats: write the number as a decimal string")
        if kind is dict:
            _no_floats(value.values())
        elif kind is list:
            _no_floats(value)


def load_signer(path: Path | None = None, origin: str = ORIGIN) -> Signer:
    """The checkpoint signing key: TAXGATE_LEDGER_KEY or ./taxgate-ledger.key, made on first use
    (owner-only), with the verifier key beside it in `.pub`. Keep it off the database host."""
    path = Path(path or os.environ.get("TAXGATE_LEDGER_KEY") or "taxgate-ledger.key")
    if path.exists():
        try:
            return Signer.from_text(path.read_text(encoding="utf-8"))
        except CheckpointError as exc:
            raise LedgerError(f"signing key {path}: {exc}") from None
    signer = Signer.generate(origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(signer.to_text() + "\n")
    path.with_suffix(".pub").write_text(signer.verifier_key() + "\n", encoding="utf-8")
    return signer


@dataclass(frozen=True, slots=True)
class Problem:
    """What `verify` found first: the entry (or checkpoint size) and what is wrong with it."""

    index: int
    message: str


class _Tiles:
    """Tile reads for one proof or append, cached for its duration."""

    def __init__(self, session: Session):
        self.session = session
        self.cache: dict[tuple[int, int], bytes] = {}

    def tile(self, level: int, n: int) -> bytes:
        key = (level, n)
        if key not in self.cache:
            row = self.session.get(LedgerTile, key)
            self.cache[key] = row.hashes if row else b""
        return self.cache[key]

    def perfect(self, height: int, index: int) -> bytes:
        """Hash of the perfect subtree at `height` (its leaves: index << height onwards)."""
        level, below = divmod(height, TILE_HEIGHT)
        first = index << below  # its first node at the tile's height
        data = self.tile(level, first // TILE)
        offset = (first % TILE) * 32
        nodes = [data[i:i + 32] for i in range(offset, offset + (32 << below), 32)]
        if len(nodes) != 1 << below or any(len(h) != 32 for h in nodes):
            raise LedgerError(f"subtree {height}/{index} is not complete in the stored tiles")
        return merkle.root(nodes)


class Ledger:
    def __init__(self, store: Store, origin: str = ORIGIN):
        self.store = store
        self.origin = origin

    # -- appending -------------------------------------------------------------------------------

    def append(self, session: Session, entries: Sequence[dict]) -> range:
        """Append entries in the caller's transaction; returns their indexes."""
        head = session.execute(select(LedgerHead).where(LedgerHead.id == 1).with_for_update()).scalar_one()
        start = head.size
        blobs = [canonical(e) for e in entries]
        leaves = [merkle.leaf_hash(b) for b in blobs]
        if blobs:
            # Core, not the ORM's bulk path: a third of the cost per row.
            session.connection().execute(insert(LedgerEntry.__table__), [
                {"idx": start + i, "entry": b, "leaf_hash": h} for i, (b, h) in enumerate(zip(blobs, leaves))
            ])
            self._extend(session, 0, start, leaves)
            head.size = start + len(blobs)
            session.flush()
        return range(start, start + len(blobs))

    def _extend(self, session: Session, level: int, first: int, hashes: list[bytes]) -> None:
        """Add nodes first.. at tile level `level`; a tile that fills passes its root up a level."""
        n0 = first // TILE
        existing = b""
        if first % TILE:
            row = session.get(LedgerTile, (level, n0))
            existing = row.hashes if row else b""
            if len(existing) != (first % TILE) * 32:
                raise LedgerError(f"tile {level}/{n0} holds {len(existing) // 32} hashes, expected {first % TILE}")
        data = existing + b"".join(hashes)
        completed: list[bytes] = []
        new_rows, changed = [], []
        for k in range(0, len(data), TILE * 32):
            chunk, n = data[k:k + TILE * 32], n0 + k // (TILE * 32)
            if n == n0 and existing:
                changed.append({"level": level, "n": n, "hashes": chunk})
            else:
                new_rows.append({"level": level, "n": n, "hashes": chunk})
            if len(chunk) == TILE * 32:
                completed.append(merkle.root([chunk[i:i + 32] for i in range(0, len(chunk), 32)]))
        if changed:
            session.execute(update(LedgerTile), changed)
        if new_rows:
            session.execute(insert(LedgerTile), new_rows)
        if completed:
            self._extend(session, level + 1, n0, completed)  # tiles fill in order: the first to fill is n0

    # -- reading ---------------------------------------------------------------------------------

    def size(self, session: Session) -> int:
        return session.execute(select(LedgerHead.size).where(LedgerHead.id == 1)).scalar_one()

    def entry(self, session: Session, index: int) -> bytes:
        row = session.get(LedgerEntry, index)
        if row is None:
            raise LedgerError(f"no ledger entry {index}")
        return row.entry

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

    def checkpoint(self, session: Session, signer: Signer) -> str:
        """Sign the current tree head (or return the note already signed at this size)."""
        size = self.size(session)
        row = session.get(CheckpointRow, size)
        if row is not None:
            return row.note
        note = signer.sign(Checkpoint(self.origin, size, self.root(session, size)))
        session.add(CheckpointRow(size=size, note=note, signed_at=datetime.now(UTC)))
        session.flush()
        return note

    def latest_checkpoint(self, session: Session) -> str | None:
        row = session.execute(select(CheckpointRow).order_by(CheckpointRow.size.desc()).limit(1)).scalar_one_or_none()
        return row.note if row else None

    # -- verifying -------------------------------------------------------------------------------

    def verify(self, verifier_key: str, *, chunk: int = 50_000) -> Iterator[Problem]:
        """Recompute the ledger from its entries: each leaf hash, every stored tile, every stored
        checkpoint (signature and root). Yields the problems, the first bad entry first."""
        with self.store.session() as session:
            size = self.size(session)
            notes = session.execute(select(CheckpointRow).order_by(CheckpointRow.size)).scalars().all()
            checkpoints = []
            for row in notes:
                try:
                    checkpoints.append(verify_note(row.note, verifier_key, origin=self.origin))
                except CheckpointError as exc:
                    yield Problem(row.size, f"checkpoint at size {row.size}: {exc}")
                    return
                if checkpoints[-1].size != row.size:
                    yield Problem(row.size, f"checkpoint stored as size {row.size} says {checkpoints[-1].size}")
                    return
            tiles = {(t.level, t.n): t.hashes for t in session.execute(select(LedgerTile)).scalars()}
            stack: list[tuple[int, bytes]] = []  # compact range: (height, hash) of perfect subtrees
            level0 = bytearray()
            expected, due = 0, iter(checkpoints)
            next_checkpoint = next(due, None)
            # Core rows, streamed: the ORM's per-row cost would double the time of a full verify.
            rows = session.connection().execution_options(yield_per=chunk).execute(
                select(LedgerEntry.idx, LedgerEntry.entry, LedgerEntry.leaf_hash).order_by(LedgerEntry.idx))
            for idx, entry, stored in rows:
                if idx != expected:
                    what = "missing (deleted?)" if idx > expected else "out of order"
                    yield Problem(expected, f"entry {expected} is {what}")
                    return
                if idx >= size:
                    yield Problem(idx, f"entry {idx} lies past the ledger's end ({size}): it was inserted outside the ledger")
                    return
                leaf = merkle.leaf_hash(entry)
                if leaf != bytes(stored):
                    yield Problem(idx, f"entry {idx} was altered: its content does not match its leaf hash")
                    return
                level0 += leaf
                if len(level0) == TILE * 32 or idx == size - 1:
                    n = idx // TILE
                    stored_tile = tiles.get((0, n), b"")
                    if stored_tile != bytes(level0):
                        first = n * TILE + next((i // 32 for i in range(0, len(level0), 32)
                                                 if stored_tile[i:i + 32] != level0[i:i + 32]), len(level0) // 32)
                        yield Problem(first, f"entry {first} is not the entry the tree holds at {first}: "
                                             "entries were reordered, or the entry and its hash were replaced")
                        return
                    level0 = bytearray()
                height, node = 0, leaf
                while stack and stack[-1][0] == height:
                    node = merkle.node_hash(stack.pop()[1], node)
                    height += 1
                    if height % TILE_HEIGHT == 0:
                        level, n = height // TILE_HEIGHT, idx >> height
                        stored_tile = tiles.get((level, n // TILE), b"")
                        if stored_tile[(n % TILE) * 32:(n % TILE) * 32 + 32] != node:
                            yield Problem(n << height, f"stored tree hashes above entry {n << height} do not match")
                            return
                stack.append((height, node))
                expected += 1
                while next_checkpoint is not None and next_checkpoint.size == expected:
                    if _fold(stack) != next_checkpoint.root:
                        yield Problem(expected - 1, f"the entries do not match the checkpoint signed at size {expected}: "
                                                    "an entry before it was changed, removed or reordered")
                        return
                    next_checkpoint = next(due, None)
            if expected != size:
                yield Problem(expected, f"entries {expected}-{size - 1} are missing (deleted?)")
                return
            if next_checkpoint is not None:
                yield Problem(next_checkpoint.size, f"a checkpoint was signed at size {next_checkpoint.size}, "
                                                     f"beyond the ledger's {size} entries: entries were removed")
                return


def _fold(stack: list[tuple[int, bytes]]) -> bytes:
    """The root of the tree whose perfect subtrees (largest first) are on the stack."""
    if not stack:
        return merkle.EMPTY_ROOT
    node = stack[-1][1]
    for _, left in reversed(stack[:-1]):
        node = merkle.node_hash(left, node)
    return node



def inclusion_proof(store: Store, index: int, size: int | None = None) -> dict:
    """An inclusion proof for entry `index` in the tree of `size` entries (default: the latest
    checkpoint's), with the entry and that checkpoint: all `check_proof` needs, offline."""
    import base64

    from taxgate.ledger.checkpoint import parse

    ledger = Ledger(store)
    with store.session() as session:
        note = ledger.latest_checkpoint(session)
        if size is None and note is None:
            raise LedgerError("no checkpoint yet: run `taxgate ledger checkpoint` first")
        size = parse(note).size if size is None else size
        proof = ledger.prove(session, index, size)
        entry = ledger.entry(session, index)
        row = session.get(CheckpointRow, size)
    return {"index": index, "size": size, "entry": entry.decode(),
            "proof": [base64.b64encode(h).decode() for h in proof], "checkpoint": row.note if row else None}


def check_proof(proof: dict, verifier_key: str, note: str | None = None) -> Checkpoint:
    """Check an inclusion proof against a checkpoint (default: the one it carries) signed by
    `verifier_key`. Returns the trusted checkpoint; raises CheckpointError, merkle.ProofError, or
    ValueError/KeyError/TypeError for a proof that cannot be read."""
    import base64

    trusted = verify_note(note or proof["checkpoint"], verifier_key)
    if trusted.size != proof["size"]:
        raise merkle.ProofError(f"the proof is for tree size {proof['size']}, the checkpoint for {trusted.size}")
    merkle.verify_inclusion(int(proof["index"]), int(proof["size"]), merkle.leaf_hash(str(proof["entry"]).encode()),
                            [base64.b64decode(h, validate=True) for h in proof["proof"]], trusted.root)
    return trusted
