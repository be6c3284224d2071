"""RFC 9162 §2.1 Merkle tree: leaf and node hashing, tree heads, inclusion and consistency proofs.

Pure: hashes in, hashes out. It knows nothing of storage; proofs are built from a function that
returns the hash of a *perfect* subtree (2**level leaves starting at leaf index << level), which
the ledger serves from its stored tiles and tests serve from a list.

The proof verifiers follow RFC 9162 §2.1.3.2 and §2.1.4.2 step by step, with the edge cases of the
transparency-dev reference (a proof must have the exact length; every hash is 32 bytes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()  # MTH({}) = SHA-256()

PerfectHash = Callable[
    [int, int], bytes
]  # (level, index) -> hash of leaves [index << level, (index + 1) << level)


class ProofError(ValueError):
    """A proof that does not verify, or a request for one that cannot exist."""


def leaf_hash(data: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """k, the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes, bottom-up: an odd node at the end of a level moves up unchanged, which
    gives exactly RFC 9162's left-balanced tree."""
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def subtree_hash(perfect: PerfectHash, start: int, size: int) -> bytes:
    """MTH(D[start:start + size]) for a subtree of the RFC tree (start is a multiple of the largest
    power of two not above size), from perfect subtrees."""
    if size & (size - 1) == 0:
        level = size.bit_length() - 1
        return perfect(level, start >> level)
    k = _split(size)
    return node_hash(subtree_hash(perfect, start, k), subtree_hash(perfect, start + k, size - k))


def inclusion_proof(perfect: PerfectHash, index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) (RFC 9162 §2.1.3.1), nearest the leaf first."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    path: list[bytes] = []
    start = 0
    while size > 1:
        k = _split(size)
        if index < k:
            path.append(subtree_hash(perfect, start + k, size - k))
            size = k
        else:
            path.append(subtree_hash(perfect, start, k))
            start, index, size = start + k, index - k, size - k
    path.reverse()
    return path


def consistency_proof(perfect: PerfectHash, old: int, new: int) -> list[bytes]:
    """PROOF(old, D[new]) (RFC 9162 §2.1.4.1)."""
    if not 0 <= old <= new:
        raise ProofError(f"no consistency proof from size {old} to size {new}")
    if old == 0 or old == new:
        return []
    path: list[bytes] = []
    start, m, n, complete = 0, old, new, True
    while m != n:
        k = _split(n)
        if m <= k:
            path.append(subtree_hash(perfect, start + k, n - k))
            n = k
        else:
            path.append(subtree_hash(perfect, start, k))
            start, m, n, complete = start + k, m - k, n - k, False
    if not complete:
        path.append(subtree_hash(perfect, start, n))
    path.reverse()
    return path


def _check_hashes(*hashes: bytes) -> None:
    if any(len(h) != HASH_SIZE for h in hashes):
        raise ProofError("a hash is not 32 bytes")


def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to (RFC 9162 §2.1.3.2, steps 1-5 before the comparison)."""
    _check_hashes(leaf, *path)
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise ProofError("the proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the proof is shorter than the tree is deep")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, path: Sequence[bytes], expected_root: bytes
) -> None:
    """Raise ProofError unless `leaf` is entry `index` of the tree of `size` whose head is `expected_root`."""
    _check_hashes(expected_root)
    if root_from_inclusion(index, size, leaf, path) != expected_root:
        raise ProofError(
            f"inclusion proof for leaf {index} does not lead to the tree head of size {size}"
        )


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]
) -> None:
    """Raise ProofError unless the tree of size `new` (head `new_root`) extends the tree of size
    `old` (head `old_root`): nothing logged before was changed, removed or reordered."""
    _check_hashes(old_root, new_root, *path)
    if not 0 <= old <= new:
        raise ProofError(f"size {new} is older than size {old}")
    if old == new:
        if path or old_root != new_root:
            raise ProofError("equal sizes need equal tree heads and an empty proof")
        return
    if old == 0:
        if path:
            raise ProofError("a proof from the empty tree must be empty")
        return
    if not path:
        raise ProofError("empty consistency proof")
    c = list(path)
    if (
        old & (old - 1) == 0
    ):  # step 2: the old tree is a perfect subtree, its head is the first node
        c.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:  # step 4
        fn, sn = fn >> 1, sn >> 1
    fr = sr = c[0]
    for p in c[1:]:
        if sn == 0:
            raise ProofError("the proof is longer than the trees are deep")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(p, fr), node_hash(p, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or fr != old_root or sr != new_root:
        raise ProofError(f"the tree of size {new} is not consistent with the tree of size {old}")


def perfect_from_leaves(leaf_hashes: Sequence[bytes]) -> PerfectHash:
    """A PerfectHash over leaf hashes held in memory (tests, small logs): every level is built once."""
    levels = [list(leaf_hashes)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])
    return lambda level, index: levels[level][index]
