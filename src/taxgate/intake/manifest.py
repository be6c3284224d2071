"""The batch manifest (docs/DESIGN.md "Data formats"): who asks, when, and where the rows are."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePath

from taxgate.domain import unstorable_text

MAX_MANIFEST_BYTES = 1 << 20  # a manifest is a few hundred bytes; more is not a manifest
FORMATS = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


class IntakeError(ValueError):
    """The batch cannot be read at all; the message is the one line the user sees."""


class NotTheFormat(IntakeError):
    """The rows file is not the format it says at all (the service answers 415)."""


@dataclass(frozen=True)
class Manifest:
    batch_ref: str
    agency: str
    signer_name: str
    signer_title: str
    certification: str
    submitted_at: datetime | None  # None when absent or unreadable: the agreement rule then fails
    submitted_at_text: str
    rows_path: Path
    rows_format: str
    path: Path
    sha256: str  # of the manifest file as received


def parse_json(data: bytes, what: str) -> object:
    """JSON that a hostile sender wrote: too deep, a number of 5,000 digits and bad UTF-8 are all
    one line naming `what`, never a traceback."""
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise IntakeError(f"{what} is not UTF-8: invalid byte at {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise IntakeError(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise IntakeError(f"{what} is nested too deeply to be a manifest") from None
    except ValueError as exc:  # an integer past Python's digit limit
        raise IntakeError(f"{what} is not usable JSON: {exc}") from None
    if wrong := unstorable_text(document):
        raise IntakeError(f"{what} holds {wrong}, which no field can")
    return document


def rows_file(manifest: Path, requests: str) -> Path:
    """The rows file a manifest names: "relative to the manifest" (docs/DESIGN.md "Data formats"), and
    inside its folder once every link is followed. A manifest from elsewhere cannot point the
    command line at /etc/passwd or a neighbour's folder."""
    if "\x00" in requests or len(requests) > 1000:
        raise IntakeError(f"manifest {manifest}: 'requests' is not a file name")
    named = PurePath(requests)
    if named.is_absolute() or ".." in named.parts:
        raise IntakeError(
            f"manifest {manifest}: 'requests' must be a path relative to the manifest's folder, "
            f"not {requests!r}"
        )
    folder = manifest.parent.resolve()
    target = (folder / named).resolve()
    if not target.is_relative_to(folder):
        raise IntakeError(
            f"manifest {manifest}: 'requests' leads outside the manifest's folder (a link?)"
        )
    if target == manifest.resolve():
        raise IntakeError(f"manifest {manifest}: 'requests' names the manifest itself")
    return target


def _text(raw: dict, key: str) -> str:
    value = raw.get(key)
    return value.strip() if isinstance(value, str) else ""


def parse_timestamp(text: str) -> datetime | None:
    """ISO 8601; a time without a zone is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_manifest(path: Path) -> Manifest:
    """Read and check a manifest. Raises IntakeError when the batch cannot be processed at all.

    Defects in who signed or when are not errors here: they are the rules' business, so every
    row still gets an outcome and a reason.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise IntakeError(f"manifest not found: {path}") from None
    except OSError as exc:
        raise IntakeError(f"cannot read manifest {path}: {exc.strerror}") from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise IntakeError(f"manifest {path} is larger than {MAX_MANIFEST_BYTES // 1024} KiB")
    raw = parse_json(data, f"manifest {path}")
    if not isinstance(raw, dict):
        raise IntakeError(f"manifest {path} must be a JSON object")
    rows = raw.get("requests")
    if not isinstance(rows, str) or not rows.strip():
        raise IntakeError(f"manifest {path} has no 'requests' path to the rows file")
    rows_path = rows_file(path, rows.strip())
    declared = _text(raw, "format").lower()
    rows_format = declared or FORMATS.get(rows_path.suffix.lower(), "")
    if rows_format not in set(FORMATS.values()):
        shown = declared or rows_path.suffix or "(none)"
        raise IntakeError(
            f"unknown rows format {shown!r} for {rows_path.name}: use .csv, .jsonl or .parquet"
        )
    if not rows_path.is_file():
        raise IntakeError(f"rows file not found: {rows_path}")
    signed = raw.get("signed_by") if isinstance(raw.get("signed_by"), dict) else {}
    submitted = _text(raw, "submitted_at")
    return Manifest(
        batch_ref=_text(raw, "batch_ref") or path.stem,
        agency=_text(raw, "agency"),
        signer_name=_text(signed, "name"),
        signer_title=_text(signed, "title"),
        certification=_text(raw, "certification"),
        submitted_at=parse_timestamp(submitted) if submitted else None,
        submitted_at_text=submitted,
        rows_path=rows_path,
        rows_format=rows_format,
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
    )
