"""Signing checkpoints, so that a log rewritten in the store is never signed.

The key lives off the database host (TAXGATE_LEDGER_KEY, default ./taxgate-ledger.key). Beside it
the signer keeps its own record of the last checkpoint it signed and of how many checkpoints the
store held then (`<key>.last`, JSON). Before it signs again it requires what Certificate
Transparency requires of a log: the store still holds that checkpoint and no fewer checkpoints than
then, and the tree now extends it (a consistency proof from the last signed size to the new one,
checked against the recorded root). A store whose checkpoints were cut, or whose log was rewritten
and re-appended, is refused with one line, and nothing is signed.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path

from taxgate.ledger import merkle
from taxgate.ledger.checkpoint import Checkpoint, CheckpointError, Signer, verify as verify_note
from taxgate.ledger.log import ORIGIN, Ledger, LedgerError
from taxgate.store import Store


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


def last_signed(key: Path, signer: Signer) -> tuple[Checkpoint | None, int]:
    """The last checkpoint this key signed and how many checkpoints the store held then, from the
    signer's own record ((None, 0): it never signed)."""
    record = record_path(key)
    if not record.exists():
        return None, 0
    try:
        kept = json.loads(record.read_text(encoding="utf-8"))
        return verify_note(kept["checkpoint"], signer.verifier_key()), int(kept["stored"])
    except (OSError, ValueError, KeyError, TypeError) as exc:  # CheckpointError is a ValueError
        raise LedgerError(f"the signer's record {record} cannot be read ({exc}): restore it from a backup; "
                          "nothing is signed without it") from None


def _write_record(key: Path, note: str, stored: int) -> None:
    record = record_path(key)
    temporary = record.with_suffix(".last.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"checkpoint": note, "stored": stored}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temporary, record)


def sign_checkpoint(store: Store, path: Path | str | None = None, *, trust_store: bool = False) -> str:
    """Sign the current tree head after checking that it extends the last one this key signed, and
    record it beside the key; returns the note (the one already stored, if this size was signed).

    `trust_store` starts the signer's record from the store's latest checkpoint, once, for a key
    that signed before it kept a record; a key with a record never needs it."""
    key = key_path(path)
    signer = load_signer(key)
    ledger = Ledger(store)
    with _exclusive(key):
        last, stored_then = last_signed(key, signer)
        with store.session.begin() as session:
            size = ledger._locked_size(session)  # nobody appends while we check and sign
            stored = {}
            for stored_size, note in ledger.stored_checkpoints(session):
                try:
                    stored[stored_size] = verify_note(note, signer.verifier_key(), origin=ledger.origin)
                except (CheckpointError, TypeError) as exc:
                    raise LedgerError(f"the stored checkpoint at size {stored_size!r} does not verify ({exc}): "
                                      "run `taxgate ledger verify`; nothing is signed") from None
            if last is None and stored:
                if not trust_store:
                    raise LedgerError(
                        f"this key keeps no record of the checkpoints it signed ({record_path(key)} is missing) but "
                        f"the store holds {len(stored)} signed with it: put the record back, or start it from the "
                        "store once with `taxgate ledger checkpoint --trust-store` after `taxgate ledger verify "
                        "--checkpoint` passes against a checkpoint kept elsewhere")
                last = stored[max(stored)]
            if last is not None:
                kept = stored.get(last.size)
                if kept is None or kept.root != last.root:
                    raise LedgerError(
                        f"the store no longer holds the checkpoint this key signed last (size {last.size:,}): its "
                        "checkpoint history was cut or rewritten; nothing is signed")
                if len(stored) < stored_then:
                    raise LedgerError(
                        f"the store holds {len(stored)} checkpoints, fewer than the {stored_then} it held when this key "
                        "signed last: its checkpoint history was cut; nothing is signed")
                if size < last.size:
                    raise LedgerError(f"the ledger has {size:,} entries, fewer than the {last.size:,} this key signed "
                                      "last: entries were removed; nothing is signed")
            root = ledger.root(session, size)
            if last is not None:
                try:
                    merkle.verify_consistency(last.size, size, last.root, root, ledger.consistency(session, last.size, size))
                except merkle.ProofError:
                    raise LedgerError(
                        f"the tree of {size:,} entries does not extend the one this key signed last (size "
                        f"{last.size:,}): the log was rewritten; nothing is signed") from None
            if size in stored:
                if stored[size].root != root:
                    raise LedgerError(f"the checkpoint stored at size {size:,} does not match the tree: run "
                                      "`taxgate ledger verify`; nothing is signed")
                note = next(n for s, n in ledger.stored_checkpoints(session) if s == size)
                held = len(stored)
            else:
                note = ledger.store_checkpoint(session, signer, size, root)
                held = len(stored) + 1
        if last is None or size > last.size or held != stored_then:
            _write_record(key, note, held)
    return note
