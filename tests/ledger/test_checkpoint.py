"""Signed checkpoints: the Go sumdb/note reference vector, and every alteration refused."""

from __future__ import annotations

import pytest

from taxgate.ledger.checkpoint import (
    Checkpoint,
    CheckpointError,
    Signer,
    open_note,
    parse_note,
    verify_note,
)

# golang.org/x/mod/sumdb/note's documented example key and note (used as data).
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_the_reference_note_is_reproduced_byte_for_byte():
    signer = Signer.from_text(GO_SKEY)
    assert signer.key_id.hex() == "c74f20a3"
    assert signer.verifier_key() == GO_VKEY
    assert signer.to_text() == GO_SKEY
    assert signer.sign_note(GO_TEXT) == GO_NOTE
    assert open_note(GO_NOTE, GO_VKEY) == GO_TEXT


def test_a_checkpoint_round_trips_and_alterations_fail():
    signer = Signer.generate("taxgate.example/ledger")
    checkpoint = Checkpoint("taxgate.example/ledger", 1234, bytes(range(32)))
    note = signer.sign(checkpoint)
    assert note.startswith(
        "taxgate.example/ledger\n1234\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n\n\u2014 "
    )
    assert verify_note(note, signer.verifier_key(), origin="taxgate.example/ledger") == checkpoint
    assert parse_note(note) == checkpoint
    altered = [
        note.replace("\n1234\n", "\n1235\n"),  # a size changed
        note.replace("AAEC", "AAED"),  # a root changed
        note.replace("taxgate.example/ledger\n", "other.example/ledger\n", 1),  # another origin
    ]
    for bad in altered:
        with pytest.raises(CheckpointError):
            verify_note(bad, signer.verifier_key())
    with pytest.raises(CheckpointError, match="no signature"):
        verify_note(note, Signer.generate("taxgate.example/ledger").verifier_key())
    with pytest.raises(CheckpointError, match="origin"):
        verify_note(note, signer.verifier_key(), origin="elsewhere")


def test_malformed_keys_and_notes_are_refused_with_a_reason():
    for key in ["", "PRIVATE+KEY+x", GO_SKEY.replace("c74f20a3", "00000000")]:
        with pytest.raises(CheckpointError):
            Signer.from_text(key)
    for key in ["", "name+zz+AAAA", GO_VKEY.replace("c74f20a3", "00000000")]:
        with pytest.raises(CheckpointError):
            open_note(GO_NOTE, key)
    for note in ["", GO_TEXT, GO_TEXT + "\n- PeterNeumann abc\n"]:
        with pytest.raises(CheckpointError):
            open_note(note, GO_VKEY)


def test_a_stop_while_the_signing_key_is_written_leaves_no_key_and_the_next_run_makes_one(
    tmp_path, monkeypatch
):
    """A Ctrl-C (or a full disk) between creating the key file and filling it once left an empty
    key that every later run refused ("not an Ed25519 signer key"). Now the key appears whole or
    not at all, and no partial file is left beside it."""
    import os

    from taxgate.ledger import load_signer

    key = tmp_path / "keys" / "ledger.key"
    real_fdopen = os.fdopen

    class Stopped:
        """The file the key is written to, stopped as its text goes in."""

        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, text):
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: Stopped(real_fdopen(fd, *a, **k)))
    with pytest.raises(KeyboardInterrupt):
        load_signer(key)
    assert list(key.parent.iterdir()) == []
    monkeypatch.setattr(os, "fdopen", real_fdopen)

    signer = load_signer(key)
    assert load_signer(key).verifier_key() == signer.verifier_key()
    assert (key.stat().st_mode & 0o777) == 0o600
    assert key.with_suffix(".pub").read_text() == signer.verifier_key() + "\n"
    assert sorted(p.name for p in key.parent.iterdir()) == ["ledger.key", "ledger.pub"]


def test_a_key_made_by_another_process_first_is_the_key_and_a_lost_pub_comes_back(
    tmp_path, monkeypatch
):
    """Two runs making the key at once: the one that loses the race uses the winner's key and
    never overwrites it. A `.pub` lost (a stop between the key and it) is written again from the key."""
    from taxgate.ledger import signing
    from taxgate.ledger.checkpoint import create_key_file

    key = tmp_path / "ledger.key"
    theirs = Signer.generate("taxgate.example/ledger")

    def raced(path, text):
        create_key_file(path, theirs.to_text() + "\n")  # the other process, just before us
        create_key_file(path, text)

    monkeypatch.setattr(signing, "create_key_file", raced)
    assert signing.load_signer(key).verifier_key() == theirs.verifier_key()
    assert key.read_text() == theirs.to_text() + "\n"
    with pytest.raises(FileExistsError):
        create_key_file(key, "PRIVATE+KEY+other\n")
    assert key.read_text() == theirs.to_text() + "\n"

    key.with_suffix(".pub").unlink()
    assert signing.load_signer(key).verifier_key() == theirs.verifier_key()
    assert key.with_suffix(".pub").read_text() == theirs.verifier_key() + "\n"
