"""The ledger in the store: proofs that verify with nothing but a checkpoint and the public key, and
tampering made directly in the database (UPDATE, DELETE, reordering, insertion) found by verify."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from taxgate.ledger import Ledger, LedgerError, canonical, merkle, verify_log
from taxgate.ledger.checkpoint import Signer, verify_note


def entries(n: int, start: int = 0) -> list[dict]:
    return [{"kind": "test", "n": i, "text": f"entry {i} é"} for i in range(start, start + n)]


@pytest.fixture()
def ledger(store):
    return Ledger(store)


@pytest.fixture(scope="module")
def signer():
    return Signer.generate("taxgate.example/ledger")


def sign(ledger, signer) -> str:
    """Sign the current head directly (the log alone: `signing` keeps the signer's record)."""
    with ledger.store.session.begin() as session:
        size = ledger.size(session)
        return ledger.store_checkpoint(session, signer, size, ledger.root(session, size))


def problems(ledger, key, kept=()) -> list:
    with ledger.store.engine.connect() as connection:
        return list(verify_log(connection, key, kept))


def fill(ledger, sizes) -> None:
    """Append in several transactions of the given sizes (tiles fill across appends)."""
    done = 0
    for n in sizes:
        with ledger.store.session.begin() as session:
            assert ledger.append(session, entries(n, done)) == range(done, done + n)
        done += n


def test_canonical_is_rfc8785_for_ledger_entries():
    rfc8785 = pytest.importorskip("rfc8785")
    samples = [
        {"b": 1, "a": [True, None, "x\u2028y"], "é": {"z": '\u0001"\\', "k": -12}},
        *entries(3),
    ]
    for entry in samples:
        assert canonical(entry) == rfc8785.dumps(entry)
    with pytest.raises(TypeError):
        canonical({"weight": 1.5})


def test_canonical_bytes_are_the_standard_encoders_for_every_character_and_value():
    """The entry bytes are what they were when the standard library wrote them: every character
    as a value and as a key (escapes, U+2028, DEL, astral planes), keys in code point order, the
    integers at 64-bit bounds, codes that are str enums; what no entry holds is refused."""
    import dataclasses
    import json
    from datetime import UTC, datetime

    from taxgate.domain import ReasonCode
    from taxgate.ledger.log import loads

    standard = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
    points = [*range(0x3000), *range(0x3000, 0x110000, 97)]
    for c in (c for c in points if not 0xD800 <= c <= 0xDFFF):
        entry = {"v": f"a{chr(c)}b", f"k{chr(c)}": c, chr(c): [chr(c)]}
        assert canonical(entry, checked=False) == standard(entry).encode(), hex(c)
    keys = {"é": 1, "z": 2, "\U0001f600": 3, "\uffff": 4, "A": 5, "": 6}
    values = {"n": [0, -1, 2**63 - 1, -(2**63), 2**64 - 1], "t": True, "f": False, "x": None}
    codes = {"reasons": [ReasonCode.ID_POSITIVE, ReasonCode.ADDRESS_PLACEHOLDER]}
    for entry in (keys, values, codes, {"nested": {"b": {"d": [], "c": {}}, "a": ()}}):
        assert canonical(entry, checked=False) == standard(entry).encode()

    @dataclasses.dataclass
    class Row:
        a: int

    for not_an_entry in ({"at": datetime(2026, 1, 1, tzinfo=UTC)}, {"row": Row(1)}, {1: "a"}):
        with pytest.raises(TypeError):
            canonical(not_an_entry)
    for document in ('{"weight": NaN}', '{"w": Infinity}', "[-Infinity]", '{"hours": 1e400}'):
        with pytest.raises(ValueError, match="is not a JSON value|past the range"):
            loads(document)  # NaN re-encoded by orjson would read as null: it never gets that far


@pytest.mark.slow  # every tree size to a thousand
def test_roots_and_proofs_match_the_pure_tree(ledger, signer):
    fill(
        ledger, [1, 254, 1, 300, 44, 70_000 - 600]
    )  # tiles filled across appends, and a second tile level
    blobs = [canonical(e) for e in entries(70_000)]
    leaves = [merkle.leaf_hash(b) for b in blobs]
    with ledger.store.session() as session:
        assert ledger.size(session) == 70_000
        for size in (1, 255, 256, 257, 65_536, 65_537, 70_000):
            assert ledger.root(session, size) == merkle.root(leaves[:size])
    note = sign(ledger, signer)
    with ledger.store.session() as session:
        checkpoint = verify_note(
            note, signer.verifier_key()
        )  # a verifier holds only this, a proof, the key
        for index in (0, 255, 256, 65_535, 65_536, 69_999):
            proof = ledger.prove(session, index)
            merkle.verify_inclusion(
                index,
                checkpoint.size,
                merkle.leaf_hash(ledger.entry(session, index)),
                proof,
                checkpoint.root,
            )
        for old in (1, 256, 65_536, 69_000):
            proof = ledger.consistency(session, old)
            merkle.verify_consistency(
                old, 70_000, merkle.root(leaves[:old]), checkpoint.root, proof
            )
        with pytest.raises(LedgerError):
            ledger.prove(session, 70_000)
        with pytest.raises(LedgerError):
            ledger.consistency(session, 10, 80_000)
    assert problems(ledger, signer.verifier_key()) == []


def tamper(ledger, sql: str, **params) -> None:
    with ledger.store.engine.begin() as connection:
        connection.execute(text(sql), params)


@pytest.mark.parametrize(
    ("change", "first_bad"),
    [
        ("UPDATE ledger_entries SET entry = :blob WHERE idx = 700", 700),
        ("DELETE FROM ledger_entries WHERE idx = 701", 701),
        ("REORDER", 702),
        ("INSERT INTO ledger_entries (idx, entry, leaf_hash) VALUES (1000, :blob, :leaf)", 1000),
    ],
    ids=["update", "delete", "reorder", "insert"],
)
def test_tampering_in_the_database_is_found(ledger, signer, change, first_bad):
    fill(ledger, [1000])
    sign(ledger, signer)
    forged = canonical({"kind": "test", "n": 700, "text": "forged"})
    if change == "REORDER":  # swap two entries, leaf hashes and all
        tamper(ledger, "UPDATE ledger_entries SET idx = -1 WHERE idx = 702")
        tamper(ledger, "UPDATE ledger_entries SET idx = 702 WHERE idx = 703")
        tamper(ledger, "UPDATE ledger_entries SET idx = 703 WHERE idx = -1")
    else:
        tamper(ledger, change, blob=forged, leaf=merkle.leaf_hash(forged))
    found = problems(ledger, signer.verifier_key())
    assert found and found[0].index == first_bad, found


def test_rewriting_hashes_too_is_caught_by_the_signed_checkpoint(ledger, signer):
    fill(ledger, [600])
    sign(ledger, signer)
    forged = canonical({"kind": "test", "n": 5, "text": "forged"})
    leaf = merkle.leaf_hash(forged)
    tamper(
        ledger,
        "UPDATE ledger_entries SET entry = :blob, leaf_hash = :leaf WHERE idx = 5",
        blob=forged,
        leaf=leaf,
    )
    with ledger.store.engine.begin() as connection:  # and the stored tile, consistently
        tile = connection.execute(
            text("SELECT hashes FROM ledger_tiles WHERE level = 0 AND n = 0")
        ).scalar_one()
        connection.execute(
            text("UPDATE ledger_tiles SET hashes = :h WHERE level = 0 AND n = 0"),
            {"h": tile[: 5 * 32] + leaf + tile[6 * 32 :]},
        )
    found = problems(ledger, signer.verifier_key())
    assert found and ("checkpoint" in found[0].message or "tree hashes" in found[0].message)


def test_a_forged_checkpoint_is_refused(ledger, signer):
    fill(ledger, [10])
    sign(ledger, signer)
    tamper(ledger, "UPDATE ledger_checkpoints SET note = replace(note, '\n10\n', '\n9\n')")
    found = problems(ledger, signer.verifier_key())
    assert found and "checkpoint" in found[0].message
