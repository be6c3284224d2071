"""Verifying the log: every entry, tile and checkpoint recomputed from the entries, in one pass.

The walk streams the entries in order, checks each leaf hash, rebuilds the stored tiles and the
root at every checkpoint's size (those the store keeps and those someone kept outside it), and
hands each entry that passed to `visit`, so that the rows recorded beside the log can be checked in
the same pass (`bindings`). Every stored value is read as the driver hands it over and checked for
its type first: a value of the wrong type is a finding, never a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from taxgate.ledger import merkle
from taxgate.ledger.checkpoint import Checkpoint, CheckpointError, verify_note
from taxgate.ledger.log import ORIGIN, TILE, TILE_HEIGHT, Finding, is_int, raw, stream
from taxgate.store.models import CheckpointRecord, LedgerEntry, LedgerHead, LedgerTile

Visit = Callable[[int, bytes], list[Finding]]


@dataclass(frozen=True)
class KeptCheckpoint:
    """A checkpoint someone kept outside the store (a file, a witness's state), already verified
    against the log's key; `source` names where it came from, for the findings."""

    source: str
    checkpoint: Checkpoint


def verify_log(
    connection: Connection,
    verifier_key: str,
    kept: Sequence[KeptCheckpoint] = (),
    visit: Visit | None = None,
    chunk: int = 50_000,
    origin: str = ORIGIN,
    size: int | None = None,
    checkpoints_at_least: int = 0,
    visit_below: int | None = None,
) -> Iterator[Finding]:
    """Findings about the log in the store, in the order found. A finding that breaks the chain of
    hashes ends the walk (nothing after it can be trusted); `visit`'s findings do not. `size`: walk
    the first `size` entries only (appends may go on beside a walk that reads in several
    transactions; what lies beyond is then the caller's to check). `visit_below`: hand `visit`
    only the entries before it (another process checks the rest against their rows)."""
    head = connection.execute(
        select(raw(LedgerHead.size)).where(LedgerHead.id == 1)
    ).scalar_one_or_none()
    if not is_int(head) or head < 0:
        yield Finding(
            None,
            f"ledger_head row 1: the size is {head!r} ({type(head).__name__}), not a count of entries",
        )
        return
    bounded = size is not None
    if size is None:
        size = head
    elif head < size:
        yield Finding(
            None,
            f"ledger_head row 1: the ledger shrank from {size:,} to {head:,} entries during the walk",
        )
        return
    due: list[tuple[int, bytes, str]] = []  # (size, root, what) to compare with the recomputed root
    stored: set[tuple[int, bytes]] = set()
    for row_size, note in connection.execute(
        select(raw(CheckpointRecord.size), raw(CheckpointRecord.note)).order_by(
            CheckpointRecord.size
        )
    ):
        if not is_int(row_size) or type(note) is not str:
            yield Finding(
                None,
                f"ledger_checkpoints row {row_size!r}: stored as {type(row_size).__name__} / "
                f"{type(note).__name__}, not a size and a signed note",
            )
            return
        try:
            checkpoint = verify_note(note, verifier_key, origin=origin)
        except CheckpointError as exc:
            yield Finding(None, f"ledger_checkpoints row {row_size}: {exc}")
            return
        if checkpoint.size != row_size:
            yield Finding(
                None,
                f"ledger_checkpoints row {row_size}: the checkpoint stored there is for size {checkpoint.size}",
            )
            return
        stored.add((checkpoint.size, checkpoint.root))
        due.append(
            (checkpoint.size, checkpoint.root, f"the checkpoint stored at size {checkpoint.size}")
        )
    if len(stored) < checkpoints_at_least:
        yield Finding(
            None,
            f"ledger_checkpoints: the store holds {len(stored)} checkpoints, fewer than the "
            f"{checkpoints_at_least} the signer saw when it signed last: its history was cut",
        )
    if size and not stored:
        yield Finding(
            None,
            f"the ledger holds {size:,} entries and no signed checkpoint: its checkpoints were "
            "deleted, or none was ever signed (`taxgate ledger checkpoint`)",
        )
    for kept_one in kept:
        c = kept_one.checkpoint
        if c.size > size:
            yield Finding(
                c.size,
                f"the ledger has {size:,} entries, fewer than the checkpoint kept in "
                f"{kept_one.source} ({c.size:,}): entries were removed or the log was replaced",
            )
            return
        if (c.size, c.root) not in stored and c.size:
            yield Finding(
                c.size,
                f"ledger_checkpoints: the checkpoint kept in {kept_one.source} (size {c.size:,}) is "
                "not among the store's checkpoints: its checkpoint history was cut or rewritten",
            )
        due.append((c.size, c.root, f"the checkpoint kept in {kept_one.source}"))
    due.sort(key=lambda d: d[0])
    if due and due[-1][0] > size:
        yield Finding(
            due[-1][0],
            f"{due[-1][2]} is for {due[-1][0]:,} entries, beyond the ledger's {size:,}: "
            "entries were removed",
        )
        return
    for due_size, root, what in due:
        if due_size == 0 and root != merkle.EMPTY_ROOT:
            yield Finding(0, f"{what} signs an empty tree with a root that is not the empty root")
            return
    tiles: dict[tuple[int, int], bytes] = {}
    for level, n, hashes in connection.execute(
        select(raw(LedgerTile.level), raw(LedgerTile.n), raw(LedgerTile.hashes))
    ):
        if not is_int(level) or not is_int(n) or type(hashes) is not bytes:
            yield Finding(
                None,
                f"ledger_tiles row {level!r}/{n!r}: stored as {type(hashes).__name__}, not hashes",
            )
            return
        tiles[(level, n)] = hashes
    stack: list[tuple[int, bytes]] = []  # compact range: (height, hash) of perfect subtrees
    level0 = bytearray()
    expected = 0
    pending = iter([d for d in due if d[0] > 0])
    next_due = next(pending, None)
    leaf_hash, node_hash = merkle.leaf_hash, merkle.node_hash
    if visit is None:
        visit_below = 0
    elif visit_below is None:
        visit_below = size
    query = select(raw(LedgerEntry.idx), raw(LedgerEntry.entry), raw(LedgerEntry.leaf_hash))
    if bounded:
        query = query.where(LedgerEntry.idx < size)
    for idx, entry, stored_leaf in stream(connection, query.order_by(LedgerEntry.idx), chunk):
        if not is_int(idx):
            yield Finding(
                None,
                f"ledger_entries: an index is stored as {type(idx).__name__} {idx!r}, not a number",
            )
            return
        if idx >= size:
            yield Finding(
                idx,
                f"ledger_entries row {idx}: entry {idx} lies past the ledger's end ({size:,}): "
                "it was inserted outside the ledger",
            )
            return
        if idx != expected:
            what = "missing (deleted?)" if idx > expected else "out of order"
            yield Finding(expected, f"ledger_entries row {expected}: entry {expected} is {what}")
            return
        if type(entry) is not bytes or type(stored_leaf) is not bytes:
            yield Finding(
                idx,
                f"ledger_entries row {idx}: the entry is stored as {type(entry).__name__} and its leaf "
                f"hash as {type(stored_leaf).__name__}, not bytes: the entry was retyped",
            )
            return
        leaf = leaf_hash(entry)
        if leaf != stored_leaf:
            yield Finding(
                idx,
                f"ledger_entries row {idx}: entry {idx} was altered: its content does not match its leaf hash",
            )
            return
        level0 += leaf
        if len(level0) == TILE * 32 or idx == size - 1:
            n = idx // TILE
            stored_tile = tiles.get((0, n), b"")
            if stored_tile != bytes(level0):
                first = n * TILE + next(
                    (
                        i // 32
                        for i in range(0, len(level0), 32)
                        if stored_tile[i : i + 32] != level0[i : i + 32]
                    ),
                    len(level0) // 32,
                )
                yield Finding(
                    first,
                    f"ledger_entries row {first}: entry {first} is not the entry the tree holds at "
                    f"{first}: entries were reordered, or the entry and its hash were replaced",
                )
                return
            level0 = bytearray()
        height, node = 0, leaf
        while stack and stack[-1][0] == height:
            node = node_hash(stack.pop()[1], node)
            height += 1
            if height % TILE_HEIGHT == 0:
                level, n = height // TILE_HEIGHT, idx >> height
                stored_tile = tiles.get((level, n // TILE), b"")
                if stored_tile[(n % TILE) * 32 : (n % TILE) * 32 + 32] != node:
                    yield Finding(
                        n << height,
                        f"ledger_tiles row {level}/{n // TILE}: the stored tree hashes above "
                        f"entry {n << height} do not match the entries",
                    )
                    return
        stack.append((height, node))
        expected += 1
        while next_due is not None and next_due[0] == expected:
            if _fold(stack) != next_due[1]:
                yield Finding(
                    expected - 1,
                    f"ledger_entries: the entries do not match {next_due[2]} (size "
                    f"{expected:,}): an entry before it was changed, removed or reordered",
                )
                return
            next_due = next(pending, None)
        if idx < visit_below and (found := visit(idx, entry)):
            yield from found
    if expected != size:
        yield Finding(
            expected, f"ledger_entries rows {expected}-{size - 1}: entries are missing (deleted?)"
        )
        return
    if not bounded:
        yield from tile_widths(connection, size)


def tile_widths(connection: Connection, size: int) -> Iterator[Finding]:
    """Every stored tile holds exactly the hashes a tree of `size` entries has there: a hash added at
    the end of one, or a tile beyond the tree, is a finding (the next append would trip on it)."""
    for level, n, length in connection.execute(
        select(LedgerTile.level, LedgerTile.n, func.length(LedgerTile.hashes)).order_by(
            LedgerTile.level, LedgerTile.n
        )
    ):
        nodes = size >> (TILE_HEIGHT * level)  # complete subtrees at this tile level's height
        width = min(TILE, nodes - n * TILE)
        if width <= 0:
            yield Finding(
                None, f"ledger_tiles row {level}/{n}: a tile beyond the tree of {size:,} entries"
            )
        elif length != width * 32:
            yield Finding(
                None,
                f"ledger_tiles row {level}/{n}: holds {length / 32:g} hashes, the tree has "
                f"{width} there",
            )


def _fold(stack: list[tuple[int, bytes]]) -> bytes:
    """The root of the tree whose perfect subtrees (largest first) are on the stack."""
    if not stack:
        return merkle.EMPTY_ROOT
    node = stack[-1][1]
    for _, left in reversed(stack[:-1]):
        node = merkle.node_hash(left, node)
    return node


def walk_entries(
    connection: Connection, lo: int, hi: int, visit: Visit, chunk: int = 50_000
) -> Iterator[Finding]:
    """`visit` over the entries in [lo, hi), unhashed: for a row check beside a `verify_log` that
    checks the same entries' hashes in another process."""
    query = (
        select(raw(LedgerEntry.idx), raw(LedgerEntry.entry))
        .where(LedgerEntry.idx >= lo, LedgerEntry.idx < hi)
        .order_by(LedgerEntry.idx)
    )
    for idx, entry in stream(connection, query, chunk):
        if is_int(idx) and type(entry) is bytes and (found := visit(idx, entry)):
            yield from found
