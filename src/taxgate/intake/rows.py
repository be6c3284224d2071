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
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO

from taxgate.domain import REQUEST_COLUMNS, Request
from taxgate.intake.manifest import IntakeError, NotTheFormat

MAX_ROW_BYTES = 1 << 20  # a physical line longer than this is damage, not data
MAX_CONTINUATION_LINES = (
    20  # how far a quoted field may run across lines before we call it a stray quote
)
_KNOWN = frozenset(REQUEST_COLUMNS)


def staged_row(request: Request) -> tuple:
    """A request as pass 1 stages it: row number, the request's fields, parse error, and the
    columns it does not know as JSON ("" when none)."""
    return (
        request.row_number,
        *(getattr(request, c) for c in REQUEST_COLUMNS),
        request.parse_error,
        json.dumps(request.extra) if request.extra else "",
    )


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

    def staged(self) -> Iterator[tuple]:
        """The same rows as `__iter__`, each as the tuple `staged_row` makes of its Request: a CSV's
        well-formed rows go straight from their fields to the tuple: building a Request only to
        take it apart again was a fifth of pass 1's time (`benchmarks/intake_throughput.py`)."""
        rows = self._csv(staged=True) if self.format == "csv" else iter(self)
        for row in rows:
            if type(row) is not tuple:
                row = staged_row(row)
            if self.format == "csv":
                self.rows += 1
                self.malformed += bool(row[-2])
            yield row

    # -- building a Request ------------------------------------------------------------------

    def _request(self, row_number: int, values: dict[str, object]) -> Request:
        request = Request(row_number=row_number)
        for key, value in values.items():
            text = _as_text(value)
            if text is None:
                return _malformed(
                    row_number, f"field {key!r} is not a plain value", values.get("request_id")
                )
            if "\x00" in text:  # never data; and PostgreSQL cannot store it in text
                return _malformed(
                    row_number, f"field {key!r} holds a NUL character", values.get("request_id")
                )
            if len(text) > self.max_field_chars:
                return _malformed(
                    row_number,
                    f"field {key!r} is longer than {self.max_field_chars} characters",
                    values.get("request_id"),
                )
            if key in _KNOWN:
                setattr(request, key, text.strip())
            elif key:
                request.extra[key] = text
        return request

    # -- CSV ---------------------------------------------------------------------------------

    def _csv(self, staged: bool = False) -> Iterator[Request | tuple]:
        """The rows of a CSV file as Requests; with `staged`, each well-formed row as the tuple
        `staged_row` would make of its Request (the others still as Requests)."""
        with open(self.path, "rb") as fh:
            lines = _Lines(fh, self._hasher)
            header_raw = lines.next()
            if header_raw is None:
                return  # an empty file is an empty batch
            try:
                header_text = header_raw.decode("utf-8-sig")
                header = [h.strip().lower() for h in next(csv.reader([header_text], strict=True))]
            except (UnicodeDecodeError, csv.Error, StopIteration):
                raise NotTheFormat(
                    f"{self.path.name}: the header line cannot be read as CSV (UTF-8)"
                ) from None
            if "\x00" in header_text or lines.truncated:
                raise NotTheFormat(
                    f"{self.path.name}: the header line holds binary data, not CSV text"
                )
            if not _KNOWN & set(header):
                raise IntakeError(
                    f"{self.path.name}: the header names none of the request columns (request_id, ...)"
                )
            id_index = header.index("request_id") if "request_id" in header else None
            # Where each column goes: request fields by name (the first of a repeated name), the rest kept aside.
            known = [(name, header.index(name)) for name in REQUEST_COLUMNS if name in header]
            extra = [(name, i) for i, name in enumerate(header) if name and name not in _KNOWN]
            # A column the file lacks reads the empty field appended at the end of each row.
            missing = len(known) < len(REQUEST_COLUMNS)
            at = dict(known)
            pick = itemgetter(*(at.get(name, len(header)) for name in REQUEST_COLUMNS))
            row_number = 0
            while (raw := lines.next()) is not None:
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    row_number += 1
                    yield _malformed(
                        row_number, f"invalid UTF-8 at byte {exc.start}", _salvage_id(raw, id_index)
                    )
                    continue
                if lines.truncated:
                    row_number += 1
                    yield _malformed(row_number, f"row longer than {MAX_ROW_BYTES} bytes")
                    continue
                if not text.strip():
                    continue  # a blank line is not a row
                row_number += 1
                if "\x00" in text:
                    yield _malformed(
                        row_number, "the row holds a NUL byte", _salvage_id(raw, id_index)
                    )
                    continue
                fields, problem = _split_csv(text, lines, len(header))
                if fields is None:
                    yield _malformed(row_number, problem, _salvage_id(raw, id_index))
                    continue
                if len(fields) != len(header):
                    salvaged = (
                        fields[id_index] if id_index is not None and id_index < len(fields) else ""
                    )
                    yield _malformed(
                        row_number, f"expected {len(header)} fields, found {len(fields)}", salvaged
                    )
                    continue
                if max(map(len, fields)) > self.max_field_chars:
                    yield self._request(
                        row_number, dict(zip(header, fields))
                    )  # reports which field
                    continue
                if staged:
                    if missing:
                        fields.append("")
                    yield (
                        row_number,
                        *map(str.strip, pick(fields)),
                        "",
                        json.dumps({name: fields[i] for name, i in extra}) if extra else "",
                    )
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
                if row_number == 1 and not raw.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(
                    b"{"
                ):
                    # The one whole-file refusal for JSON Lines, as for a CSV's header: this is not the format.
                    raise NotTheFormat(
                        f"{self.path.name} is not JSON Lines: its first line is not a JSON object"
                    )
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
                except RecursionError:
                    yield _malformed(row_number, "JSON nested too deeply to be a request")
                    continue
                except ValueError:  # an integer past Python's digit limit
                    yield _malformed(row_number, "a number too long to be a value")
                    continue
                if not isinstance(value, dict):
                    yield _malformed(row_number, "a JSON Lines row must be an object")
                    continue
                yield self._request(
                    row_number, {str(k).strip().lower(): v for k, v in value.items()}
                )

    # -- Parquet -----------------------------------------------------------------------------

    def _parquet_source(self):
        """The file's footer and schema, checked, before any page is read: (file, names, columns
        read, columns not read, footer). Only flat values and lists of text are read; a column of
        any other type (a struct, a map, a list of numbers, fixed-size binary) is never decoded,
        since its encoded size says nothing of its decoded size."""
        import pyarrow.parquet as pq

        try:
            layout = pq.ParquetFile(self.path).schema  # every leaf column, nested ones by path
            text_columns = [
                layout.column(i).path
                for i in range(len(layout))
                if layout.column(i).physical_type == "BYTE_ARRAY"
            ]
            source = pq.ParquetFile(self.path, read_dictionary=text_columns, pre_buffer=False)
            meta, schema = source.metadata, source.schema_arrow
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise NotTheFormat(
                f"{self.path.name} is not a readable Parquet file: {_first_line(exc)}"
            ) from None
        names = [n.strip().lower() for n in schema.names]
        if len(names) > MAX_COLUMNS:
            raise IntakeError(
                f"{self.path.name}: {len(names)} columns; a request has at most {MAX_COLUMNS}"
            )
        if not _KNOWN & set(names):
            raise IntakeError(f"{self.path.name}: no column is a request column (request_id, ...)")
        if meta.num_rows > MAX_PARQUET_ROWS:
            raise IntakeError(
                f"{self.path.name} holds {meta.num_rows:,} rows; a batch has at most "
                f"{MAX_PARQUET_ROWS:,}: send it as several batches"
            )
        readable = [f.name for f in schema if _readable(f.type)]
        unread = {name: str(f.type) for name, f in zip(names, schema) if not _readable(f.type)}
        return source, names, readable, unread, meta

    @staticmethod
    def _parquet_ids(source, names: list[str], readable: list[str], group: int) -> Iterator[str]:
        """The request ids of a row group, alone (a text column: read as a dictionary, measured),
        so that rows refused unread can still be matched to their answers."""
        import pyarrow as pa

        column = next(
            (c for c, n in zip(source.schema_arrow.names, names) if n == "request_id"), None
        )
        if column is None or column not in readable:
            return
        for batch in source.iter_batches(
            batch_size=PARQUET_BATCH_ROWS, row_groups=[group], columns=[column], use_threads=False
        ):
            ids = batch.column(0)
            short = (_text_bytes(ids) <= 100).tolist()
            kept = iter(ids.filter(pa.array(short)).to_pylist())  # only the short ones are built
            for ok in short:
                value = next(kept) if ok else ""
                yield value if isinstance(value, str) else ""

    def check(self) -> None:
        """What refuses the file whole, without reading a row of Parquet (for the service, which
        must not decode an upload in its own process)."""
        if self.format == "parquet":
            self._parquet_source()
            return
        rows = iter(self)
        try:
            next(rows, None)
        finally:
            rows.close()

    def _parquet(self) -> Iterator[Request]:
        """Parquet is compressed, and a dictionary page lets one 1 MiB string stand for every row
        of a 25 KB file. So nothing is built before it is measured: each row group's decoded size
        is read from the footer, text columns are read as dictionaries, and each field's length is
        computed from them; only the rows whose every field fits are turned into Python values.
        A row group that would decode to more than its rows can hold is MALFORMED_ROW unread, and
        so is every row of a file with a column of a type taxgate does not read."""
        import numpy as np

        with open(self.path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                self._hasher.update(block)
        source, names, readable, unread, meta = self._parquet_source()
        field_bytes = 4 * self.max_field_chars  # UTF-8: at most 4 bytes a character
        decoded = 0
        row_number = ended = 0
        name, kind = next(iter(unread.items()), ("", ""))
        not_read = (
            f"field {name!r} is of a type taxgate does not read ({kind[:60]}): not a plain value"
            if unread
            else ""
        )
        for group in range(meta.num_row_groups):
            ended += meta.row_group(group).num_rows
            problem = not_read or _oversized_group(meta.row_group(group), field_bytes)
            if problem:
                ids = self._parquet_ids(source, names, readable, group) if unread else iter(())
                while row_number < ended:
                    row_number += 1
                    yield _malformed(row_number, problem, next(ids, ""))
                continue
            try:
                # one thread, no pre-buffering: the memory a row group takes is what its footer says
                batches = source.iter_batches(
                    batch_size=PARQUET_BATCH_ROWS,
                    row_groups=[group],
                    use_threads=False,
                    columns=readable,
                )
                for batch in batches:
                    sizes = [_text_bytes(batch.column(i)) for i in range(batch.num_columns)]
                    decoded += int(
                        sum(np.minimum(s, field_bytes + 1).sum() for s in sizes)
                    )  # what is built
                    if decoded > MAX_DECODED_BYTES:
                        raise IntakeError(
                            f"{self.path.name} decodes to more than {MAX_DECODED_BYTES >> 20} MiB of "
                            "text: send it as several batches"
                        )
                    yield from self._parquet_rows(batch, names, sizes, field_bytes, row_number)
                    row_number += batch.num_rows
                    if row_number > ended:  # more rows than the footer said
                        raise IntakeError(
                            f"{self.path.name}: row group {group} holds more rows than its footer says"
                        )
            except IntakeError:
                raise
            except (
                Exception
            ) as exc:  # a damaged page: the group's rows that were not read are MALFORMED_ROW
                problem = f"Parquet row group {group} cannot be read: {_first_line(exc)}"
                while row_number < ended:
                    row_number += 1
                    yield _malformed(row_number, problem)

    def _parquet_rows(
        self, batch, names: list[str], sizes: list, field_bytes: int, before: int
    ) -> Iterator[Request]:
        import numpy as np

        too_long = np.full(
            batch.num_rows, -1, dtype=np.int64
        )  # per row: the first column too long, or -1
        for i in reversed(range(len(sizes))):
            too_long[sizes[i] > field_bytes] = i
        row_bytes = (
            np.sum([np.minimum(s, 1 << 40) for s in sizes], axis=0)
            if sizes
            else np.zeros(batch.num_rows)
        )
        fits = (too_long < 0) & (row_bytes <= MAX_ROW_BYTES)
        values = _python_rows(batch, np.flatnonzero(fits), row_bytes)
        ids = names.index("request_id") if "request_id" in names else None
        for offset in range(batch.num_rows):
            row_number = before + offset + 1
            if fits[offset]:
                yield self._request(row_number, dict(zip(names, next(values))))
                continue
            salvaged = (
                batch.column(ids)[offset].as_py()
                if ids is not None and sizes[ids][offset] <= 100
                else ""
            )
            column = int(too_long[offset])
            if column < 0:
                problem = f"row longer than {MAX_ROW_BYTES} bytes"
            elif sizes[column][offset] >= NOT_PLAIN:
                problem = f"field {names[column]!r} is not a plain value"
            else:
                problem = (
                    f"field {names[column]!r} is longer than {self.max_field_chars} characters"
                )
            yield _malformed(row_number, problem, salvaged)


def _python_rows(batch, rows, row_bytes) -> Iterator[tuple]:
    """The values of `rows` (positions in `batch`, in order), built a slice of at most
    SLICE_BYTES of text at a time."""
    import numpy as np
    import pyarrow as pa

    if not len(rows):
        return
    slices = np.cumsum(row_bytes[rows]) // SLICE_BYTES
    for start, end in _runs(slices):
        part = batch.take(pa.array(rows[start:end]))
        yield from zip(*(part.column(i).to_pylist() for i in range(part.num_columns)))


def _runs(keys) -> Iterator[tuple[int, int]]:
    """(start, end) of each run of equal values in a sorted array."""
    import numpy as np

    bounds = np.flatnonzero(np.diff(keys)) + 1
    starts = [0, *bounds.tolist()]
    ends = [*bounds.tolist(), len(keys)]
    return zip(starts, ends, strict=True)


MAX_COLUMNS = 500  # a request has 20-odd fields; thousands of columns is not a batch
MAX_PARQUET_ROWS = (
    10_000_000  # the 2025 datafile was 1.3M; a CSV is bounded by its bytes, Parquet by this
)
MAX_DECODED_BYTES = (
    4 << 30
)  # the text a Parquet file may decode to (a CSV of 4 GiB is 20M requests)
PARQUET_BATCH_ROWS = 10_000  # rows read as Arrow at once (text still dictionary-encoded)
SLICE_BYTES = 32 << 20  # text turned into Python values at once
NOT_PLAIN = (
    1 << 62
)  # the "length" of a value that is never plain (a struct, a map): always too long


def _readable(kind) -> bool:
    """A column type taxgate decodes: a flat value (text, number, boolean, date, time), one of those
    dictionary-encoded, or a list of text (tax periods, requested items)."""
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        return _readable(kind.value_type) and not pa.types.is_nested(kind.value_type)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        values = kind.value_type
        return _is_text(values.value_type if pa.types.is_dictionary(values) else values)
    flat = (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_temporal(kind)
        or pa.types.is_null(kind)
    )
    return flat or _is_text(kind)


def _is_text(kind) -> bool:
    import pyarrow as pa

    return (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    )


def _text_bytes(array):
    """Per row, at least the number of bytes of the text the value becomes, computed from the Arrow
    array without building any Python value (a dictionary's values are measured once)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    kind, n = array.type, len(array)
    if pa.types.is_dictionary(kind):
        inner = _text_bytes(array.dictionary)
        indices = array.indices.fill_null(0).to_numpy(zero_copy_only=False)
        sizes = inner[indices] if len(inner) else np.zeros(n, dtype=np.int64)
    elif _is_text(kind):
        sizes = pc.binary_length(array).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        inner = _text_bytes(array.flatten()) + 1  # each value and its separator
        parents = pc.list_parent_indices(array).to_numpy(zero_copy_only=False)
        sizes = np.bincount(parents, weights=inner.astype(np.float64), minlength=n).astype(np.int64)
    elif pa.types.is_primitive(kind) or pa.types.is_decimal(kind) or pa.types.is_null(kind):
        return np.zeros(n, dtype=np.int64) + 40  # a number or a date: short
    else:
        sizes = np.full(n, NOT_PLAIN, dtype=np.int64)
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    return np.where(valid, sizes, 0)


def _oversized_group(group, field_bytes: int) -> str:
    """Why a row group may not be decoded at all: a column chunk larger, decompressed, than its
    rows could be if every field were at the limit (the footer says so before anything is read)."""
    limit = group.num_rows * (field_bytes + 64) + (1 << 20)
    for c in range(group.num_columns):
        chunk = group.column(c)
        if chunk.total_uncompressed_size > limit:
            return (
                f"column {chunk.path_in_schema!r} decompresses to {chunk.total_uncompressed_size:,} bytes "
                f"for {group.num_rows:,} rows: more than any request holds"
            )
    return ""


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def preflight(path: Path, fmt: str) -> None:
    """What refuses a rows file whole, and nothing more: its header (CSV), its first line (JSON
    Lines) or its footer and schema (Parquet, no page read). The service checks an upload with this
    before queueing it, so an upload is refused when `taxgate process` would refuse the file; a bad
    row later is that row's MALFORMED_ROW, in both. (What only reading every page can show, a
    Parquet file decoding to more than 4 GiB, is found by the worker, as by `taxgate process`.)"""
    RowStream(path, fmt, 1 << 20).check()


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
            while (rest := self._fh.readline(MAX_ROW_BYTES)) and (
                self._hasher.update(rest) or not rest.endswith(b"\n")
            ):
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
    if len(salvaged) > 100 or any(
        ord(c) < 32 or ord(c) == 127 for c in salvaged
    ):  # a NUL: PostgreSQL refuses it
        salvaged = ""
    return Request(row_number=row_number, request_id=salvaged, parse_error=problem)
