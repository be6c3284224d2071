"""Pass 1 and the work folder: every row of a batch staged as Parquet, in chunks, and the on-disk
DuckDB database the passes share."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from taxgate.domain import REQUEST_COLUMNS
from taxgate.intake import Manifest, RowStream
from taxgate.policy import Policy

CHUNK_ROWS = 50_000


STAGED = pa.schema(
    [("row_number", pa.int64())]
    + [(c, pa.string()) for c in REQUEST_COLUMNS]
    + [("parse_error", pa.string()), ("extra", pa.string())]
)


class ChunkWriter:
    """Append rows (tuples in schema order) to a Parquet file, a chunk at a time."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.schema, self.rows = schema, []
        self._writer = pq.ParquetWriter(path, schema)

    def add(self, row: tuple) -> None:
        self.rows.append(row)
        if len(self.rows) >= CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            columns = [
                pa.array(column, type=f.type) for column, f in zip(zip(*self.rows), self.schema)
            ]
            self._writer.write_table(pa.Table.from_arrays(columns, schema=self.schema))
            self.rows = []

    def close(self) -> None:
        self.flush()
        self._writer.close()


def sql_text(path: Path) -> str:
    """A path as a SQL string literal (views cannot take parameters)."""
    return "'" + str(path).replace("'", "''") + "'"


@contextmanager
def workspace(
    out_dir: Path, keep_work: bool = False
) -> Iterator[tuple[Path, duckdb.DuckDBPyConnection]]:
    """`out_dir/.work` and an on-disk DuckDB database in it: DuckDB spills there instead of holding a
    big batch in memory. The work files hold the requests, so they are removed unless `keep_work`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / ".work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    con = duckdb.connect(str(work / "work.duckdb"))
    con.execute("SET threads TO 2")
    con.execute("SET memory_limit = '4GB'")
    con.execute(
        "SET enable_progress_bar = false"
    )  # the CLI prints its own summary; stdout is not DuckDB's
    try:
        yield work, con
    finally:
        try:
            con.close()
        finally:  # the requests go even if DuckDB would not close (a run stopped mid-query)
            if not keep_work:
                shutil.rmtree(work, ignore_errors=True)


def stage(manifest: Manifest, policy: Policy, work: Path) -> RowStream:
    """Pass 1: intake, staging every row with its batch keys. Returns the consumed stream (its
    `sha256`, `rows` and `malformed` are then known)."""
    stream = RowStream(manifest.rows_path, manifest.rows_format, policy.thresholds.max_field_chars)
    staged = ChunkWriter(work / "staged.parquet", STAGED)
    for row in stream.staged():
        staged.add(row)
    staged.close()
    return stream


# What a request says about the person (and the statute, which decides whether an order holds a release),
