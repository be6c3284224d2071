"""Inclusion proofs: made from the store, checked offline with only the proof, a checkpoint and the
log's key. A proof handed to `read_proof` comes from someone else, so it is read strictly: JSON of
bounded size and depth, integers that are integers, hashes that are 32 bytes of base64."""

from __future__ import annotations

import base64
import binascii
import json

from taxgate.ledger import merkle
from taxgate.ledger.checkpoint import Checkpoint, parse_note, verify_note
from taxgate.ledger.log import Ledger, LedgerError, is_int, loads
from taxgate.store import Store
from taxgate.store.models import CheckpointRecord

MAX_PROOF_BYTES = 1 << 20
MAX_INDEX = (1 << 63) - 1


class ProofFormatError(ValueError):
    """A proof that cannot be read as one; the message is one line."""


def inclusion_proof(store: Store, index: int, size: int | None = None) -> dict:
    """An inclusion proof for entry `index` in the tree of `size` entries (default: the latest
    checkpoint's), with the entry and that checkpoint: all `check_proof` needs, offline."""
    ledger = Ledger(store)
    with store.session() as session:
        note = ledger.latest_checkpoint(session)
        if size is None and note is None:
            raise LedgerError("no checkpoint yet: run `taxgate ledger checkpoint` first")
        size = parse_note(note).size if size is None else size
        proof = ledger.prove(session, index, size)
        entry = ledger.entry(session, index)
        row = session.get(CheckpointRecord, size)
    return {
        "index": index,
        "size": size,
        "entry": entry.decode(),
        "proof": [base64.b64encode(h).decode() for h in proof],
        "checkpoint": row.note if row else None,
    }


def read_proof(text: str | bytes) -> dict:
    """A proof as `inclusion_proof` writes it, read strictly; ProofFormatError otherwise."""
    if len(text) > MAX_PROOF_BYTES:
        raise ProofFormatError(f"a proof is at most {MAX_PROOF_BYTES:,} bytes")

    def no_floats(value: str):
        raise ProofFormatError(f"{value} is not an integer")

    try:
        data = loads(text, depth=8, parse_float=no_floats, parse_constant=no_floats)
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, ProofFormatError):
            raise
        if "nested more than" in str(exc):
            raise ProofFormatError("the proof is nested too deeply to be a proof") from None
        raise ProofFormatError(f"not JSON: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ProofFormatError(
            "a proof is a JSON object with index, size, entry, proof and checkpoint"
        )
    for name in ("index", "size"):
        value = data.get(name)
        if not is_int(value) or not 0 <= value <= MAX_INDEX:
            raise ProofFormatError(
                f"{name!r} must be a whole number from 0 to 2^63-1, not {value!r:.40}"
            )
    if not data["index"] < data["size"]:
        raise ProofFormatError(f"index {data['index']} is not inside a tree of size {data['size']}")
    if not isinstance(data.get("entry"), str):
        raise ProofFormatError("'entry' must be the entry's text")
    try:
        data["entry"].encode("utf-8")
    except UnicodeEncodeError:
        raise ProofFormatError(
            "'entry' is not text that UTF-8 can hold (a lone surrogate)"
        ) from None
    hashes = data.get("proof")
    if (
        not isinstance(hashes, list)
        or len(hashes) > 64
        or not all(isinstance(h, str) for h in hashes)
    ):
        raise ProofFormatError("'proof' must be a list of at most 64 base64 hashes")
    try:
        decoded = [base64.b64decode(h, validate=True) for h in hashes]
    except binascii.Error:
        raise ProofFormatError("'proof' holds something that is not base64") from None
    if any(len(h) != merkle.HASH_SIZE for h in decoded):
        raise ProofFormatError("every hash in 'proof' is 32 bytes")
    if data.get("checkpoint") is not None and not isinstance(data["checkpoint"], str):
        raise ProofFormatError("'checkpoint' must be a signed note (text)")
    return {**data, "hashes": decoded}


def check_proof(proof: dict, verifier_key: str, note: str | None = None) -> Checkpoint:
    """Check a proof from `read_proof` against a checkpoint (default: the one it carries) signed by
    `verifier_key`. Returns the trusted checkpoint; raises CheckpointError or merkle.ProofError."""
    if note is None and not proof.get("checkpoint"):
        raise ProofFormatError("the proof carries no checkpoint: give one")
    trusted = verify_note(note or proof["checkpoint"], verifier_key)
    if trusted.size != proof["size"]:
        raise merkle.ProofError(
            f"the proof is for tree size {proof['size']}, the checkpoint for {trusted.size}"
        )
    hashes = proof["hashes"] if "hashes" in proof else read_proof(json.dumps(proof))["hashes"]
    merkle.verify_inclusion(
        proof["index"],
        proof["size"],
        merkle.leaf_hash(proof["entry"].encode()),
        hashes,
        trusted.root,
    )
    return trusted
