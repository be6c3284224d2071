"""Witnessing: checkpoints cosigned by someone the operator does not control.

A log is trusted because outsiders keep its checkpoints and check that each new one extends the
last (Certificate Transparency's answer). Per C2SP tlog-witness and tlog-cosignature:
- `Cosigner`: a witness's Ed25519 key; a cosignature/v1 is a signed note line over
  "cosignature/v1\\ntime <t>\\n" + the checkpoint's body, its key ID SHA-256(name || 0x0A || 0x04 || key)[:4];
- `server`: `taxgate witness serve`, a small witness that keeps its own state (the latest checkpoint
  it cosigned per log) and cosigns only a checkpoint that a consistency proof shows extends it;
- `client`: the log side: each new checkpoint sent with its consistency proof to the configured
  witnesses, their cosignatures checked and kept beside the checkpoint.
Ed25519 cosignatures (v1), not ML-DSA-44: the protocol allows either, and Ed25519 is what today's
witnesses and clients verify and what `cryptography` offers on every platform here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from taxgate.ledger.checkpoint import DASH, CheckpointError, check_key_name, create_key_file

COSIGNATURE_V1 = b"\x04"


class WitnessError(ValueError):
    """A witness key, cosignature or request that cannot be used; one line for the user."""


def _key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + COSIGNATURE_V1 + public).digest()[:4]


def _message(body: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + body.encode()


@dataclass(frozen=True)
class Cosigner:
    """A witness's signing key (kept by the witness, never by the log)."""

    name: str
    private: Ed25519PrivateKey

    @classmethod
    def generate(cls, name: str) -> Cosigner:
        try:
            check_key_name(name)
        except CheckpointError as exc:
            raise WitnessError(str(exc)) from None
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> Cosigner:
        try:
            parts = path.read_text(encoding="utf-8").strip().split("+", 4)
            raw = base64.b64decode(parts[4], validate=True)
            if parts[:2] != ["PRIVATE", "KEY"] or raw[:1] != COSIGNATURE_V1 or len(raw) != 33:
                raise ValueError
            cosigner = cls(parts[2], Ed25519PrivateKey.from_private_bytes(raw[1:]))
        except (OSError, IndexError, ValueError, binascii.Error):
            raise WitnessError(
                f"{path} is not a witness key (PRIVATE+KEY+name+id+key, type 0x04)"
            ) from None
        if parts[3] != cosigner.key_id.hex():
            raise WitnessError(f"{path}: the key id does not match the key")
        return cosigner

    def save(self, path: Path) -> None:
        seed = self.private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        encoded = base64.b64encode(COSIGNATURE_V1 + seed).decode()
        create_key_file(path, f"PRIVATE+KEY+{self.name}+{self.key_id.hex()}+{encoded}\n")

    @property
    def public(self) -> bytes:
        return self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def key_id(self) -> bytes:
        return _key_id(self.name, self.public)

    def verifier_key(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(COSIGNATURE_V1 + self.public).decode()}"

    def cosign(self, body: str, timestamp: int) -> str:
        """A cosignature/v1 line over a checkpoint's body (its text up to the blank line)."""
        if not 0 < timestamp < 2**63:
            raise WitnessError("a cosignature's time is a positive POSIX timestamp")
        signature = self.private.sign(_message(body, timestamp))
        blob = self.key_id + struct.pack(">Q", timestamp) + signature
        return f"{DASH}{self.name} {base64.b64encode(blob).decode()}\n"


@dataclass(frozen=True)
class WitnessKey:
    """A witness's verifier key, as the log (or a client) is configured with it."""

    name: str
    key_id: bytes
    public: Ed25519PublicKey

    @classmethod
    def parse(cls, text: str) -> WitnessKey:
        parts = text.strip().split("+", 2)
        try:
            raw = base64.b64decode(parts[2], validate=True)
            key_id = bytes.fromhex(parts[1])
            if raw[:1] != COSIGNATURE_V1 or len(raw) != 33 or len(key_id) != 4:
                raise ValueError
        except (IndexError, ValueError, binascii.Error):
            raise WitnessError(
                f"not a witness verifier key (name+id+base64(0x04 || key)): {text.strip()[:60]!r}"
            ) from None
        if _key_id(parts[0], raw[1:]) != key_id:
            raise WitnessError("the witness key id does not match its key")
        return cls(parts[0], key_id, Ed25519PublicKey.from_public_bytes(raw[1:]))

    def check(self, line: str, body: str) -> int | None:
        """The timestamp of `line` if it is this witness's valid cosignature on `body`; None if the
        line is another key's; WitnessError if it claims to be this key's and does not verify."""
        if not line.startswith(DASH):
            return None
        name, _, encoded = line[len(DASH) :].strip().rpartition(" ")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            return None
        if name != self.name or blob[:4] != self.key_id:
            return None
        if len(blob) != 4 + 8 + 64:
            raise WitnessError(f"a cosignature by {self.name} is malformed")
        (timestamp,) = struct.unpack(">Q", blob[4:12])
        try:
            self.public.verify(blob[12:], _message(body, timestamp))
        except InvalidSignature:
            raise WitnessError(f"the cosignature by {self.name} does not verify") from None
        return timestamp


def note_body(note: str) -> str:
    """The text of a signed note up to its blank line (what signatures cover)."""
    if "\n\n" not in note:
        raise CheckpointError("not a signed note: no signature block")
    return note.rsplit("\n\n", 1)[0] + "\n"
