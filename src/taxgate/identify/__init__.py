"""Identify: find the one taxpayer a request is about, only when the evidence is positive.

INTERIM MATCHER (until issue 3 brings the Splink model): a taxpayer is a candidate when the folded
given name and surname equal the request's (suffix too, when the request gives one); the candidate is
positive only when the request's address (USPS-standardised street line, unit, and ZIP or city+state)
is an address that taxpayer filed from in some tax year, no other taxpayer qualifies as well, and a
supplied TIN or date of birth does not contradict it. A TIN is never used to find a candidate: a TIN
alone never releases an address (DESIGN.md "Positive identification", rule 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from taxgate.domain import ReasonCode, Request
from taxgate.normalize.address import parse_street, state_code, zip5
from taxgate.normalize.name import name_key
from taxgate.normalize.text import fold

MODEL_VERSION = "interim-exact-1"

KEY_COLUMNS = ("given_key", "surname_key", "suffix_key", "line", "unit_id", "zip5", "city_key", "state", "dob", "tin")
MASTER_COLUMNS = ("tin", "first_name", "middle_name", "last_name", "suffix", "date_of_birth",
                  "street", "unit", "city", "state", "zip", "tax_year")


class MasterError(ValueError):
    """The taxpayer master cannot be used; the message is the one line the user sees."""


@dataclass(frozen=True, slots=True)
class Identification:
    row_number: int
    code: ReasonCode
    matched_tin: str = ""  # the candidate (set for ID_POSITIVE and for vetoed candidates)
    runner_up_tin: str = ""


def digits(value: str) -> str:
    return "".join(c for c in value if c.isdigit())


def iso_date(value: str) -> str:
    """A date of birth as YYYY-MM-DD, or "" when it cannot be read (it then neither helps nor vetoes)."""
    text = value.strip()
    if len(text) >= 10 and text[4] == "-" and text[7] == "-":
        return text[:10]
    parts = text.replace("-", "/").split("/")
    if len(parts) == 3 and all(p.isdigit() for p in parts) and len(parts[2]) == 4:
        return f"{parts[2]}-{int(parts[0]):02d}-{int(parts[1]):02d}"
    return ""


def request_keys(request: Request) -> tuple[str, ...]:
    """The comparison keys of one request, in KEY_COLUMNS order."""
    street = parse_street(request.street, request.unit)
    return (
        name_key(request.first_name),
        name_key(request.last_name),
        fold(request.suffix),
        street.line,
        street.unit,
        zip5(request.zip),
        fold(request.city),
        state_code(request.state),
        iso_date(request.date_of_birth),
        digits(request.tin),
    )


def load_master(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Create tables `master` (as filed) and `master_keys` (normalised) in `con`.

    Names and street lines are normalised once per distinct value with the same functions the
    requests go through, so both sides are compared in one form.
    """
    if not path.is_file():
        raise MasterError(f"taxpayer master not found: {path}")
    reader = "read_parquet(?)" if path.suffix.lower() in (".parquet", ".pq") else "read_csv(?, header=true, all_varchar=true)"
    try:
        con.execute(f"CREATE OR REPLACE TABLE master_raw AS SELECT * FROM {reader}", [str(path)])
    except duckdb.Error as exc:
        raise MasterError(f"cannot read taxpayer master {path.name}: {str(exc).splitlines()[0]}") from None
    present = {r[0].lower() for r in con.execute("DESCRIBE master_raw").fetchall()}
    missing = [c for c in ("tin", "first_name", "last_name", "street", "tax_year") if c not in present]
    if missing:
        raise MasterError(f"taxpayer master {path.name} lacks column(s): {', '.join(missing)}")
    select = ", ".join(
        f"coalesce(CAST({c} AS VARCHAR), '') AS {c}" if c in present else f"'' AS {c}" for c in MASTER_COLUMNS if c != "tax_year"
    )
    con.execute(f"CREATE OR REPLACE TABLE master AS SELECT {select}, CAST(tax_year AS INTEGER) AS tax_year FROM master_raw")
    con.execute("DROP TABLE master_raw")

    # Each distinct value is normalised once, in Python, by the same functions as the requests.
    _map_distinct(con, "given_map", ("first_name",), lambda v: (name_key(v),), ("given_key",))
    _map_distinct(con, "surname_map", ("last_name",), lambda v: (name_key(v),), ("surname_key",))
    _map_distinct(con, "suffix_map", ("suffix",), lambda v: (fold(v),), ("suffix_key",))
    _map_distinct(con, "dob_map", ("date_of_birth",), lambda v: (iso_date(v),), ("dob",))
    _map_distinct(con, "street_map", ("street", "unit"), _street_keys, ("line", "unit_id"))
    _map_distinct(
        con, "locality_map", ("city", "state", "zip"), lambda c, s, z: (fold(c), state_code(s), zip5(z)),
        ("city_key", "state_code", "zip5"),
    )
    con.execute(
        """
        CREATE OR REPLACE TABLE master_keys AS
        SELECT regexp_replace(m.tin, '[^0-9]', '', 'g') AS tin, g.given_key, s.surname_key, x.suffix_key,
               a.line, a.unit_id, l.zip5, l.city_key, l.state_code AS state, d.dob, m.tax_year
        FROM master m
        JOIN given_map g USING (first_name)
        JOIN surname_map s USING (last_name)
        JOIN suffix_map x USING (suffix)
        JOIN dob_map d USING (date_of_birth)
        JOIN street_map a USING (street, unit)
        JOIN locality_map l USING (city, state, zip)
        """
    )


def _street_keys(street: str, unit: str) -> tuple[str, str]:
    parsed = parse_street(street, unit)
    return parsed.line, parsed.unit


def _map_distinct(con, table: str, columns: tuple[str, ...], fn, outputs: tuple[str, ...]) -> None:
    values = con.execute(f"SELECT DISTINCT {', '.join(columns)} FROM master").fetchall()
    mapped = [fn(*v) for v in values]
    data = {c: pa.array([v[i] for v in values], pa.string()) for i, c in enumerate(columns)}
    data |= {c: pa.array([m[j] for m in mapped], pa.string()) for j, c in enumerate(outputs)}
    con.register(f"{table}_arrow", pa.table(data))
    con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM {table}_arrow")
    con.unregister(f"{table}_arrow")


_CANDIDATES_SQL = """
WITH cand AS (
    SELECT r.row_number, m.tin,
           bool_or(m.line <> '' AND m.line = r.line AND m.unit_id = r.unit_id
                   AND CASE WHEN r.zip5 <> '' THEN m.zip5 = r.zip5
                            ELSE r.city_key <> '' AND m.city_key = r.city_key AND m.state = r.state END)
               AS address_on_record,
           max(m.dob) AS dob
    FROM id_requests r
    JOIN master_keys m ON m.given_key = r.given_key AND m.surname_key = r.surname_key
                      AND (r.suffix_key = '' OR m.suffix_key = r.suffix_key)
    WHERE r.given_key <> '' AND r.surname_key <> ''
    GROUP BY 1, 2
), per_row AS (
    SELECT row_number,
           list(tin ORDER BY tin) FILTER (WHERE address_on_record) AS address_tins,
           list(dob ORDER BY tin) FILTER (WHERE address_on_record) AS address_dobs,
           count(*) AS name_candidates
    FROM cand GROUP BY 1
)
SELECT r.row_number, r.tin, r.dob, p.address_tins, p.address_dobs, coalesce(p.name_candidates, 0),
       r.tin <> '' AND r.tin IN (SELECT tin FROM master_keys) AS tin_on_file
FROM id_requests r LEFT JOIN per_row p USING (row_number)
ORDER BY r.row_number
"""


def identify(con: duckdb.DuckDBPyConnection) -> dict[int, Identification]:
    """Identify every row of table `id_requests` (row_number + KEY_COLUMNS) against `master_keys`."""
    results: dict[int, Identification] = {}
    for row_number, tin, dob, tins, dobs, name_candidates, tin_on_file in con.execute(_CANDIDATES_SQL).fetchall():
        tins, dobs = tins or [], dobs or []
        if len(tins) == 1:
            candidate = tins[0]
            if tin and tin != candidate:
                code = ReasonCode.ID_TIN_CONFLICT
            elif dob and dobs[0] and dob != dobs[0]:
                code = ReasonCode.ID_DOB_CONFLICT
            else:
                code = ReasonCode.ID_POSITIVE
            results[row_number] = Identification(row_number, code, candidate)
        elif len(tins) > 1:
            results[row_number] = Identification(row_number, ReasonCode.ID_AMBIGUOUS, tins[0], tins[1])
        elif name_candidates:
            results[row_number] = Identification(row_number, ReasonCode.ID_ADDRESS_NOT_ON_RECORD)
        elif tin_on_file:
            results[row_number] = Identification(row_number, ReasonCode.ID_WEAK)  # the TIN agrees, the name does not
        else:
            results[row_number] = Identification(row_number, ReasonCode.ID_NO_CANDIDATE)
    return results


def last_known_addresses(con: duckdb.DuckDBPyConnection, tins: list[str]) -> dict[str, dict[str, str]]:
    """The address on each taxpayer's latest tax year (ties broken by the master's row order)."""
    if not tins:
        return {}
    con.register("wanted_arrow", pa.table({"tin": tins}))
    rows = con.execute(
        """
        SELECT regexp_replace(m.tin, '[^0-9]', '', 'g') AS tin,
               arg_max(struct_pack(street := m.street, unit := m.unit, city := m.city, state := m.state,
                                   zip := m.zip, tax_year := CAST(m.tax_year AS VARCHAR)), m.tax_year)
        FROM master m WHERE regexp_replace(m.tin, '[^0-9]', '', 'g') IN (SELECT tin FROM wanted_arrow) GROUP BY 1
        """
    ).fetchall()
    con.unregister("wanted_arrow")
    return {tin: address for tin, address in rows}
