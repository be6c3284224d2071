"""Receiving a batch (manifest + rows, multipart) without holding it in memory: the rows stream to
disk as they arrive, with their SHA-256, and stop at the size limit. Nothing is kept unless every
check passes: size, the manifest as JSON naming the uploader's own agency, a rows path inside the
upload, the rows file's type by name and by content, and the manifest as the pipeline reads it.
A refused upload leaves no file and no row behind, and its 4xx says why in one line."""

from __future__ import annotations

import codecs
import hashlib
import hmac
import json
import secrets
import shutil
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import pyarrow.parquet as pq
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from streaming_form_data import StreamingFormDataParser
from streaming_form_data.parser import ParseFailedException
from streaming_form_data.targets import BaseTarget, ValueTarget
from streaming_form_data.validators import MaxSizeValidator, ValidationError

from taxgate.accounts import Principal
from taxgate.domain import REQUEST_COLUMNS
from taxgate.intake import IntakeError, read_manifest
from taxgate.intake.manifest import FORMATS
from taxgate.service.settings import MIB, Settings
from taxgate.store import Store
from taxgate.store.models import Submission

SNIFF_BYTES = 64 * 1024


class UploadError(Exception):
    """An upload refused: `status` (4xx) and the one-line reason the sender sees."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


class _RowsFile(BaseTarget):
    """The rows part, written straight to disk and hashed on the way; refused past `limit` bytes."""

    def __init__(self, path: Path, limit: int):
        super().__init__()
        self.path, self.limit, self.size = path, limit, 0
        self.sha256 = hashlib.sha256()
        self.started = False
        self._fh = None

    def on_start(self) -> None:
        if self.started:
            raise UploadError(422, "send one 'rows' part, not several")
        self.started = True
        self._fh = open(self.path, "wb")

    def on_data_received(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise UploadError(413, f"the rows file is larger than the limit of {self.limit // MIB} MiB")
        self._fh.write(chunk)
        self.sha256.update(chunk)

    def on_finish(self) -> None:
        self.close()

    def close(self) -> None:
        if self._fh is not None and not self._fh.closed:
            self._fh.close()


async def receive(request: Request, user: Principal, settings: Settings, store: Store, wake=None,
                  csrf: str | None = None) -> dict:
    """Stream one upload to disk, check it, and queue it. Raises UploadError. `csrf`: the token a
    console form must carry in its `csrf` field."""
    limit = settings.max_rows_bytes + settings.max_manifest_bytes + 64 * 1024
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise UploadError(413, f"the upload is larger than the limit of {settings.max_rows_bytes // MIB} MiB")
    try:
        parser = StreamingFormDataParser(request.headers)
    except ParseFailedException:
        raise UploadError(415, "send multipart/form-data with a 'manifest' part and a 'rows' part") from None
    temp = settings.incoming / secrets.token_hex(8)
    temp.mkdir(parents=True)
    manifest = ValueTarget(validator=MaxSizeValidator(settings.max_manifest_bytes))
    rows = _RowsFile(temp / "rows", settings.max_rows_bytes)
    token = ValueTarget(validator=MaxSizeValidator(256))
    parser.register("manifest", manifest)
    parser.register("rows", rows)
    parser.register("csrf", token)
    try:
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise UploadError(413, f"the upload is larger than the limit of {settings.max_rows_bytes // MIB} MiB")
            parser.data_received(chunk)
        rows.close()
        if csrf is not None and not hmac.compare_digest(token.value, csrf.encode()):
            raise UploadError(403, "the form has expired: reload the page")
        return await run_in_threadpool(_accept, temp, manifest.value, rows, user, settings, store, wake)
    except ValidationError:
        raise UploadError(413, f"the manifest is larger than the limit of {settings.max_manifest_bytes // 1024} KiB") from None
    except ParseFailedException:
        raise UploadError(400, "the multipart body is malformed") from None
    finally:
        rows.close()
        shutil.rmtree(temp, ignore_errors=True)


def _accept(temp: Path, manifest_bytes: bytes, rows: _RowsFile, user: Principal, settings: Settings, store: Store,
            wake) -> dict:
    if not manifest_bytes:
        raise UploadError(422, "the 'manifest' part is missing or empty")
    if not rows.started or rows.size == 0:
        raise UploadError(422, "the 'rows' part is missing or empty")
    try:
        raw = json.loads(manifest_bytes.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UploadError(422, f"the manifest is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise UploadError(422, "the manifest must be a JSON object")
    agency = raw.get("agency").strip() if isinstance(raw.get("agency"), str) else ""
    if agency != user.agency:
        raise UploadError(403, f"this account submits for {user.agency}; the manifest names {agency or 'no agency'}")
    relative = _rows_path(raw.get("requests"))
    fmt = _format(raw, relative, getattr(rows, "multipart_filename", None) or "")
    _sniff(temp / "rows", fmt)

    stamp = datetime.now(UTC)
    folder = settings.submissions / f"{stamp:%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"
    folder.mkdir(parents=True)
    try:
        (folder / "manifest.json").write_bytes(manifest_bytes)
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(temp / "rows", target)
        try:
            parsed = read_manifest(folder / "manifest.json")
        except IntakeError as exc:
            raise UploadError(422, str(exc).replace(str(folder) + "/", "")) from None
        with store.session.begin() as session:
            submission = Submission(
                user_id=user.id, agency=parsed.agency, batch_ref=parsed.batch_ref, manifest_sha256=parsed.sha256,
                rows_sha256=rows.sha256.hexdigest(), rows_bytes=rows.size, folder=str(folder.resolve()),
                manifest_file="manifest.json", status="queued", created_at=stamp)
            session.add(submission)
            session.flush()
            submission_id = submission.id
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if wake is not None:
        wake.set()
    return {"id": submission_id, "status": "queued", "batch_ref": parsed.batch_ref, "agency": parsed.agency,
            "rows_sha256": rows.sha256.hexdigest(), "rows_bytes": rows.size}


def _rows_path(requests: object) -> PurePosixPath:
    """The manifest's `requests`: a relative path that stays inside the upload's folder."""
    if not isinstance(requests, str) or not requests.strip():
        raise UploadError(422, "the manifest has no 'requests' path naming the rows file")
    relative = PurePosixPath(requests.strip())
    if (relative.is_absolute() or "\\" in requests or any(p in ("..", ".") for p in relative.parts)
            or len(relative.parts) > 4 or len(requests) > 200):
        raise UploadError(422, "the manifest's 'requests' must be a plain relative file name, like requests.csv")
    if relative.name in ("manifest.json", "out"):
        raise UploadError(422, f"the rows file may not be called {relative.name}")
    return relative


def _format(raw: dict, relative: PurePosixPath, uploaded_name: str) -> str:
    declared = raw.get("format").strip().lower() if isinstance(raw.get("format"), str) else ""
    fmt = declared or FORMATS.get(relative.suffix.lower(), "")
    if fmt not in set(FORMATS.values()):
        raise UploadError(415, f"unknown rows format for {relative.name}: use .csv, .jsonl or .parquet")
    sent = FORMATS.get(PurePosixPath(uploaded_name).suffix.lower())
    if sent is not None and sent != fmt:
        raise UploadError(415, f"the rows file sent is {uploaded_name}, but the manifest says {fmt}")
    return fmt


def _sniff(path: Path, fmt: str) -> None:
    """The content is what the format says: Parquet by its magic and footer; text as UTF-8 without
    NULs, a CSV's first line a header naming request columns, JSON Lines starting with an object."""
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
        if fmt == "parquet":
            fh.seek(-4, 2)
            tail = fh.read(4)
    if fmt == "parquet":
        if head[:4] != b"PAR1" or tail != b"PAR1":
            raise UploadError(415, "the rows file is not Parquet")
        try:
            pq.read_metadata(path)
        except Exception:  # pyarrow raises several kinds for a damaged footer
            raise UploadError(415, "the rows file is not readable Parquet") from None
        return
    if b"\x00" in head:
        raise UploadError(415, f"the rows file holds binary data, not {fmt.upper()} text")
    try:
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    except UnicodeDecodeError:
        raise UploadError(415, "the rows file is not UTF-8 text") from None
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if fmt == "jsonl":
        if not first.startswith("{"):
            raise UploadError(415, "the rows file is not JSON Lines: each line is one JSON object")
        return
    header = {c.strip().strip('"').lower() for c in first.split(",")}
    if not header & set(REQUEST_COLUMNS):
        raise UploadError(422, "the rows file's first line is not a header naming request columns (request_id, ...)")
