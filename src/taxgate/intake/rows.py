"""Request rows in CSV, JSON Lines or Parquet, streamed one request at a time.

Every row ends as exactly one `Request`. A row that cannot be parsed becomes a Request with
`parse_error` set (and whatever could be salvaged, such as its request_id); reading goes on with
the next row. The raw bytes are hashed as they are read, so the SHA-256 covers exactly what was
processed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from taxgate.domain import REQUEST_COLUMNS, Request
from taxgate.intake.manifest import IntakeError

MAX_ROW_BYTES = 1 << 20  # a physical line longer than this is damage, not data
MAX_CONTINUATION_LINES = 20  # how far a quoted field may run across lines before we call it a stray quote
_KNOWN = frozenset(REQUEST_COLUMNS)


class RowStream:
    """The requests of one rows file; iterate once. `sha256` is complete when iteration ends."""

    def __init__(self, path: Path, fmt: str, max_field_chars: int):
        self.path, self.format, self.max_field_chars = path, fmt, max_field_chars
        self._hasher = hashlib.sha256()
        self.rows = 0
        self.malformed = 0

    @property
    def sha256(self) -> str:
        return self._hasher.hexdigest()

    def __iter__(self) -> Iterator[Request]:
        readers = {"csv": self._csv, "jsonl": self._jsonl, "parquet": self._parquet}
        for request in readers[self.format]():
            self.rows += 1
            self.malformed += request.malformed
            yield request

    # -- building a Request ------------------------------------------------------------------

    def _request(self, row_number: int, values: dict[str, object]) -> Request:
        request = Request(row_number=row_number)
        for key, value in values.items():
            text = _as_text(value)
            if text is None:
                return _malformed(row_number, f"field {key!r} is not a plain value", values.get("request_id"))
            if len(text) > self.max_field_chars:
                return _malformed(
                    row_number, f"field {key!r} is longer than {self.max_field_chars} characters", values.get("request_id")
                )
            if key in _KNOWN:
                setattr(request, key, text.strip())
            elif key:
                request.extra[key] = text
        return request

    # -- CSV ---------------------------------------------------------------------------------

    def _csv(self) -> Iterator[Request]:
        with open(self.path, "rb") as fh:
            lines = _Lines(fh, self._hasher)
            header_raw = lines.next()
            if header_raw is None:
                return  # an empty file is an empty batch
            try:
                header_text = header_raw.decode("utf-8-sig")
                header = [h.strip().lower() for h in next(csv.reader([header_text], strict=True))]
            except (UnicodeDecodeError, csv.Error, StopIteration):
                raise IntakeError(f"{self.path.name}: the header line cannot be read as CSV") from None
            if not _KNOWN & set(header):
                raise IntakeError(f"{self.path.name}: the header names none of the request columns (request_id, ...)")
            id_index = header.index("request_id") if "request_id" in header else None
            # Where each column goes: request fields by name (the first of a repeated name), the rest kept aside.
            known = [(name, header.index(name)) for name in REQUEST_COLUMNS if name in header]
            extra = [(name, i) for i, name in enumerate(header) if name and name not in _KNOWN]
            row_number = 0
            while (raw := lines.next()) is not None:
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    row_number += 1
                    yield _malformed(row_number, f"invalid UTF-8 at byte {exc.start}", _salvage_id(raw, id_index))
                    continue
                if lines.truncated:
                    row_number += 1
                    yield _malformed(row_number, f"row longer than {MAX_ROW_BYTES} bytes")
                    continue
                if not text.strip():
                    continue  # a blank line is not a row
                row_number += 1
                fields, problem = _split_csv(text, lines, len(header))
                if fields is None:
                    yield _malformed(row_number, problem, _salvage_id(raw, id_index))
                    continue
                if len(fields) != len(header):
                    salvaged = fields[id_index] if id_index is not None and id_index < len(fields) else ""
                    yield _malformed(row_number, f"expected {len(header)} fields, found {len(fields)}", salvaged)
                    continue
                if max(map(len, fields)) > self.max_field_chars:
                    yield self._request(row_number, dict(zip(header, fields)))  # reports which field
                    continue
                request = Request(row_number, **{name: fields[i].strip() for name, i in known})
                if extra:
                    request.extra = {name: fields[i] for name, i in extra}
                yield request

    # -- JSON Lines --------------------------------------------------------------------------

    def _jsonl(self) -> Iterator[Request]:
        with open(self.path, "rb") as fh:
            lines = _Lines(fh, self._hasher)
            row_number = 0
            while (raw := lines.next()) is not None:
                if not raw.strip():
                    continue
                row_number += 1
                if lines.truncated:
                    yield _malformed(row_number, f"row longer than {MAX_ROW_BYTES} bytes")
                    continue
                try:
                    value = json.loads(raw.decode("utf-8-sig" if row_number == 1 else "utf-8"))
                except UnicodeDecodeError as exc:
                    yield _malformed(row_number, f"invalid UTF-8 at byte {exc.start}")
                    continue
                except json.JSONDecodeError as exc:
                    yield _malformed(row_number, f"not valid JSON: {exc.msg} at column {exc.colno}")
                    continue
                if not isinstance(value, dict):
                    yield _malformed(row_number, "a JSON Lines row must be an object")
                    continue
                yield self._request(row_number, {str(k).strip().lower(): v for k, v in value.items()})

    # -- Parquet -----------------------------------------------------------------------------

    def _parquet(self) -> Iterator[Request]:
        import pyarrow.parquet as pq

        with open(self.path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                self._hasher.update(block)
        try:
            source = pq.ParquetFile(self.path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise IntakeError(f"{self.path.name} is not a readable Parquet file: {exc}") from None
        names = [n.strip().lower() for n in source.schema_arrow.names]
        if not _KNOWN & set(names):
            raise IntakeError(f"{self.path.name}: no column is a request column (request_id, ...)")
        row_number = 0
        for batch in source.iter_batches(batch_size=50_000):
            columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
            for values in zip(*columns):
                row_number += 1
                yield self._request(row_number, dict(zip(names, values)))


class _Lines:
    """Physical lines of a binary file, hashed as read, with push-back for look-ahead."""

    def __init__(self, fh: BinaryIO, hasher):
        self._fh, self._hasher = fh, hasher
        self._pushed: list[bytes] = []
        self.truncated = False

    def next(self) -> bytes | None:
        self.truncated = False
        if self._pushed:
            return self._pushed.pop()
        line = self._fh.readline(MAX_ROW_BYTES + 1)
        if not line:
            return None
        self._hasher.update(line)
        if len(line) > MAX_ROW_BYTES and not line.endswith(b"\n"):
            # Skip the rest of an oversized line so that the next row starts clean.
            while (rest := self._fh.readline(MAX_ROW_BYTES)) and (self._hasher.update(rest) or not rest.endswith(b"\n")):
                pass
            self.truncated = True
        return line

    def push_back(self, lines: list[bytes]) -> None:
        self._pushed.extend(reversed(lines))


def _split_csv(text: str, lines: _Lines, expected: int) -> tuple[list[str] | None, str]:
    """Fields of one CSV record starting with `text`; may read on when a quoted field spans lines.

    Without a quote a line is split as it is. With quotes, the record is parsed strictly; a field
    whose quote never closes may run on for a few lines, and if it still does not make a record of
    the right width the line is a stray quote and the following lines are given back untouched.
    """
    if '"' not in text:
        return text.rstrip("\r\n").split(","), ""
    record, problem = _parse_strict(text)
    if record is not None:
        return record, ""
    taken: list[bytes] = []
    joined = text
    while problem == "open quote" and len(taken) < MAX_CONTINUATION_LINES:
        raw = lines.next()
        if raw is None or lines.truncated:
            if raw is not None:
                taken.append(raw)
            break
        taken.append(raw)
        try:
            joined += raw.decode("utf-8")
        except UnicodeDecodeError:
            break
        record, problem = _parse_strict(joined)
        if record is not None and len(record) == expected:
            return record, ""
    lines.push_back(taken)
    return None, "stray quote: a quoted field does not close on this row"


def _parse_strict(text: str) -> tuple[list[str] | None, str]:
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        return None, "open quote" if "unexpected end of data" in str(exc) else str(exc)
    if len(records) != 1:
        return None, "open quote"
    fields = records[0]
    # RFC 4180: a quote may appear only inside a quoted field, doubled.
    for value in fields:
        if '"' in value and '"' + value.replace('"', '""') + '"' not in text:
            return None, "stray quote inside an unquoted field"
    return fields, ""


def _as_text(value: object) -> str | None:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int)) for v in value):
        return ";".join(str(v) for v in value)  # tax_periods or requested_items sent as a list
    if hasattr(value, "isoformat"):
        return value.isoformat()  # a Parquet date column
    return None


def _salvage_id(raw: bytes, id_index: int | None) -> str:
    """The request_id of a damaged CSV line when it stands clean in its place, so the requester
    can match the answer to the row; "" when it cannot be read with confidence."""
    if id_index is None:
        return ""
    parts = raw.decode("utf-8", errors="replace").split(",")
    value = parts[id_index].strip().strip('"') if id_index < len(parts) else ""
    return "" if '"' in value or "\ufffd" in value else value


def _malformed(row_number: int, problem: str, request_id: object = "") -> Request:
    salvaged = request_id.strip() if isinstance(request_id, str) else ""
    if len(salvaged) > 100 or "\n" in salvaged:
        salvaged = ""
    return Request(row_number=row_number, request_id=salvaged, parse_error=problem)
