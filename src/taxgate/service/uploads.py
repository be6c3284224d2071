"""Receiving a batch (manifest + rows, multipart) without holding it in memory: the rows stream to
disk as they arrive, with their SHA-256, and stop at the size limit. Nothing is kept unless every
check passes: size, the manifest as JSON naming the uploader's own agency, a rows path inside the
upload, the rows file's type by name, its content by the same check `taxgate process` makes
(`intake.preflight`), and the manifest as the pipeline reads it.
A refused upload leaves no file and no row behind, and its 4xx says why in one line."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import shutil
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from streaming_form_data import StreamingFormDataParser
from streaming_form_data.parser import ParseFailedException
from streaming_form_data.targets import BaseTarget, ValueTarget
from streaming_form_data.validators import MaxSizeValidator, ValidationError

from taxgate.accounts import Principal
from taxgate.intake import IntakeError, NotTheFormat, parse_json, preflight, read_manifest
from taxgate.intake.manifest import FORMATS
from taxgate.service.settings import MIB, Settings
from taxgate.store import Store
from taxgate.store.models import Submission


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
            raise UploadError(
                413, f"the rows file is larger than the limit of {self.limit // MIB} MiB"
            )
        self._fh.write(chunk)
        self.sha256.update(chunk)

    def on_finish(self) -> None:
        self.close()

    def close(self) -> None:
        if self._fh is not None and not self._fh.closed:
            self._fh.close()


async def receive(
    request: Request,
    user: Principal,
    settings: Settings,
    store: Store,
    wake=None,
    csrf: str | None = None,
) -> dict:
    """Stream one upload to disk, check it, and queue it. Raises UploadError. `csrf`: the token a
    console form must carry in its `csrf` field."""
    limit = settings.max_rows_bytes + settings.max_manifest_bytes + 64 * 1024
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise UploadError(
            413, f"the upload is larger than the limit of {settings.max_rows_bytes // MIB} MiB"
        )
    try:
        parser = StreamingFormDataParser(request.headers)
    except ParseFailedException:
        raise UploadError(
            415, "send multipart/form-data with a 'manifest' part and a 'rows' part"
        ) from None
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
                raise UploadError(
                    413,
                    f"the upload is larger than the limit of {settings.max_rows_bytes // MIB} MiB",
                )
            parser.data_received(chunk)
        rows.close()
        if csrf is not None and not hmac.compare_digest(token.value, csrf.encode()):
            raise UploadError(403, "the form has expired: reload the page")
        return await run_in_threadpool(
            _accept, temp, manifest.value, rows, user, settings, store, wake
        )
    except ValidationError:
        raise UploadError(
            413,
            f"the manifest is larger than the limit of {settings.max_manifest_bytes // 1024} KiB",
        ) from None
    except ParseFailedException:
        raise UploadError(400, "the multipart body is malformed") from None
    finally:
        rows.close()
        shutil.rmtree(temp, ignore_errors=True)


def _accept(
    temp: Path,
    manifest_bytes: bytes,
    rows: _RowsFile,
    user: Principal,
    settings: Settings,
    store: Store,
    wake,
) -> dict:
    if not manifest_bytes:
        raise UploadError(422, "the 'manifest' part is missing or empty")
    if not rows.started or rows.size == 0:
        raise UploadError(422, "the 'rows' part is missing or empty")
    try:
        raw = parse_json(manifest_bytes, "the manifest")
    except IntakeError as exc:
        raise UploadError(422, str(exc)) from None
    if not isinstance(raw, dict):
        raise UploadError(422, "the manifest must be a JSON object")
    agency = raw.get("agency").strip() if isinstance(raw.get("agency"), str) else ""
    if agency != user.agency:
        raise UploadError(
            403,
            f"this account submits for {user.agency}; the manifest names {agency or 'no agency'}",
        )
    relative = _rows_path(raw.get("requests"))
    fmt = _format(raw, relative, getattr(rows, "multipart_filename", None) or "")
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
            preflight(
                parsed.rows_path, fmt
            )  # refused exactly when `taxgate process` would refuse it
        except IntakeError as exc:
            shown = str(exc).replace(str(folder.resolve()) + "/", "").replace(str(folder) + "/", "")
            raise UploadError(415 if isinstance(exc, NotTheFormat) else 422, shown) from None
        with store.session.begin() as session:
            submission = Submission(
                user_id=user.id,
                agency=parsed.agency,
                batch_ref=parsed.batch_ref,
                manifest_sha256=parsed.sha256,
                rows_sha256=rows.sha256.hexdigest(),
                rows_bytes=rows.size,
                folder=str(folder.resolve()),
                manifest_file="manifest.json",
                status="queued",
                created_at=stamp,
            )
            session.add(submission)
            session.flush()
            submission_id = submission.id
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if wake is not None:
        wake.set()
    return {
        "id": submission_id,
        "status": "queued",
        "batch_ref": parsed.batch_ref,
        "agency": parsed.agency,
        "rows_sha256": rows.sha256.hexdigest(),
        "rows_bytes": rows.size,
    }


def _rows_path(requests: object) -> PurePosixPath:
    """The manifest's `requests`: a relative path that stays inside the upload's folder, beside and
    not inside the manifest, and not in the folder the response is written to (`out/`)."""
    if not isinstance(requests, str) or not requests.strip():
        raise UploadError(422, "the manifest has no 'requests' path naming the rows file")
    relative = PurePosixPath(requests.strip())
    if (
        relative.is_absolute()
        or "\\" in requests
        or "\x00" in requests
        or len(requests) > 200
        or any(p in ("..", ".") for p in relative.parts)
        or len(relative.parts) > 4
    ):
        raise UploadError(
            422, "the manifest's 'requests' must be a plain relative file name, like requests.csv"
        )
    if "manifest.json" in relative.parts or relative.parts[0] == "out":
        raise UploadError(
            422,
            f"the rows file may not be called {requests.strip()!r}: "
            "manifest.json and out/ are the service's own",
        )
    return relative


def _format(raw: dict, relative: PurePosixPath, uploaded_name: str) -> str:
    declared = raw.get("format").strip().lower() if isinstance(raw.get("format"), str) else ""
    fmt = declared or FORMATS.get(relative.suffix.lower(), "")
    if fmt not in set(FORMATS.values()):
        raise UploadError(
            415, f"unknown rows format for {relative.name}: use .csv, .jsonl or .parquet"
        )
    sent = FORMATS.get(PurePosixPath(uploaded_name).suffix.lower())
    if sent is not None and sent != fmt:
        raise UploadError(
            415, f"the rows file sent is {uploaded_name}, but the manifest says {fmt}"
        )
    return fmt
