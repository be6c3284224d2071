"""Signed checkpoints: the C2SP tlog-checkpoint body in a C2SP signed note, signed with Ed25519.

    <origin>\\n<tree size>\\n<base64 root hash>\\n\\n— <key name> <base64(key id || signature)>\\n

The key id is SHA-256(key name || 0x0A || 0x01 || public key)[:4]; a verifier key is the text
`<name>+<hex key id>+<base64(0x01 || public key)>` and a signer key, kept apart from the store,
`PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>` (the Go sumdb/note encodings). Written by
hand: these are a few lines of text over `cryptography`'s Ed25519, and no maintained Python package
implements them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = b"\x01"
DASH = "\u2014 "


class CheckpointError(ValueError):
    """A checkpoint or key that cannot be read or does not verify."""


def create_key_file(path: Path, text: str) -> None:
    """Write a new private key file, owner-only, whole or not at all, and never over one that exists
    (FileExistsError). The text goes to a temporary file first and is hard-linked into place: a
    stop halfway (a Ctrl-C, a full disk) must not leave a truncated key that every later run
    refuses, and two processes making the key at once must not both believe theirs is it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(temporary, path)  # atomic, and fails if the key exists
    finally:
        temporary.unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def _key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public).digest()[:4]


def check_key_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise CheckpointError(f"key name {name!r} must be non-empty, without spaces or '+'")


@dataclass(frozen=True)
class Signer:
    name: str
    private: Ed25519PrivateKey

    @classmethod
    def generate(cls, name: str) -> Signer:
        check_key_name(name)
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_text(cls, text: str) -> Signer:
        parts = text.strip().split("+", 4)  # the base64 key may itself hold a "+"
        try:
            if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
                raise ValueError
            raw = base64.b64decode(parts[4], validate=True)
            if raw[:1] != ED25519 or len(raw) != 33:
                raise ValueError
            signer = cls(parts[2], Ed25519PrivateKey.from_private_bytes(raw[1:]))
        except (ValueError, binascii.Error):
            raise CheckpointError("not an Ed25519 signer key (PRIVATE+KEY+name+id+key)") from None
        if parts[3] != signer.key_id.hex():
            raise CheckpointError("signer key id does not match its key")
        return signer

    @property
    def public(self) -> bytes:
        return self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def key_id(self) -> bytes:
        return _key_id(self.name, self.public)

    def to_text(self) -> str:
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        seed = self.private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return f"PRIVATE+KEY+{self.name}+{self.key_id.hex()}+{base64.b64encode(ED25519 + seed).decode()}"

    def verifier_key(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(ED25519 + self.public).decode()}"

    def sign_note(self, text: str) -> str:
        """A signed note: `text` (newline-terminated), a blank line, this key's signature line."""
        if not text.endswith("\n") or "\n\n" in text:
            raise CheckpointError("a note's text ends with one newline and has no blank line")
        signature = self.private.sign(text.encode())
        return f"{text}\n{DASH}{self.name} {base64.b64encode(self.key_id + signature).decode()}\n"

    def sign(self, checkpoint: Checkpoint) -> str:
        """The signed note for a checkpoint."""
        return self.sign_note(checkpoint.body())


def read_verifier_key(key: str) -> tuple[str, bytes, Ed25519PublicKey]:
    parts = key.strip().split("+", 2)
    try:
        if len(parts) != 3:
            raise ValueError
        name, key_id, raw = (
            parts[0],
            bytes.fromhex(parts[1]),
            base64.b64decode(parts[2], validate=True),
        )
        if raw[:1] != ED25519 or len(raw) != 33 or len(key_id) != 4:
            raise ValueError
    except (ValueError, binascii.Error):
        raise CheckpointError("not an Ed25519 verifier key (name+id+key)") from None
    if _key_id(name, raw[1:]) != key_id:
        raise CheckpointError("verifier key id does not match its key")
    return name, key_id, Ed25519PublicKey.from_public_bytes(raw[1:])


def parse_note(note: str) -> Checkpoint:
    """The checkpoint a note carries, unverified (use `verify_note`)."""
    body = note.rsplit("\n\n", 1)[0] + "\n" if "\n\n" in note else note
    lines = body.split("\n")
    try:
        origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2], validate=True)
    except (IndexError, ValueError, binascii.Error):
        raise CheckpointError(
            "not a checkpoint: origin, tree size and root hash lines expected"
        ) from None
    if not origin or size < 0 or len(root) != 32 or str(size) != lines[1]:
        raise CheckpointError("not a checkpoint: bad origin, size or root hash")
    return Checkpoint(origin, size, root)


def verify_note(note: str, verifier_key: str, origin: str | None = None) -> Checkpoint:
    """The checkpoint in `note`, if it carries a valid signature by `verifier_key` (and names `origin`)."""
    checkpoint = parse_note(open_note(note, verifier_key))
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(f"checkpoint is for origin {checkpoint.origin!r}, not {origin!r}")
    return checkpoint


def open_note(note: str, verifier_key: str) -> str:
    """The text of a signed note, if it carries a valid signature by `verifier_key`."""
    name, key_id, public = read_verifier_key(verifier_key)
    if "\n\n" not in note or not note.endswith("\n"):
        raise CheckpointError("not a signed note: no signature block")
    body, signatures = note.rsplit("\n\n", 1)
    body += "\n"
    for line in signatures.rstrip("\n").split("\n"):
        if not line.startswith(DASH):
            raise CheckpointError("malformed signature line")
        signer, _, encoded = line[len(DASH) :].rpartition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise CheckpointError("malformed signature line") from None
        if signer != name or raw[:4] != key_id:
            continue  # another key's signature (a witness, say): not ours to judge
        try:
            public.verify(raw[4:], body.encode())
        except InvalidSignature:
            raise CheckpointError(
                f"the signature by {name} does not verify: the checkpoint was altered"
            ) from None
        return body
    raise CheckpointError(f"no signature by {name} on this checkpoint")
