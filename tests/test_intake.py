"""Intake: every row ends as exactly one request; damage is contained to its row; bad batches exit cleanly."""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxgate.domain import REQUEST_COLUMNS
from taxgate.intake import IntakeError, RowStream, read_manifest

HEADER = ",".join(REQUEST_COLUMNS)


def good_line(rid: str) -> str:
    values = {c: "" for c in REQUEST_COLUMNS} | {"request_id": rid, "first_name": "Ana", "last_name": "Ruiz"}
    return ",".join(values[c] for c in REQUEST_COLUMNS)


def read(path, fmt="csv", max_field=4000):
    stream = RowStream(path, fmt, max_field)
    return stream, list(stream)


def test_csv_damage_is_contained_to_its_row(tmp_path):
    lines = [
        good_line("R1"),
        '"R2,Ana,Ruiz' + "," * 17,  # opening quote that never closes
        good_line("R3"),
        "R4,too,few",
        good_line("R5").replace("Ana", "A\udcffna"),  # replaced below by invalid bytes
        good_line("R6"),
    ]
    raw = (HEADER + "\n" + "\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
    path = tmp_path / "rows.csv"
    path.write_bytes(raw)
    stream, requests = read(path)
    assert [r.row_number for r in requests] == [1, 2, 3, 4, 5, 6]
    assert [r.malformed for r in requests] == [False, True, False, True, True, False]
    assert [r.request_id for r in requests] == ["R1", "R2", "R3", "R4", "R5", "R6"]
    assert "stray quote" in requests[1].parse_error
    assert "expected 20 fields, found 3" == requests[3].parse_error
    assert "UTF-8" in requests[4].parse_error
    assert stream.sha256 == hashlib.sha256(raw).hexdigest()
    assert (stream.rows, stream.malformed) == (6, 3)


def test_quoted_fields_may_span_lines(tmp_path):
    line = good_line("R1").replace(",Ana,", ',"Ana\nMaría",')
    (tmp_path / "rows.csv").write_text(HEADER + "\n" + line + "\n" + good_line("R2") + "\n", encoding="utf-8")
    _, requests = read(tmp_path / "rows.csv")
    assert [r.first_name for r in requests] == ["Ana\nMaría", "Ana"]
    assert not any(r.malformed for r in requests)


def test_oversized_field_is_malformed_and_reading_goes_on(tmp_path):
    big = good_line("R1").replace("Ruiz", "x" * 5000)
    (tmp_path / "rows.csv").write_text(HEADER + "\n" + big + "\n" + good_line("R2") + "\n", encoding="utf-8")
    _, requests = read(tmp_path / "rows.csv", max_field=4000)
    assert requests[0].malformed and "longer than 4000" in requests[0].parse_error
    assert requests[0].request_id == "R1"
    assert not requests[1].malformed


def test_unknown_columns_are_kept_and_missing_ones_are_empty(tmp_path):
    (tmp_path / "rows.csv").write_text("Request_ID,last_name,alien_number\nR1,Ruiz,A123\n", encoding="utf-8")
    _, [request] = read(tmp_path / "rows.csv")
    assert request.request_id == "R1" and request.last_name == "Ruiz" and request.street == ""
    assert request.extra == {"alien_number": "A123"}


def test_jsonl_bad_lines_are_rows_too(tmp_path):
    rows = [json.dumps({"request_id": "R1", "tax_periods": [2023, 2024]}), "{not json", "[1, 2]",
            json.dumps({"request_id": "R4", "street": {"nested": True}})]
    (tmp_path / "rows.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    _, requests = read(tmp_path / "rows.jsonl", "jsonl")
    assert requests[0].tax_periods == "2023;2024" and not requests[0].malformed
    assert [r.malformed for r in requests] == [False, True, True, True]
    assert requests[3].request_id == "R4"


def test_parquet_rows(tmp_path):
    table = pa.table({"request_id": ["R1", "R2"], "zip": [78701, None], "last_name": ["Ruiz", "Díaz"]})
    pq.write_table(table, tmp_path / "rows.parquet")
    stream, requests = read(tmp_path / "rows.parquet", "parquet")
    assert [(r.request_id, r.zip, r.last_name) for r in requests] == [("R1", "78701", "Ruiz"), ("R2", "", "Díaz")]
    assert stream.sha256 == hashlib.sha256((tmp_path / "rows.parquet").read_bytes()).hexdigest()


def test_empty_file_is_an_empty_batch(tmp_path):
    (tmp_path / "rows.csv").write_bytes(b"")
    assert read(tmp_path / "rows.csv")[1] == []


@pytest.mark.parametrize(
    "manifest, message",
    [
        (None, "manifest not found"),
        ("{not json", "not valid JSON"),
        ('["a list"]', "must be a JSON object"),
        ('{"batch_ref": "B"}', "no 'requests' path"),
        ('{"requests": "rows.xlsx"}', "unknown rows format"),
        ('{"requests": "absent.csv"}', "rows file not found"),
    ],
)
def test_manifest_errors_are_one_line(tmp_path, manifest, message):
    path = tmp_path / "manifest.json"
    if manifest is not None:
        path.write_text(manifest, encoding="utf-8")
    with pytest.raises(IntakeError) as caught:
        read_manifest(path)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_unreadable_header_is_an_intake_error(tmp_path):
    (tmp_path / "rows.csv").write_text("colour,size\nred,big\n", encoding="utf-8")
    with pytest.raises(IntakeError, match="header names none"):
        read(tmp_path / "rows.csv")
