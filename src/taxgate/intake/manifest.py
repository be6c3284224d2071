"""The batch manifest (DESIGN.md "Data formats"): who asks, when, and where the rows are."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


class IntakeError(ValueError):
    """The batch cannot be read at all; the message is the one line the user sees."""


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


def _text(raw: dict, key: str) -> str:
    value = raw.get(key)
    return value.strip() if isinstance(value, str) else ""


def parse_timestamp(text: str) -> datetime | None:
    """ISO 8601; a time without a zone is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


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
    try:
        raw = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntakeError(f"manifest {path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise IntakeError(f"manifest {path} must be a JSON object")
    rows = raw.get("requests")
    if not isinstance(rows, str) or not rows.strip():
        raise IntakeError(f"manifest {path} has no 'requests' path to the rows file")
    rows_path = (path.parent / rows.strip()).resolve()
    declared = _text(raw, "format").lower()
    rows_format = declared or FORMATS.get(rows_path.suffix.lower(), "")
    if rows_format not in set(FORMATS.values()):
        shown = declared or rows_path.suffix or "(none)"
        raise IntakeError(f"unknown rows format {shown!r} for {rows_path.name}: use .csv, .jsonl or .parquet")
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
