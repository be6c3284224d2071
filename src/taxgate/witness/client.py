"""The log's side of witnessing: the latest checkpoint, with a consistency proof from the size each
witness last cosigned, sent to every configured witness (C2SP tlog-witness `add-checkpoint`); the
cosignatures that come back are checked against the witness's key and kept beside the checkpoint.
A witness that refuses (a 422: the tree does not extend what it saw) is reported, never retried
around: that refusal is the alarm a forked or rewritten log must raise.
"""

from __future__ import annotations

import base64
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select

from taxgate.ledger import Ledger
from taxgate.ledger.checkpoint import parse_note
from taxgate.store import Store
from taxgate.store.models import Cosignature
from taxgate.witness import WitnessError, WitnessKey, note_body

log = logging.getLogger("taxgate.witness")


@dataclass(frozen=True)
class Witness:
    url: str  # the submission prefix: add-checkpoint is posted to URL/add-checkpoint
    key: WitnessKey

    @classmethod
    def parse(cls, spec: str) -> Witness:
        """`URL=VERIFIER_KEY` (the URL holds no '='; the key may end in base64 padding)."""
        url, sep, key = spec.partition("=")
        if not sep or not url.startswith(("http://", "https://")):
            raise WitnessError(f"a witness is URL=VERIFIER_KEY, not {spec[:60]!r}")
        return cls(url.rstrip("/"), WitnessKey.parse(key))


def _post(url: str, body: bytes, timeout: float) -> tuple[int, str]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "text/plain"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - a configured witness
            return response.status, response.read(64 * 1024).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(64 * 1024).decode("utf-8", "replace")


def cosign_latest(store: Store, witnesses: list[Witness], timeout: float = 10.0) -> list[str]:
    """Ask each witness that has not cosigned the latest checkpoint to cosign it; returns one line
    per witness saying what happened (also logged)."""
    ledger = Ledger(store)
    with store.session() as session:
        note = ledger.latest_checkpoint(session)
        if note is None:
            return []
        checkpoint = parse_note(note)
        done = set(
            session.execute(
                select(Cosignature.witness).where(Cosignature.size == checkpoint.size)
            ).scalars()
        )
    said = []
    for witness in witnesses:
        if witness.key.name in done:
            continue
        try:
            said.append(_submit(store, ledger, witness, note, checkpoint.size, timeout))
        except (OSError, WitnessError) as exc:
            said.append(f"witness {witness.key.name}: not cosigned: {exc}")
        log.info(said[-1])
    return said


def _submit(
    store: Store, ledger: Ledger, witness: Witness, note: str, size: int, timeout: float
) -> str:
    with store.session() as session:
        old = (
            session.execute(
                select(func.max(Cosignature.size)).where(Cosignature.witness == witness.key.name)
            ).scalar_one()
            or 0
        )
    for _ in range(2):  # once more at the size the witness says it holds (409)
        if old > size:
            return (
                f"witness {witness.key.name}: REFUSED: it has cosigned {old:,} entries, more than the "
                f"log's {size:,}: the log was cut back or replaced"
            )
        with store.session() as session:
            proof = ledger.consistency(session, old, size) if 0 < old < size else []
        body = (
            f"old {old}\n"
            + "".join(base64.b64encode(h).decode() + "\n" for h in proof)
            + "\n"
            + note
        )
        status, answer = _post(witness.url + "/add-checkpoint", body.encode(), timeout)
        if status == 409 and answer.strip().isdigit() and int(answer.strip()) != old:
            old = int(answer.strip())
            continue
        break
    if status != 200:
        return f"witness {witness.key.name}: REFUSED ({status}): {answer.strip()[:200]}"
    body_text = note_body(note)
    lines = [line + "\n" for line in answer.splitlines() if line.strip()]
    for line in lines:
        timestamp = witness.key.check(line, body_text)
        if timestamp is not None:
            with store.session.begin() as session:
                session.merge(
                    Cosignature(
                        size=size,
                        witness=witness.key.name,
                        line=line,
                        cosigned_at=datetime.fromtimestamp(timestamp, UTC),
                    )
                )
            return f"witness {witness.key.name}: cosigned the checkpoint at size {size:,}"
    raise WitnessError(f"witness {witness.key.name} answered without a cosignature by its key")


def cosigned_note(session, note: str) -> str:
    """A checkpoint note with the witnesses' cosignatures kept for it appended (as served)."""
    size = parse_note(note).size
    lines = session.execute(
        select(Cosignature.line).where(Cosignature.size == size).order_by(Cosignature.witness)
    ).scalars()
    return note + "".join(lines)
