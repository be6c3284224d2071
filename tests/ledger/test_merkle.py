"""The Merkle module against RFC 6962 / 9162 published test vectors, every proof of small trees, and
for each valid proof its broken twins, which must fail."""

from __future__ import annotations

import hashlib

import pytest

from taxgate.ledger.merkle import (
    EMPTY_ROOT,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    perfect_from_leaves,
    root,
    verify_consistency,
    verify_inclusion,
)

# The Certificate Transparency reference leaves and tree heads (transparency-dev/merkle testonly).
LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    bytes.fromhex(h)
    for h in (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]
H = bytes.fromhex
INCLUSION = [  # (index, size, proof)
    (0, 1, []),
    (
        0,
        8,
        [
            H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        5,
        8,
        [
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (2, 3, [H("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        1,
        5,
        [
            H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
]
CONSISTENCY = [  # (old, new, proof)
    (1, 1, []),
    (
        1,
        8,
        [
            H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
]
OTHER = hashlib.sha256(b"some other hash").digest()
HASHES = [leaf_hash(d) for d in LEAVES]
PERFECT = perfect_from_leaves(HASHES)


def flipped(h: bytes, bit: int = 3) -> bytes:
    return bytes([h[0] ^ (1 << bit)]) + h[1:]


def test_tree_heads_match_the_published_roots():
    assert EMPTY_ROOT == ROOTS[0]
    for n in range(len(LEAVES) + 1):
        assert root(HASHES[:n]) == ROOTS[n], n


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_inclusion_vectors_are_produced_and_verify(index, size, proof):
    assert inclusion_proof(PERFECT, index, size) == proof
    verify_inclusion(index, size, HASHES[index], proof, ROOTS[size])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_consistency_vectors_are_produced_and_verify(old, new, proof):
    assert consistency_proof(PERFECT, old, new) == proof
    verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


def inclusion_twins(index, size, proof, leaf, head):
    """Broken twins of a valid inclusion proof (after transparency-dev's corruptInclusionProof)."""
    yield index - 1, size, leaf, proof, head
    yield index + 1, size, leaf, proof, head
    yield index ^ 2, size, leaf, proof, head
    yield index, size * 2, leaf, proof, head
    yield index, size // 2, leaf, proof, head
    yield index, size, leaf_hash(b"wrong leaf"), proof, head
    yield index, size, leaf, proof, EMPTY_ROOT
    yield index, size, leaf, proof, OTHER
    yield index, size, leaf, [*proof, b""], head
    yield index, size, leaf, [*proof, head], head
    yield index, size, leaf, [b"", *proof], head
    yield index, size, leaf, [head, *proof], head
    for i in range(len(proof)):
        yield index, size, leaf, [*proof[:i], flipped(proof[i]), *proof[i + 1 :]], head
    if proof:
        yield index, size, leaf, proof[:-1], head
    if len(proof) > 1:
        yield index, size, leaf, [proof[0], OTHER, *proof[1:]], head


def consistency_twins(old, new, old_root, new_root, proof):
    yield old - 1, new, old_root, new_root, proof
    yield old + 1, new, old_root, new_root, proof
    yield old ^ 2, new, old_root, new_root, proof
    yield old, new * 2, old_root, new_root, proof
    yield old, new // 2, old_root, new_root, proof
    yield old, new, OTHER, new_root, proof
    yield old, new, old_root, OTHER, proof
    yield old, new, new_root, old_root, proof
    yield old, new, old_root, new_root, []
    yield old, new, old_root, new_root, [*proof, b""]
    yield old, new, old_root, new_root, [*proof, old_root]
    yield old, new, old_root, new_root, [*proof, new_root]
    yield old, new, old_root, new_root, [b"", *proof]
    yield old, new, old_root, new_root, [old_root, *proof]
    yield old, new, old_root, new_root, [new_root, *proof]
    yield old, new, old_root, new_root, [proof[0], *proof]
    yield old, new, old_root, new_root, proof[:-1]
    for i in range(len(proof)):
        yield old, new, old_root, new_root, [*proof[:i], flipped(proof[i], 4), *proof[i + 1 :]]


def test_every_proof_of_every_small_tree_verifies_and_its_broken_twins_fail():
    hashes = [leaf_hash(bytes([i, i * 7 % 256])) for i in range(70)]
    perfect = perfect_from_leaves(hashes)
    heads = [root(hashes[:n]) for n in range(len(hashes) + 1)]
    for size in range(1, len(hashes) + 1):
        for index in range(size):
            proof = inclusion_proof(perfect, index, size)
            verify_inclusion(index, size, hashes[index], proof, heads[size])
            for twin in inclusion_twins(index, size, proof, hashes[index], heads[size]):
                with pytest.raises(ProofError):
                    verify_inclusion(*twin)
        for old in range(1, size):
            proof = consistency_proof(perfect, old, size)
            verify_consistency(old, size, heads[old], heads[size], proof)
            for twin in consistency_twins(old, size, heads[old], heads[size], proof):
                with pytest.raises(ProofError):
                    verify_consistency(*twin)


def test_edge_cases_of_consistency():
    verify_consistency(0, 5, EMPTY_ROOT, ROOTS[5], [])  # the empty tree is consistent with any tree
    verify_consistency(3, 3, ROOTS[3], ROOTS[3], [])
    for args in [
        (3, 3, ROOTS[3], ROOTS[4], []),
        (4, 3, ROOTS[4], ROOTS[3], []),
        (0, 5, EMPTY_ROOT, ROOTS[5], [OTHER]),
        (3, 3, ROOTS[3], ROOTS[3], [OTHER]),
    ]:
        with pytest.raises(ProofError):
            verify_consistency(*args)


def test_a_proof_for_a_leaf_outside_the_tree_is_refused():
    for index, size in [(0, 0), (8, 8), (-1, 8)]:
        with pytest.raises(ProofError):
            inclusion_proof(PERFECT, index, size)
        with pytest.raises(ProofError):
            verify_inclusion(index, size, HASHES[0], [], ROOTS[1])
