"""Intake: every row ends as exactly one request; damage is contained to its row; bad batches exit cleanly."""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxgate.domain import REQUEST_COLUMNS
from taxgate.intake import IntakeError, RowStream, read_manifest
from taxgate.intake.rows import staged_row

HEADER = ",".join(REQUEST_COLUMNS)


def good_line(rid: str) -> str:
    values = {c: "" for c in REQUEST_COLUMNS} | {
        "request_id": rid,
        "first_name": "Ana",
        "last_name": "Ruiz",
    }
    return ",".join(values[c] for c in REQUEST_COLUMNS)


def read(path, fmt="csv", max_field=4000):
    """The file's requests; and, read again the way pass 1 stages it (`RowStream.staged`, which
    skips the Request for a CSV's well-formed rows), the same rows, counts and hash."""
    stream = RowStream(path, fmt, max_field)
    requests = list(stream)
    again = RowStream(path, fmt, max_field)
    assert list(again.staged()) == [staged_row(r) for r in requests]
    assert (again.rows, again.malformed, again.sha256) == (
        stream.rows,
        stream.malformed,
        stream.sha256,
    )
    return stream, requests


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
    (tmp_path / "rows.csv").write_text(
        HEADER + "\n" + line + "\n" + good_line("R2") + "\n", encoding="utf-8"
    )
    _, requests = read(tmp_path / "rows.csv")
    assert [r.first_name for r in requests] == ["Ana\nMaría", "Ana"]
    assert not any(r.malformed for r in requests)


def test_oversized_field_is_malformed_and_reading_goes_on(tmp_path):
    big = good_line("R1").replace("Ruiz", "x" * 5000)
    (tmp_path / "rows.csv").write_text(
        HEADER + "\n" + big + "\n" + good_line("R2") + "\n", encoding="utf-8"
    )
    _, requests = read(tmp_path / "rows.csv", max_field=4000)
    assert requests[0].malformed and "longer than 4000" in requests[0].parse_error
    assert requests[0].request_id == "R1"
    assert not requests[1].malformed


def test_unknown_columns_are_kept_and_missing_ones_are_empty(tmp_path):
    (tmp_path / "rows.csv").write_text(
        "Request_ID,last_name,alien_number\nR1,Ruiz,A123\n", encoding="utf-8"
    )
    _, [request] = read(tmp_path / "rows.csv")
    assert request.request_id == "R1" and request.last_name == "Ruiz" and request.street == ""
    assert request.extra == {"alien_number": "A123"}


def test_staged_rows_are_the_requests_whatever_the_columns(tmp_path):
    """Columns in any order, repeated, missing, unknown, padded with spaces, empty names: the
    staged tuple is the Request's, field for field (`read` compares them)."""
    text = (
        " Last_Name ,request_id,zip,last_name,,alien_number,street,ALIEN_NUMBER\n"
        ' Ruiz ,R1, 02139 ,Other,x, A123 ,"1 Main St\nApt 2",dup\n'
        "Ruiz,R2,,,,,,\n"
        "Ruiz,R3\n"
        "\n"
        '"Ruiz",R4,02139,,,,"a ""quoted"" street",\n'
    )
    (tmp_path / "rows.csv").write_text(text, encoding="utf-8")
    _, requests = read(tmp_path / "rows.csv")
    assert [r.request_id for r in requests] == ["R1", "R2", "R3", "R4"]
    assert requests[0].last_name == "Ruiz" and requests[0].zip == "02139"
    assert requests[0].extra == {"alien_number": "dup"}  # the last of a repeated unknown name
    assert requests[2].malformed and not requests[3].malformed
    (tmp_path / "all.csv").write_text(
        HEADER + "\n" + good_line("R1") + "\n" + good_line("R2").replace("Ana", " Ana ") + "\n",
        encoding="utf-8",
    )
    _, requests = read(tmp_path / "all.csv")
    assert [r.first_name for r in requests] == ["Ana", "Ana"] and not requests[0].extra


def test_jsonl_bad_lines_are_rows_too(tmp_path):
    rows = [
        json.dumps({"request_id": "R1", "tax_periods": [2023, 2024]}),
        "{not json",
        "[1, 2]",
        json.dumps({"request_id": "R4", "street": {"nested": True}}),
    ]
    (tmp_path / "rows.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    _, requests = read(tmp_path / "rows.jsonl", "jsonl")
    assert requests[0].tax_periods == "2023;2024" and not requests[0].malformed
    assert [r.malformed for r in requests] == [False, True, True, True]
    assert requests[3].request_id == "R4"


def test_parquet_rows(tmp_path):
    table = pa.table(
        {"request_id": ["R1", "R2"], "zip": [78701, None], "last_name": ["Ruiz", "Díaz"]}
    )
    pq.write_table(table, tmp_path / "rows.parquet")
    stream, requests = read(tmp_path / "rows.parquet", "parquet")
    assert [(r.request_id, r.zip, r.last_name) for r in requests] == [
        ("R1", "78701", "Ruiz"),
        ("R2", "", "Díaz"),
    ]
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


# -- a hostile sender ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "requests, message",
    [
        ("../../etc/passwd", "relative to the manifest's folder"),
        ("/etc/passwd", "relative to the manifest's folder"),
        ("link/passwd", "outside the manifest's folder"),
        ("rows\x00.csv", "holds a NUL character, which no field can"),
        ("manifest.json", "names the manifest itself"),
    ],
)
def test_a_manifest_cannot_point_outside_its_folder(tmp_path, requests, message):
    """docs/DESIGN.md: `requests` is relative to the manifest. Not `..`, not absolute, not a link out."""
    folder = tmp_path / "batch"
    folder.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "passwd").write_text("request_id\nR1\n")
    (folder / "link").symlink_to(tmp_path / "elsewhere")
    (folder / "manifest.json").write_text(json.dumps({"requests": requests, "format": "csv"}))
    with pytest.raises(IntakeError, match=message) as caught:
        read_manifest(folder / "manifest.json")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "manifest, message",
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"requests": "rows.csv", "n": ' + b"9" * 5000 + b"}", "not usable JSON"),
        (b'{"requests": "rows.csv", "x": "\xff"}', "not UTF-8"),
    ],
)
def test_a_hostile_manifest_is_one_line(tmp_path, manifest, message):
    (tmp_path / "manifest.json").write_bytes(manifest)
    with pytest.raises(IntakeError, match=message) as caught:
        read_manifest(tmp_path / "manifest.json")
    assert "\n" not in str(caught.value)


def test_a_hostile_json_lines_row_is_one_malformed_row(tmp_path):
    """Nesting, a 5,000-digit number, a NUL: each is its own MALFORMED_ROW; the rows around it stand."""
    lines = [
        json.dumps({"request_id": "R1"}),
        '{"request_id": "R2", "x": ' + "[" * 50_000 + "]" * 50_000 + "}",
        '{"request_id": "R3", "zip": ' + "7" * 5000 + "}",
        json.dumps({"request_id": "R4", "last_name": "A\x00B"}),
        json.dumps({"request_id": "R5"}),
    ]
    (tmp_path / "rows.jsonl").write_text("\n".join(lines) + "\n")
    _, requests = read(tmp_path / "rows.jsonl", "jsonl")
    assert [r.malformed for r in requests] == [False, True, True, True, False]
    assert "nested too deeply" in requests[1].parse_error and "number" in requests[2].parse_error
    assert "NUL" in requests[3].parse_error and requests[3].request_id == "R4"


def test_json_lines_that_are_not_json_lines_are_refused_whole(tmp_path):
    (tmp_path / "rows.jsonl").write_text("request_id,first_name\nR1,Ana\n")
    with pytest.raises(IntakeError, match="first line is not a JSON object"):
        read(tmp_path / "rows.jsonl", "jsonl")


def test_csv_nul_in_a_row_is_that_row_only_and_in_the_header_refuses(tmp_path):
    (tmp_path / "rows.csv").write_bytes(
        f"{HEADER}\n{good_line('R1')}\nR2,A\x00na{',' * 18}\n{good_line('R3')}\n"
        f"R4\x00,Ana{',' * 18}\n".encode()
    )
    _, requests = read(tmp_path / "rows.csv")
    assert [r.malformed for r in requests] == [False, True, False, True] and requests[
        1
    ].request_id == "R2"
    assert (
        requests[3].request_id == ""
    )  # an id with a NUL in it is not salvaged (PostgreSQL cannot store it)
    (tmp_path / "rows.csv").write_bytes(b"request_id,first_name\x00\x01\n1,2\n")
    with pytest.raises(IntakeError, match="binary data"):
        read(tmp_path / "rows.csv")


def _peak_rss_of(code: str) -> tuple[int, str]:
    """Run `code` in a fresh interpreter: (its peak resident memory in MiB, what it printed)."""
    import subprocess
    import sys

    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over exec from the forking parent
    # (here pytest, hundreds of MiB by then), while VmHWM is this program's own peak.
    script = code + (
        "\nprint(next(int(line.split()[1]) // 1024 for line in open('/proc/self/status')"
        " if line.startswith('VmHWM:')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    *printed, peak = done.stdout.strip().splitlines()
    return int(peak), "\n".join(printed)


BOMBS = {
    # one 1 MiB string, dictionary-encoded: a few KB on disk, 3 GiB once every row is built
    "dictionary": "pa.array([big] * n).dictionary_encode()",
    "list of one dictionary string": "pa.array([[big]] * n)",
    "plain, compressed": "pa.array([big] * n)",
}


@pytest.mark.slow  # a bomb expanded in bounded memory
@pytest.mark.parametrize("kind", BOMBS)
def test_a_parquet_decompression_bomb_is_malformed_rows_in_bounded_memory(tmp_path, kind):
    path = tmp_path / "bomb.parquet"
    peak_write, _ = _peak_rss_of(f"""
import pyarrow as pa, pyarrow.parquet as pq
n, big = 3000, "x" * (1 << 20)
table = pa.table({{"request_id": [f"R{{i}}" for i in range(n)], "reason": {BOMBS[kind]}}})
pq.write_table(table, {str(path)!r}, compression="zstd", use_dictionary={kind != "plain, compressed"})
del table
""")
    assert path.stat().st_size < 200_000  # the bomb is small on disk
    peak, printed = _peak_rss_of(f"""
from collections import Counter
from pathlib import Path
from taxgate.intake import RowStream
stream = RowStream(Path({str(path)!r}), "parquet", 4000)
outcomes = Counter(r.parse_error.split(":")[0][:40] if r.parse_error else "ok" for r in stream)
print(stream.rows, stream.malformed, sorted(outcomes))
""")
    rows, malformed, _ = printed.split(" ", 2)
    assert (rows, malformed) == ("3000", "3000"), printed
    assert peak < 300, f"reading the bomb took {peak} MiB"  # 3 GiB once built; about 100 MiB here


def test_parquet_fields_over_the_limit_are_measured_not_built(tmp_path):
    """Good rows and bad rows side by side: the bad ones name their field, the good ones are exact."""
    table = pa.table(
        {
            "request_id": ["R1", "R2", "R3", "R4"],
            "last_name": pa.array(["Ruiz", "x" * 5000, None, "Díaz"]).dictionary_encode(),
            "tax_periods": [["2023", "2024"], None, ["y" * 4001], []],
            "extra": pa.array([{"a": 1}, None, None, None]).field("a"),
        }
    )
    pq.write_table(table, tmp_path / "rows.parquet")
    _, requests = read(tmp_path / "rows.parquet", "parquet")
    assert [r.request_id for r in requests] == ["R1", "R2", "R3", "R4"]
    assert (
        not requests[0].malformed
        and requests[0].tax_periods == "2023;2024"
        and requests[0].extra == {"extra": "1"}
    )
    assert "'last_name' is longer than 4000" in requests[1].parse_error
    assert "'tax_periods' is longer than 4000" in requests[2].parse_error
    assert (
        not requests[3].malformed
        and requests[3].last_name == "Díaz"
        and requests[3].tax_periods == ""
    )


@pytest.mark.parametrize(
    "column",
    [
        "pa.array([[0] * 5_000_000], type=pa.list_(pa.int64()))",  # a list of numbers: 20 M zeros in a few KB
        "pa.array([b'x' * 100_000] * 2_000, type=pa.binary(100_000)).dictionary_encode()",  # fixed-size binary
        "pa.array([{'a': 'x'}])",  # a struct
    ],
)
@pytest.mark.slow  # large columns written and read
def test_a_column_of_a_type_taxgate_does_not_read_is_never_decoded(tmp_path, column):
    """Only flat values and lists of text are decoded; any other column says nothing of its size
    in its encoded form, so every row is MALFORMED_ROW, unread, in bounded memory."""
    path = tmp_path / "rows.parquet"
    _peak_rss_of(f"""
import pyarrow as pa, pyarrow.parquet as pq
column = {column}
pq.write_table(pa.table({{"request_id": [f"R{{i}}" for i in range(len(column))], "x": column}}), {str(path)!r},
               compression="zstd")
""")
    peak, printed = _peak_rss_of(f"""
from pathlib import Path
from taxgate.intake import RowStream
stream = RowStream(Path({str(path)!r}), "parquet", 4000)
problems = {{r.parse_error for r in stream}}
print(stream.rows, stream.malformed, len(problems), sorted(problems)[0])
""")
    rows, malformed, kinds, problem = printed.split(" ", 3)
    assert (
        rows == malformed and kinds == "1" and "'x' is of a type taxgate does not read" in problem
    )
    assert peak < 300, f"reading it took {peak} MiB"


def test_a_parquet_file_of_more_rows_than_a_batch_holds_is_refused_from_its_footer(
    tmp_path, monkeypatch
):
    import taxgate.intake.rows as rows

    monkeypatch.setattr(rows, "MAX_PARQUET_ROWS", 1_000)
    pq.write_table(
        pa.table({"request_id": pa.nulls(5_000, pa.string())}), tmp_path / "rows.parquet"
    )
    with pytest.raises(IntakeError, match="holds 5,000 rows; a batch has at most 1,000"):
        RowStream(tmp_path / "rows.parquet", "parquet", 4000).check()


def test_a_tiny_or_damaged_parquet_file_is_one_line(tmp_path):
    for raw in (b"PA", b"PAR1", b"PAR1" + b"\x00" * 100 + b"PAR1"):
        (tmp_path / "rows.parquet").write_bytes(raw)
        with pytest.raises(IntakeError, match="not a readable Parquet file") as caught:
            read(tmp_path / "rows.parquet", "parquet")
        assert "\n" not in str(caught.value)
