"""`taxgate witness serve`: a witness per C2SP tlog-witness, small enough to run on a machine the
operator does not control (a court monitor's, say).

It is configured with the logs it watches (origin and verifier key) and keeps, per log, the latest
checkpoint it cosigned, in its own state file. `POST /add-checkpoint` cosigns a new checkpoint only
if it is signed by the log and a consistency proof shows it extends the one recorded (the check
and the update are one atomic step); `GET /<sha256(origin)>/checkpoint` serves the latest one it
cosigned, for monitors. Status codes are the protocol's: 400 malformed, 403 not signed by the log,
404 unknown log, 409 (with the witness's size) when the old size is not the one it recorded, 422
when the proof does not verify.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import json
import os
import re
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from taxgate.ledger import merkle
from taxgate.ledger.checkpoint import Checkpoint, CheckpointError, open_note, parse_note
from taxgate.witness import Cosigner, WitnessError, note_body

MAX_BODY = 64 * 1024
MAX_PROOF = 63


class State:
    """The latest checkpoint cosigned per log origin, in one JSON file, updated atomically."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()

    def read(self) -> dict:
        if not self.path.exists():
            return {}
        return json.loads(self.path.read_text(encoding="utf-8"))

    @contextmanager
    def updating(self):
        """The state, locked against other requests and other processes until the block ends;
        what the block leaves in it is written (fsync, then rename) before the lock is let go."""
        with self._lock, open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self.read()
            before = json.dumps(state, sort_keys=True)
            yield state
            if json.dumps(state, sort_keys=True) != before:
                temporary = self.path.with_suffix(".tmp")
                with open(temporary, "w", encoding="utf-8") as fh:
                    json.dump(state, fh, indent=2, sort_keys=True)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(temporary, self.path)


class Refusal(Exception):
    def __init__(
        self, status: int, message: str, body: str | None = None, media: str = "text/plain"
    ):
        super().__init__(message)
        self.status, self.body, self.media = (
            status,
            body if body is not None else message + "\n",
            media,
        )


def read_request(raw: bytes) -> tuple[int, list[bytes], str]:
    """(old size, consistency proof, checkpoint note) of an add-checkpoint body; Refusal 400."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Refusal(400, "the request is not UTF-8") from None
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise Refusal(400, "the request has no blank line before the checkpoint")
    lines = head.split("\n")
    first = lines[0]
    if not re.fullmatch(r"old (0|[1-9][0-9]{0,18})", first):
        raise Refusal(400, "the first line must be 'old <size>'")
    if len(lines) - 1 > MAX_PROOF:
        raise Refusal(400, f"at most {MAX_PROOF} consistency proof lines")
    try:
        proof = [base64.b64decode(line, validate=True) for line in lines[1:]]
    except binascii.Error:
        raise Refusal(400, "a consistency proof line is not base64") from None
    if any(len(h) != merkle.HASH_SIZE for h in proof):
        raise Refusal(400, "each consistency proof line is one 32-byte hash")
    return int(first[4:]), proof, note


def add_checkpoint(
    state: State, cosigner: Cosigner, logs: dict[str, str], raw: bytes, now: int
) -> str:
    """The witness's answer to one add-checkpoint request: its cosignature line, or a Refusal."""
    old, proof, note = read_request(raw)
    try:
        checkpoint: Checkpoint = parse_note(note)
    except CheckpointError as exc:
        raise Refusal(400, str(exc)) from None
    key = logs.get(checkpoint.origin)
    if key is None:
        raise Refusal(404, f"this witness does not watch the log {checkpoint.origin!r}")
    try:
        open_note(note, key)
    except CheckpointError as exc:
        raise Refusal(403, str(exc)) from None
    if old > checkpoint.size:
        raise Refusal(400, f"old size {old} is beyond the checkpoint's size {checkpoint.size}")
    if checkpoint.size == 0 and checkpoint.root != merkle.EMPTY_ROOT:
        raise Refusal(422, "an empty tree has the empty root")
    with state.updating() as known:
        seen = known.get(checkpoint.origin) or {
            "size": 0,
            "root": base64.b64encode(merkle.EMPTY_ROOT).decode(),
        }
        if old != seen["size"]:
            raise Refusal(
                409,
                f"this witness last cosigned size {seen['size']}",
                f"{seen['size']}\n",
                "text/x.tlog.size",
            )
        seen_root = base64.b64decode(seen["root"])
        if old == 0 and proof:
            raise Refusal(422, "no consistency proof is needed from the empty tree")
        if old == checkpoint.size and checkpoint.root != seen_root:
            raise Refusal(422, "same size, another root: the log forked")
        if 0 < old < checkpoint.size:
            try:
                merkle.verify_consistency(old, checkpoint.size, seen_root, checkpoint.root, proof)
            except merkle.ProofError as exc:
                raise Refusal(
                    422, f"the checkpoint does not extend the one cosigned at size {old}: {exc}"
                ) from None
        line = cosigner.cosign(note_body(note), now)
        known[checkpoint.origin] = {
            "size": checkpoint.size,
            "root": base64.b64encode(checkpoint.root).decode(),
            "note": note + line,
        }
    return line


def create_witness_app(cosigner: Cosigner, logs: dict[str, str], state_path: Path) -> FastAPI:
    """The witness's HTTP interface; `logs`: origin -> the log's verifier key."""
    state = State(state_path)
    app = FastAPI(title="taxgate witness", openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/add-checkpoint")
    async def post_checkpoint(request: Request) -> Response:
        raw = b""
        async for piece in request.stream():
            raw += piece
            if len(raw) > MAX_BODY:
                return PlainTextResponse("the request is too large\n", 413)
        try:
            line = add_checkpoint(state, cosigner, logs, raw, int(time.time()))
        except Refusal as refusal:
            return Response(refusal.body, refusal.status, media_type=refusal.media)
        except WitnessError as exc:
            return PlainTextResponse(f"{exc}\n", 400)
        return PlainTextResponse(line)

    @app.get("/{origin_hash}/checkpoint")
    def get_checkpoint(origin_hash: str) -> Response:
        for origin, seen in state.read().items():
            if hashlib.sha256(origin.encode()).hexdigest() == origin_hash:
                return PlainTextResponse(seen["note"], headers={"Cache-Control": "no-cache"})
        return PlainTextResponse("never cosigned a checkpoint of that log\n", 404)

    return app
