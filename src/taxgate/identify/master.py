"""The taxpayer master, prepared for identification: one row per taxpayer per distinct address they
filed from ("address history"), with the model's comparison columns, and the last known address.

Preparing normalises each distinct name and street once; the result is cached beside the master
(`<name>.taxgate-prepared.parquet`), with each TIN's last known address
(`<name>.taxgate-last-known.parquet`), both tied to the master's SHA-256, FEATURES_VERSION and the
order that says which address is the last known, so that a large master is prepared once, and
after that not even read, however many batches come.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path

import duckdb
import pyarrow as pa

from taxgate.identify.features import ADDRESS_COLUMNS, address_features, iso_date, name_features
from taxgate.normalize.name import suffix_code
from taxgate.processes import Workers

FEATURES_VERSION = "8"  # 2: street core and type; 3, 5: dates of birth read day first, or blank; 4: street letters;
# 6: a street line without a word is no street; 7: the rows numbered in an order without ties; 8: all in ASCII
MASTER_COLUMNS = (
    "tin",
    "first_name",
    "middle_name",
    "last_name",
    "suffix",
    "date_of_birth",
    "street",
    "unit",
    "city",
    "state",
    "zip",
    "tax_year",
)
REQUIRED = ("tin", "first_name", "last_name", "street", "tax_year")


class MasterError(ValueError):
    """The taxpayer master cannot be used; the message is the one line the user sees."""


class LoadStopped(Exception):
    """`load_master` was told to stop (the run it served stopped first)."""


def _go_on(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise LoadStopped


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_master(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    backend: str | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Create tables `master_addresses` (the address history, prepared on DuckDB or, with `backend`
    (or TAXGATE_MATCH_BACKEND) "spark", on Spark) and `last_known` (each TIN's last known address,
    `last_known_address_sql`). Both are cached beside the master, so that a master seen before is
    neither prepared nor read again. `stop`, once set, ends a load at its next step (LoadStopped)."""
    for (table,) in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE temporary AND "
        "starts_with(table_name, 'tf_master_')"
    ).fetchall():
        con.execute(
            f"DROP TABLE {table}"
        )  # the term frequencies of a master read before (`master_frequencies`)
    if not path.is_file():
        raise MasterError(f"taxpayer master not found: {path}")
    cache = path.with_name(path.stem + ".taxgate-prepared.parquet")
    known = path.with_name(path.stem + ".taxgate-last-known.parquet")
    stamp = cache.with_suffix(".json")
    source = {
        "sha256": _sha256(path),
        "features_version": FEATURES_VERSION,
        "last_known": LATEST_FIRST,
    }
    if all(p.exists() for p in (cache, known, stamp)) and json.loads(stamp.read_text()) == source:
        for table, cached in (("master_addresses", cache), ("last_known", known)):
            con.execute(
                f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM read_parquet(?)", [str(cached)]
            )
        return
    _go_on(stop)
    present = _read_master(con, path)
    _go_on(stop)
    if (backend or os.environ.get("TAXGATE_MATCH_BACKEND", "duckdb")) == "spark":
        parts = _prepare_on_spark(path, present, cache.with_name(cache.name + ".spark"))
        con.execute(
            "CREATE OR REPLACE TABLE master_addresses AS SELECT * FROM read_parquet(?)",
            [f"{parts}/*.parquet"],
        )
    else:
        _prepare(con, stop)
    _go_on(stop)
    every_tin = "SELECT regexp_replace(CAST(tin AS VARCHAR), '[^0-9]', '', 'g') FROM master"
    con.execute(
        f"CREATE OR REPLACE TABLE last_known AS {last_known_address_sql('master', every_tin)}"
    )
    con.execute("DROP TABLE master")  # ten million rows no later step reads
    _go_on(stop)
    _cache(con, {"master_addresses": cache, "last_known": known}, stamp, source, stop)


def _cache(con, files: dict[str, Path], stamp: Path, source: dict, stop) -> None:
    """Each table into its file beside the master, then the stamp that says what they were made
    from. Written under other names and renamed into place once all are written, so that a load
    that stops (or fails) midway leaves nothing behind, not a file half-made or without its stamp."""
    partial = {table: path.with_name(path.name + ".partial") for table, path in files.items()}
    try:
        stamp.unlink(missing_ok=True)  # never beside files it does not describe
        for table, path in partial.items():
            con.execute(f"COPY {table} TO ? (FORMAT parquet)", [str(path)])
        _go_on(stop)
        for table, path in partial.items():
            os.replace(path, files[table])
        stamp.write_text(json.dumps(source))
    except (duckdb.Error, OSError):
        pass  # a read-only folder, or a copy interrupted: prepare again next time
    finally:
        for path in partial.values():
            path.unlink(missing_ok=True)


def _read_master(con: duckdb.DuckDBPyConnection, path: Path) -> set[str]:
    """Table `master`: the master's file as filed, every column text but tax_year, or MasterError
    in one line. Returns the columns the file has."""
    # CSV as RFC 4180 has it (commas, double quotes), not as sniffed: Spark reads the same file alike.
    reader = (
        "read_parquet(?)"
        if path.suffix.lower() in (".parquet", ".pq")
        else "read_csv(?, header=true, all_varchar=true, delim=',', quote='\"', escape='\"')"
    )
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE master_raw AS SELECT * FROM {reader}", [str(path)]
        )
    except duckdb.Error as exc:
        raise MasterError(
            f"cannot read taxpayer master {path.name}: {str(exc).splitlines()[0]}"
        ) from None
    kinds = {name.lower(): kind for name, kind, *_ in con.execute("DESCRIBE master_raw").fetchall()}
    missing = [c for c in REQUIRED if c not in kinds]
    if missing:
        raise MasterError(f"taxpayer master {path.name} lacks column(s): {', '.join(missing)}")
    _check_kinds(con, path, kinds)
    con.execute(f"CREATE OR REPLACE TABLE master AS {_as_filed(set(kinds))}")
    con.execute("DROP TABLE master_raw")
    return set(kinds)


_INTEGERS = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
)


def _check_kinds(con: duckdb.DuckDBPyConnection, path: Path, kinds: dict[str, str]) -> None:
    """Every column text (a TIN or ZIP stored as a number has lost its leading zeros; a fraction
    prints differently on every engine), a date of birth text or a date, the tax year a whole
    number or four digits."""
    for c in MASTER_COLUMNS:
        kind = kinds.get(c, "VARCHAR")
        allowed = (
            ("VARCHAR", *_INTEGERS)
            if c == "tax_year"
            else ("VARCHAR", "DATE")
            if c == "date_of_birth"
            else ("VARCHAR",)
        )
        if kind not in allowed:
            raise MasterError(
                f"taxpayer master {path.name}: {c} is stored as {kind}, not "
                f"{'a year' if c == 'tax_year' else 'text'}"
            )
    if kinds["tax_year"] == "VARCHAR":
        bad = con.execute(
            "SELECT tax_year FROM master_raw WHERE tax_year IS NOT NULL AND "
            r"NOT regexp_full_match(tax_year, '\s*[0-9]{4}\s*') LIMIT 1"
        ).fetchone()
        if bad:
            raise MasterError(
                f"taxpayer master {path.name}: tax_year must be a year, not {bad[0]!r:.20}"
            )


def _as_filed(present: set[str]) -> str:
    """The master as filed, from table `master_raw`: every column text (blank when absent) but tax_year."""
    select = ", ".join(
        f"coalesce(CAST({c} AS VARCHAR), '') AS {c}" if c in present else f"'' AS {c}"
        for c in MASTER_COLUMNS
        if c != "tax_year"
    )
    return f"SELECT {select}, CAST(tax_year AS INTEGER) AS tax_year FROM master_raw"


def _suffix(value: str) -> tuple[str]:
    return (suffix_code(value),)


def _dob(value: str) -> tuple[str]:
    return (iso_date(value),)


_NAMES = (
    "given",
    "given_first",
    "given_phonetic",
    "middle_initial",
    "surname",
    "surname_first",
    "surname_phonetic",
)
# Each normaliser, run once per distinct value of its columns: (table, columns, function, outputs).
_MAPS = (
    ("name_map", ("first_name", "middle_name", "last_name"), name_features, _NAMES),
    ("suffix_map", ("suffix",), _suffix, ("suffix",)),
    ("dob_map", ("date_of_birth",), _dob, ("dob",)),
    ("address_map", ("street", "unit", "city", "state", "zip"), address_features, ADDRESS_COLUMNS),
)
# The address history from `master` and the maps; DuckDB's SQL, run on Spark as `identify.dialects`
# translates it. The order that numbers the rows names every column, so no two rows tie in it.
_HISTORY = f"""
WITH filed AS (
    SELECT nullif(regexp_replace(m.tin, '[^0-9]', '', 'g'), '') AS tin,
           {
    ", ".join(f"n.out_{c} AS {c}" for c in _NAMES)
}, x.out_suffix AS suffix, d.out_dob AS dob,
           {", ".join(f"a.out_{c} AS {c}" for c in ADDRESS_COLUMNS)}, m.tax_year
    FROM master m
    JOIN name_map n USING (first_name, middle_name, last_name)
    JOIN suffix_map x USING (suffix)
    JOIN dob_map d USING (date_of_birth)
    JOIN address_map a USING (street, unit, city, state, zip)
)
SELECT 'M' || CAST(row_number() OVER (ORDER BY tin, first_year, address_key, {
    ", ".join(
        c for c in (*_NAMES, "suffix", "dob", *ADDRESS_COLUMNS, "last_year") if c != "address_key"
    )
}) AS VARCHAR)
       AS unique_id, *
FROM (
    SELECT tin, {", ".join(_NAMES)}, suffix, dob, {", ".join(ADDRESS_COLUMNS)},
           min(tax_year) AS first_year, max(tax_year) AS last_year
    FROM filed GROUP BY ALL
)
"""


PARALLEL_ABOVE = 100_000  # distinct values; below this, starting processes costs more than it saves


def _apply(fn, values: list[tuple]) -> list[tuple]:
    return [fn(*v) for v in values]


def _map_distinct(
    con,
    table: str,
    columns: tuple[str, ...],
    fn,
    outputs: tuple[str, ...],
    stop: threading.Event | None = None,
) -> None:
    """Normalise each distinct value of `columns` once, in Python, into table `table`; large sets of
    values (the street lines of a national master) are spread over the machine's cores."""
    values = con.execute(f"SELECT DISTINCT {', '.join(columns)} FROM master").fetchall()
    workers = min(len(os.sched_getaffinity(0)), 4)
    if len(values) > PARALLEL_ABOVE and workers > 1:
        size = -(-len(values) // (workers * 8))
        chunks = [values[i : i + size] for i in range(0, len(values), size)]
        mapped = []
        with Workers(workers) as pool:
            for part in [pool.submit(_apply, fn, chunk) for chunk in chunks]:
                if stop is not None and stop.is_set():
                    pool.shutdown(cancel_futures=True)
                    raise LoadStopped
                mapped.extend(part.result())
    else:
        mapped = _apply(fn, values)
    data = {c: pa.array([v[i] for v in values], pa.string()) for i, c in enumerate(columns)}
    con.register(f"{table}_arrow", pa.table(data | _outputs(mapped, outputs)))
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM {table}_arrow")
    con.unregister(f"{table}_arrow")


def _outputs(mapped: list[tuple], outputs: tuple[str, ...]) -> dict[str, pa.Array]:
    # Outputs are prefixed: an output may share its name with an input ("city" -> folded "city").
    return {
        f"out_{c}": pa.array([m[j] or None for m in mapped], pa.string())
        for j, c in enumerate(outputs)
    }


def _prepare(con: duckdb.DuckDBPyConnection, stop: threading.Event | None = None) -> None:
    for table, columns, fn, outputs in _MAPS:
        _go_on(stop)
        _map_distinct(con, table, columns, fn, outputs, stop)
    _go_on(stop)
    con.execute(f"CREATE OR REPLACE TABLE master_addresses AS {_HISTORY}")


def _map_batches(fn, columns: tuple[str, ...], outputs: tuple[str, ...], batches):
    """On a Spark executor: `fn` over each row of each Arrow batch, the inputs kept beside the outputs."""
    for batch in batches:
        values = list(zip(*(batch.column(c).to_pylist() for c in columns)))
        mapped = [fn(*v) for v in values]
        yield pa.RecordBatch.from_pydict(
            {c: batch.column(c) for c in columns} | _outputs(mapped, outputs)
        )


def _prepare_on_spark(path: Path, present: set[str], parts: Path) -> Path:
    """The address history prepared on Spark, written as Parquet parts into folder `parts`: the same
    normalisers run on the executors over each distinct value, and the same SQL assembles them."""
    from functools import partial

    from pyspark.sql.types import StringType, StructField, StructType

    from taxgate.identify.dialects import to_spark
    from taxgate.identify.spark import session

    spark = session()
    if path.suffix.lower() in (".parquet", ".pq"):
        raw = spark.read.parquet(str(path))
    else:
        raw = spark.read.options(
            header=True, inferSchema=False, multiLine=True, quote='"', escape='"'
        ).csv(str(path))
    views = ("master_raw", "master", *(m[0] for m in _MAPS))
    try:
        raw.toDF(*(c.lower() for c in raw.columns)).createOrReplaceTempView("master_raw")
        spark.sql(to_spark(_as_filed(present))).createOrReplaceTempView("master")
        for table, columns, fn, outputs in _MAPS:
            schema = StructType(
                [StructField(c, StringType()) for c in (*columns, *(f"out_{o}" for o in outputs))]
            )
            distinct = spark.sql(f"SELECT DISTINCT {', '.join(columns)} FROM master")
            distinct.mapInArrow(
                partial(_map_batches, fn, columns, outputs), schema
            ).createOrReplaceTempView(table)
        spark.sql(to_spark(_HISTORY)).write.mode("overwrite").parquet(str(parts))
    finally:  # the session is shared: Splink registers its own tables by these names
        for view in views:
            spark.catalog.dropTempView(view)
    return parts


def addresses_to_release(
    con: duckdb.DuckDBPyConnection, decisions: str, codes: Iterable[str] = ("ID_POSITIVE",)
) -> None:
    """Table `released`: for each taxpayer identified in table `decisions` with one of `codes` (only a
    positive identification, unless a replayed rule set says otherwise), the last known address
    (table `last_known`, made by `load_master`)."""
    wanted = ", ".join("'" + c.replace("'", "''") + "'" for c in codes)
    con.execute(
        f"""CREATE OR REPLACE TABLE released AS SELECT tin, address FROM last_known
            WHERE tin IN (SELECT matched_tin FROM {decisions} WHERE code IN ({wanted}))"""
    )


# The one order of a taxpayer's rows that says which address is the last known one (docs/DESIGN.md
# "Data formats": the one on the latest tax year). Two filed for that same year are taken in the
# order of their text, so that whoever asks (a batch's release, an officer's review, a remediation)
# gets the same address whatever order the master's file or its reader gives the rows in.
LATEST_FIRST = "tax_year DESC, street, unit, city, state, zip"


def last_known_address_sql(source: str, tins: str) -> str:
    """A query of (tin, address) for each TIN among `tins` (SQL: a subquery or a list) with a row in
    `source` (a table, or a reader of the master's file): the address on its first row in
    `LATEST_FIRST` order, as filed, its tax year as text."""
    return f"""
        SELECT tin, struct_pack(street := street, unit := unit, city := city, state := state,
                                zip := zip, tax_year := CAST(tax_year AS VARCHAR)) AS address
        FROM (SELECT regexp_replace(CAST(tin AS VARCHAR), '[^0-9]', '', 'g') AS tin,
                     street, unit, city, state, zip, tax_year
              FROM {source})
        WHERE tin IN ({tins})
        QUALIFY row_number() OVER (PARTITION BY tin ORDER BY {LATEST_FIRST}) = 1"""


def last_known_address(master_path: Path, tin: str) -> dict[str, str] | None:
    """The taxpayer's last known address in the master's file (`last_known_address_sql`), every
    part as text ("" where the master has none); None when the master holds no row for `tin`."""
    con = duckdb.connect()
    try:
        found = con.execute(
            last_known_address_sql(_reader(master_path), "?"), [str(master_path), tin]
        ).fetchone()
    finally:
        con.close()
    return None if found is None else {k: "" if v is None else str(v) for k, v in found[1].items()}


def _reader(master_path: Path) -> str:
    """The master's file as a DuckDB table function, its path the query's first parameter."""
    return (
        "read_parquet(?)"
        if master_path.suffix.lower() in (".parquet", ".pq")
        else "read_csv(?, header=true, all_varchar=true)"
    )


def taxpayer_records(master_path: Path, tins: list[str]) -> dict[str, list[dict]]:
    """Every row the master holds for each TIN, in `LATEST_FIRST` order (the first is the last known
    address), as text (what an officer reviews, and where a notice to the taxpayer is mailed)."""
    tins = [t for t in tins if t]
    if not tins:
        return {}
    reader = _reader(master_path)
    marks = ", ".join("?" for _ in tins)
    con = duckdb.connect()
    try:
        cursor = con.execute(
            f"""SELECT regexp_replace(CAST(tin AS VARCHAR), '[^0-9]', '', 'g') AS tin, * EXCLUDE (tin)
                FROM {reader} WHERE regexp_replace(CAST(tin AS VARCHAR), '[^0-9]', '', 'g') IN ({marks})
                ORDER BY {LATEST_FIRST}""",
            [str(master_path), *tins],
        )
        names = [d[0] for d in cursor.description]
        found = [dict(zip(names, row)) for row in cursor.fetchall()]
    finally:
        con.close()
    records: dict[str, list[dict]] = {}
    for row in found:
        records.setdefault(row["tin"], []).append(
            {k: "" if v is None else str(v) for k, v in row.items()}
        )
    return records
