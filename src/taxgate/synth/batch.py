"""A request batch shaped like the 2025 datafile, drawn from a synthetic master, with ground truth.

Rows name people from the master (at an address they filed from, or one they moved to since) and
people absent from it. On top come the defects the courts found — placeholder and ZIP-only addresses,
one reason text on many rows, one officer on many rows, civil statutes, requests for return
information — and the variations the tax agency's auditor described: spelling, surname order, a
dropped maternal surname, accents, abbreviations, unit formats. Every row's truth is written beside
the batch in `<stem>.labels.parquet`.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass, fields
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from taxgate.domain import REQUEST_COLUMNS
from taxgate.synth.master import strip_accents
from taxgate.synth.pools import (
    DIRECTIONALS,
    ORIGINS,
    PLACES,
    STREET_NAMES,
    STREET_TYPES,
    SURNAME_FIRST,
)

PLACEHOLDERS = [
    "Failed to Provide",
    "Unknown Address",
    "NA NA",
    "N/A",
    "None",
    "Not provided",
    "UNKNOWN",
    "00000",
]
BOILERPLATE = (
    "The subject is an alien subject to a final order of removal who is believed to reside in the "
    "United States."
)
CIVIL = ["8 U.S.C. § 1227", "8 U.S.C. § 1229a", "8 U.S.C. § 1231(a)"]
CITATION_FORMS = [
    "8 U.S.C. § 1253(a)(1)",
    "8 USC 1253(a)(1)",
    "Title 8, Section 1253(a)(1)",
    "8 U.S.C. 1253(a)(1)",
]
RETURN_INFORMATION = ["employer", "bank_account", "relatives", "ip_address", "phone", "income"]


@dataclass
class Mix:
    """Shares of the batch (0..1) given each defect or variation; defaults echo the 2025 datafile."""

    absent: float = 0.30  # people not in the master at all
    moved: float = 0.12  # present, but at an address they never filed from
    older_address: float = 0.15  # present, at an earlier address in their history
    placeholder_address: float = 0.08
    zip_only: float = 0.03
    boilerplate: float = 0.35  # one reason text on this share of rows
    single_officer: float = 0.35  # one officer on this share of rows
    civil_statute: float = 0.04
    unknown_statute: float = 0.01
    tax_statute: float = 0.005
    return_information: float = 0.05  # also asks for employer, bank, relatives, IP ...
    missing_removal_order: float = 0.03
    missing_name: float = 0.01
    missing_case: float = 0.01
    bad_tax_period: float = 0.01
    duplicate: float = 0.01
    malformed: float = 0.002  # CSV rows damaged in transit
    with_tin: float = 0.10
    wrong_tin: float = 0.01
    # Requests whose address is a placeholder or a ZIP code alone that carry the person's TIN instead:
    # the 2025 datafile's shape, where the TIN path disclosed mostly on such rows (D.D.C. 2026-02-26).
    tin_with_address_defect: float = 0.90
    name_variation: float = 0.35
    address_variation: float = 0.40
    # A clerk's typing errors beyond the names': a date of birth with two digits swapped, one digit
    # wrong or day and month swapped; a letter wrong in the street's name.
    dob_typo: float = 0.04
    street_typo: float = 0.04
    street_type_dropped: float = 0.03
    # Of the people who moved, those who moved along their own street: a house number they never
    # filed from, on a street they did (an address the taxpayer never filed from, made hard).
    moved_next_door: float = 0.4

    @classmethod
    def datafile_2025(cls) -> Mix:
        """The demo's batch: as the defaults, but TINs come mostly on rows without a usable address
        (`tin_with_address_defect`) and seldom otherwise. That is the shape behind the D.D.C.'s finding
        of 2026-02-26, where about 42,695 of the 47,289 TIN-path disclosures lacked a valid address."""
        return cls(with_tin=0.02)

    @classmethod
    def clean(cls) -> Mix:
        """No defects at all: every row is a lawful request (for identification accuracy)."""
        zero = {f.name: 0.0 for f in fields(cls)}
        keep = (
            "absent",
            "moved",
            "older_address",
            "name_variation",
            "address_variation",
            "with_tin",
            "dob_typo",
            "street_typo",
            "street_type_dropped",
            "moved_next_door",
        )
        return cls(**{**zero, **{k: getattr(cls, k) for k in keep}})


def _sample_people(master: Path, n: int, seed: int) -> list[dict]:
    """n distinct taxpayers with their whole address history (latest first)."""
    con = duckdb.connect()
    con.execute("SELECT setseed(?)", [((seed % 1000) / 1000.0)])
    reader = "read_parquet(?)" if master.suffix != ".csv" else "read_csv(?, all_varchar=true)"
    con.execute(f"CREATE TABLE m AS SELECT * FROM {reader}", [str(master)])
    labels = master.with_name(master.stem + ".labels.parquet")
    origin_sql = (
        f"(SELECT tin, origin FROM read_parquet('{labels.as_posix()}'))"
        if labels.exists()
        else "(SELECT DISTINCT tin, 'unknown' AS origin FROM m)"
    )
    rows = con.execute(
        f"""
        WITH picked AS (SELECT tin FROM (SELECT DISTINCT tin FROM m) ORDER BY hash(tin || ?) LIMIT ?)
        SELECT m.tin, any_value(o.origin), any_value(first_name), any_value(middle_name), any_value(last_name),
               any_value(suffix), any_value(date_of_birth),
               list(struct_pack(street := street, unit := unit, city := city, state := state, zip
               := CAST(zip AS VARCHAR))
                    ORDER BY tax_year DESC)
        FROM m JOIN picked USING (tin) LEFT JOIN {origin_sql} o USING (tin)
        GROUP BY m.tin ORDER BY hash(m.tin || ?)
        """,
        [str(seed), n, str(seed)],
    ).fetchall()
    con.close()
    keys = (
        "tin",
        "origin",
        "first_name",
        "middle_name",
        "last_name",
        "suffix",
        "date_of_birth",
        "history",
    )
    return [dict(zip(keys, r)) for r in rows]


def _typo(rnd: random.Random, word: str, ops: tuple[str, ...] = ("swap", "drop", "double")) -> str:
    if len(word) < 4:
        return word
    i = rnd.randrange(1, len(word) - 1)
    op = rnd.choice(ops)
    if op == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if op == "drop":
        return word[:i] + word[i + 1 :]
    if op == "wrong":
        letter = rnd.choice([c for c in "aeioulnrst" if c != word[i].lower()])
        return word[:i] + (letter.upper() if word[i].isupper() else letter) + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def _dob_typo(rnd: random.Random, dob: str) -> str:
    """A date of birth as a clerk mistypes it, still a valid date: day and month swapped, two adjacent
    digits swapped, or one digit wrong (never the century)."""
    from datetime import date

    year, month, day = dob[:4], dob[5:7], dob[8:10]
    for _ in range(20):
        op = rnd.choice(("swap_day_month", "transpose", "digit"))
        if op == "swap_day_month":
            candidate = f"{year}-{day}-{month}"
        else:
            digits = list(year[2:] + month + day)
            i = rnd.randrange(len(digits) - 1)
            if op == "transpose":
                digits[i], digits[i + 1] = digits[i + 1], digits[i]
            else:
                digits[i] = str((int(digits[i]) + rnd.randrange(1, 10)) % 10)
            text = "".join(digits)
            candidate = f"{year[:2]}{text[:2]}-{text[2:4]}-{text[4:]}"
        try:
            date.fromisoformat(candidate)
        except ValueError:
            continue
        if candidate != dob and abs(int(candidate[:4]) - int(year)) < 10:
            return candidate
    return dob


def _street_typo(rnd: random.Random, street: str) -> str:
    """A letter wrong, dropped, doubled or swapped in the street's name (not its number), or its type
    spelled out and mistyped ("Stret"), or glued to the name ("Oakstreet")."""
    words = street.split()
    kind = words[-1] if len(words) > 2 and words[-1] in STREET_TYPES else ""
    how = rnd.choice(("name", "type", "glued")) if kind else "name"
    if how == "type":
        return " ".join(
            [
                *words[:-1],
                _typo(rnd, STREET_TYPES[kind].title(), ("swap", "drop", "double", "wrong")),
            ]
        )
    if how == "glued":
        return " ".join([*words[:-2], words[-2] + STREET_TYPES[kind].lower()])
    named = [i for i, w in enumerate(words[1:-1], start=1) if len(w) >= 4 and w.isalpha()]
    if not named:
        return street
    i = rnd.choice(named)
    words[i] = _typo(rnd, words[i], ("swap", "drop", "double", "wrong"))
    return " ".join(words)


def _case(rnd: random.Random, text: str) -> str:
    return rnd.choice((text, text.title(), text.lower(), text.upper()))


def _vary_address(rnd: random.Random, a: dict, notes: list[str]) -> dict:
    a = dict(a)
    words = a["street"].split()
    if rnd.random() < 0.5 and words and words[-1] in STREET_TYPES:
        words[-1] = STREET_TYPES[words[-1]].title()
        notes.append("street_type_spelled_out")
    if rnd.random() < 0.5 and len(words) > 1 and words[1] in DIRECTIONALS:
        words[1] = DIRECTIONALS[words[1]].title()
        notes.append("directional_spelled_out")
    a["street"] = _case(rnd, " ".join(words))
    if a["unit"] and rnd.random() < 0.6:
        number = a["unit"].split()[-1]
        a["unit"] = rnd.choice(
            (f"#{number}", f"Unit {number}", f"Apartment {number}", f"apt. {number}")
        )
        notes.append("unit_format")
        if rnd.random() < 0.3:  # the unit written on the street line
            a["street"], a["unit"] = f"{a['street']} {a['unit']}", ""
    if rnd.random() < 0.1:
        a["zip"] = f"{a['zip']}-{rnd.randrange(1, 9999):04d}"
        notes.append("zip_plus_4")
    a["city"] = _case(rnd, a["city"])
    return a


def _vary_name(rnd: random.Random, person: dict, notes: list[str]) -> tuple[str, str]:
    first, last = person["first_name"], person["last_name"]
    origin = person["origin"]
    surnames = last.replace("-", " ").split()
    roll = rnd.random()
    if origin == "hispanic" and len(surnames) == 2 and roll < 0.3:
        last = surnames[0]
        notes.append("dropped_maternal_surname")
    elif origin == "hispanic" and len(surnames) == 2 and roll < 0.4:
        last = f"{surnames[1]} {surnames[0]}"
        notes.append("surname_order_swapped")
    elif origin in SURNAME_FIRST and roll < 0.3:
        first, last = last, first
        notes.append("name_order_swapped")
    elif roll < 0.6:
        if rnd.random() < 0.5:
            first = _typo(rnd, first)
        else:
            last = _typo(rnd, last)
        notes.append("spelling")
    if rnd.random() < 0.3:
        first, last = strip_accents(first), strip_accents(last)
    return _case(rnd, first), _case(rnd, last)


def _fresh_address(rnd: random.Random) -> dict:
    city, state, zip3 = rnd.choice(PLACES)
    t = rnd.choice(list(STREET_TYPES))
    return {
        # house numbers the master never uses
        "street": f"{rnd.randrange(10000, 19999)} {rnd.choice(STREET_NAMES)} {t}",
        "unit": "",
        "city": city,
        "state": state,
        "zip": f"{zip3}{rnd.randrange(1, 99):02d}",
    }


def generate_batch(
    master: Path,
    out_dir: Path,
    size: int,
    seed: int = 11,
    mix: Mix | None = None,
    fmt: str = "csv",
    submitted_at: str = "2025-07-25T14:00:00Z",
    batch_ref: str | None = None,
) -> Path:
    """Write manifest.json, the rows file and its labels into `out_dir`; return the manifest path."""
    mix = mix or Mix()
    rnd = random.Random(seed)
    tin_rnd = random.Random(f"{seed}-tin")  # its own stream: the other draws stay as they were
    clerk_rnd = random.Random(f"{seed}-clerk")  # so do these: typing errors and next-door moves
    out_dir.mkdir(parents=True, exist_ok=True)
    n_present = int(round(size * (1 - mix.absent)))
    people = _sample_people(master, n_present, seed)
    origins = list(ORIGINS)
    weights = [ORIGINS[o][0] for o in origins]
    n_officers = max(1, size // 25)
    rows, labels = [], []
    for i in range(size):
        notes: list[str] = []
        defects: list[str] = []
        rid = f"R{i + 1:07d}"
        if i < len(people):
            person = people[i]
            history = person["history"]
            roll = rnd.random()
            if roll < mix.moved:
                address, on_record = _fresh_address(rnd), False
                notes.append("moved_since")
                filed_numbers = {h["street"].split()[0] for h in history}
                if (
                    clerk_rnd.random() < mix.moved_next_door
                    and history[0]["street"].split()[0].isdigit()
                ):
                    number, rest = history[0]["street"].split(" ", 1)
                    nearby = [
                        str(int(number) + d)
                        for d in (2, 4, 6, -2, -4, 10, 20)
                        if int(number) + d > 0
                    ]
                    nearby = [n for n in nearby if n not in filed_numbers]
                    if nearby:
                        address = {**history[0], "street": f"{clerk_rnd.choice(nearby)} {rest}"}
                        notes.append("moved_next_door")
            elif roll < mix.moved + mix.older_address and len(history) > 1:
                address, on_record = dict(rnd.choice(history[1:])), True
                notes.append("older_address")
            else:
                address, on_record = dict(history[0]), True
            filed = (
                dict(address) if on_record else None
            )  # as the taxpayer filed it, before a clerk's errors
            first, last = person["first_name"], person["last_name"]
            if rnd.random() < mix.name_variation:
                first, last = _vary_name(rnd, person, notes)
            if rnd.random() < mix.address_variation:
                address = _vary_address(rnd, address, notes)
            truth_tin, origin, dob = person["tin"], person["origin"], person["date_of_birth"]
            if dob and clerk_rnd.random() < mix.dob_typo:
                typed = _dob_typo(clerk_rnd, dob)
                if typed != dob:
                    dob = typed
                    notes.append("dob_typo")
            if clerk_rnd.random() < mix.street_type_dropped and len(address["street"].split()) > 2:
                address = {**address, "street": address["street"].rsplit(" ", 1)[0]}
                notes.append("street_type_dropped")
            if clerk_rnd.random() < mix.street_typo:
                typed = _street_typo(clerk_rnd, address["street"])
                if typed != address["street"]:
                    address = {**address, "street": typed}
                    notes.append("street_typo")
            middle, suffix = person["middle_name"], person["suffix"]
        else:
            origin = rnd.choices(origins, weights)[0]
            _, givens, surnames = ORIGINS[origin]
            first, last = rnd.choice(givens).title(), rnd.choice(surnames).title()
            address, on_record, truth_tin, middle, suffix = _fresh_address(rnd), False, "", "", ""
            filed = None
            dob = (
                f"{rnd.randrange(1950, 2005)}-{rnd.randrange(1, 13):02d}-{rnd.randrange(1, 29):02d}"
            )
            notes.append("absent_from_master")
        case = f"ICE-{2025}-{rnd.randrange(10**6, 10**7)}"
        statute = rnd.choice(CITATION_FORMS) if rnd.random() < 0.85 else "8 U.S.C. § 1326"
        row = {
            "request_id": rid,
            "first_name": first,
            "middle_name": middle,
            "last_name": last,
            "suffix": suffix,
            **address,
            "date_of_birth": dob,
            "tin": "",
            "tax_periods": "2022;2023;2024",
            "statute": statute,
            "case_number": case,
            "removal_order_date": f"20{rnd.randrange(10, 25)}-{rnd.randrange(1, 13):02d}-15",
            "removal_order_number": f"A{rnd.randrange(10**8, 10**9)}",
            "engaged_official": f"Officer {rnd.randrange(n_officers):05d}",
            "relevance": f"Case {case}: {first} {last} is under investigation for {statute}; "
            f"ordered removed and believed to live in {address['city'].title()}.",
            "requested_items": "last_known_address",
        }
        if truth_tin and rnd.random() < mix.with_tin:
            row["tin"] = truth_tin
        if truth_tin and rnd.random() < mix.wrong_tin:
            row["tin"] = (
                f"9{rnd.randrange(10, 99)}-7{rnd.randrange(0, 9)}-{rnd.randrange(1000, 9999)}"
            )
            defects.append("wrong_tin")
        r = rnd.random
        if r() < mix.placeholder_address:
            row.update(street=rnd.choice(PLACEHOLDERS), unit="")
            if r() < 0.5:
                row.update(city="", state="", zip="")
            defects.append("placeholder_address")
        elif r() < mix.zip_only:
            row.update(street="", unit="", city="", state="")
            defects.append("zip_only")
        if (
            truth_tin
            and not row["tin"]
            and {"placeholder_address", "zip_only"} & set(defects)
            and tin_rnd.random() < mix.tin_with_address_defect
        ):
            row["tin"] = truth_tin
        if r() < mix.boilerplate:
            row["relevance"] = BOILERPLATE
            defects.append("boilerplate_relevance")
        if r() < mix.single_officer:
            row["engaged_official"] = "Officer Avery Quinn"
            defects.append("single_officer")
        if r() < mix.civil_statute:
            row["statute"] = rnd.choice(CIVIL)
            defects.append("civil_statute")
        elif r() < mix.unknown_statute:
            row["statute"] = "INA § 237(a)(1)(B)"
            defects.append("unknown_statute")
        elif r() < mix.tax_statute:
            row["statute"] = "26 U.S.C. § 7201"
            defects.append("tax_statute")
        if r() < mix.return_information:
            row["requested_items"] = ";".join(
                rnd.sample(RETURN_INFORMATION, 2) + ["last_known_address"]
            )
            defects.append("return_information")
        if r() < mix.missing_removal_order and "1253" in row["statute"]:
            row["removal_order_number"] = ""
            defects.append("missing_removal_order")
        if r() < mix.missing_name:
            row["first_name"] = "FNU"
            defects.append("missing_name")
        if r() < mix.missing_case:
            row["case_number"] = ""
            defects.append("missing_case")
        if r() < mix.bad_tax_period:
            row["tax_periods"] = "2024;2026"
            defects.append("bad_tax_period")
        rows.append(row)
        labels.append(
            {
                "request_id": rid,
                "true_tin": truth_tin,
                "origin": origin,
                "address_on_record": on_record,
                "defects": ";".join(defects),
                "variations": ";".join(notes),
                "malformed": False,
                "filed_address": json.dumps(filed) if filed else "",
            }
        )
        if r() < mix.duplicate:
            rows.append(dict(row))
            labels.append({**labels[-1], "defects": ";".join(defects + ["duplicate"])})
    # `size` is the number of rows written, duplicates among them (the last few requests make room)
    rows, labels = rows[:size], labels[:size]
    rows_path = out_dir / f"requests.{fmt}"
    damaged = _write_rows(rows, rows_path, fmt, rnd, mix.malformed)
    for index in damaged:
        labels[index]["malformed"] = True
    pq.write_table(pa.Table.from_pylist(labels), out_dir / "requests.labels.parquet")
    manifest = {
        "batch_ref": batch_ref or f"DHS-ICE-{seed}-{size}",
        "agency": "DHS-ICE",
        "signed_by": {
            "name": "Casey Morgan",
            "title": "Director, U.S. Immigration and Customs Enforcement",
        },
        "certification": "The information will be used solely for the investigations named and by the officers named.",
        "submitted_at": submitted_at,
        "requests": rows_path.name,
    }
    manifest_path = out_dir / "manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest_path


def _write_rows(
    rows: list[dict], path: Path, fmt: str, rnd: random.Random, malformed: float
) -> list[int]:
    """Write the rows; in CSV, damage a share of them the ways files get damaged. Returns their indices."""
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
        return []
    if fmt == "jsonl":
        with open(path, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        return []
    damaged = []
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(REQUEST_COLUMNS)
        for i, row in enumerate(rows):
            values = [row[c] for c in REQUEST_COLUMNS]
            if rnd.random() < malformed:
                damaged.append(i)
                kind = rnd.randrange(3)
                if kind == 0:  # a stray quote that never closes
                    values[5] = '"' + values[5].replace('"', "")
                    fh.write(",".join(v.replace(",", " ") for v in values) + "\n")
                elif kind == 1:  # a field lost
                    writer.writerow(values[:-2])
                else:  # bytes that are not UTF-8
                    fh.flush()
                    fh.buffer.write(
                        b"\xff\xfe" + ",".join(values).encode("utf-8", "replace") + b"\n"
                    )
                continue
            writer.writerow(values)
    return damaged
