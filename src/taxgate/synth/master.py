"""A seeded, vectorised taxpayer master: one row per taxpayer per tax year, with ground truth.

Households are drawn first (origin, size, the years they file, when they move); people inherit the
household's address history and, by origin, its surnames. The cases that break matchers are planted
on purpose and labelled: families sharing a home and a surname, Jr/Sr with one name, twins, unrelated
households in one home, apartment buildings, PO boxes, very common names. TINs are valid-format SSNs
and ITINs, unique by construction. Names and addresses are written as a standardised master would
hold them: upper case, USPS abbreviations; accents kept on some records and not others.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from taxgate.synth.pools import (
    DIRECTIONALS,
    ORIGINS,
    PLACES,
    STREET_NAMES,
    STREET_TYPES,
    TWO_SURNAMES,
)

FIRST_YEAR, LAST_YEAR = 2015, 2024
YEARS = LAST_YEAR - FIRST_YEAR + 1
HOUSEHOLDS_PER_CHUNK = 100_000
ORIGIN_NAMES = list(ORIGINS)


def zipf_choice(
    rng: np.random.Generator, n_items: int, size: int, exponent: float = 1.1
) -> np.ndarray:
    """Indices into a pool ordered most common first, drawn with Zipf weights."""
    weights = 1.0 / np.arange(1, n_items + 1) ** exponent
    return rng.choice(n_items, size=size, p=weights / weights.sum())


def strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


# -- TINs: unique by construction -----------------------------------------------------------------
# A person's global index is scrambled by an affine map modulo the size of the valid space, then
# split into the three groups. SSN areas 001-899 without 666; ITIN areas 900-999 with the groups
# the IRS assigns (50-65, 70-88, 90-92, 94-99).
_SSN_AREAS = np.array([a for a in range(1, 900) if a != 666])
_ITIN_GROUPS = np.array(
    list(range(50, 66)) + list(range(70, 89)) + [90, 91, 92] + list(range(94, 100))
)
_SCRAMBLE = 1_000_003  # prime; coprime with both space sizes


def tins(person_ids: np.ndarray, itin: np.ndarray) -> pa.Array:
    ssn_space = len(_SSN_AREAS) * 99 * 9999
    itin_space = 100 * len(_ITIN_GROUPS) * 9999
    ids = person_ids.astype(np.int64)
    s = (ids * _SCRAMBLE + 12345) % ssn_space
    i = (ids * _SCRAMBLE + 54321) % itin_space
    area = np.where(itin, 900 + i // (len(_ITIN_GROUPS) * 9999), _SSN_AREAS[s // (99 * 9999)])
    group = np.where(itin, _ITIN_GROUPS[(i // 9999) % len(_ITIN_GROUPS)], 1 + (s // 9999) % 99)
    serial = np.where(itin, 1 + i % 9999, 1 + s % 9999)
    text = np.char.add(
        np.char.add(
            np.char.add(np.char.zfill(area.astype(str), 3), "-"),
            np.char.add(np.char.zfill(group.astype(str), 2), "-"),
        ),
        np.char.zfill(serial.astype(str), 4),
    )
    return pa.array(text)


def _take(pool: list[str], idx: np.ndarray) -> pa.Array:
    return pa.array(pool).take(pa.array(idx))


def _join(*parts: pa.Array, sep: str = " ") -> pa.Array:
    """Join string arrays element-wise, skipping empty parts."""
    joined = pc.binary_join_element_wise(*parts, sep)
    return pc.utf8_trim(pc.replace_substring_regex(joined, f"(?:{sep}){{2,}}", sep), " -")


def _chunk(rng: np.random.Generator, n_households: int, person_offset: int, household_offset: int):
    """Generate one chunk: returns (master rows table, labels table, persons made)."""
    H = n_households
    # Households: origin, size, filing years, moves.
    origin_w = np.array([ORIGINS[o][0] for o in ORIGIN_NAMES])
    origin = rng.choice(len(ORIGIN_NAMES), size=H, p=origin_w / origin_w.sum())
    size = rng.choice(np.arange(1, 7), size=H, p=[0.30, 0.25, 0.18, 0.15, 0.08, 0.04])
    start = rng.integers(0, YEARS - 1, size=H)
    end = np.minimum(YEARS - 1, start + rng.geometric(0.15, size=H))
    moves = rng.random((H, YEARS)) < 0.12
    epoch = np.cumsum(moves, axis=1)  # address index per household and year

    # Addresses per (household, epoch).
    A = (H, YEARS + 1)
    house = rng.integers(1, 9999, size=A)
    street = zipf_choice(rng, len(STREET_NAMES), H * (YEARS + 1), 0.8).reshape(A)
    stype = rng.integers(0, len(STREET_TYPES), size=A)
    direction = np.where(rng.random(A) < 0.2, rng.integers(0, 4, size=A), -1)
    place = zipf_choice(rng, len(PLACES), H * (YEARS + 1), 0.6).reshape(A)
    zip_tail = rng.integers(1, 99, size=A)
    unit_no = np.where(
        rng.random(A) < 0.28, rng.integers(1, 40, size=A) * 10 + rng.integers(1, 9, size=A), -1
    )
    po_box = rng.random(A) < 0.04
    # Unrelated households in one home (the D. Mass. court's "shared homes") and apartment buildings.
    shared = rng.random(H) < 0.05
    building = (~shared) & (rng.random(H) < 0.08)
    donor = rng.integers(0, H, size=H)
    for arr in (house, street, stype, direction, place, zip_tail, po_box):
        arr[shared | building] = arr[donor[shared | building]]
    unit_no[shared] = unit_no[donor[shared]]
    unit_no[building] = rng.integers(1, 40, size=(building.sum(), YEARS + 1)) * 10 + 9

    # People: role 0 is the head, 1 the partner (in most households of 2+), 2 a child.
    hh = np.repeat(np.arange(H), size)
    position = np.arange(len(hh)) - np.repeat(np.cumsum(size) - size, size)
    partner = (size >= 2) & (rng.random(H) < 0.8)
    adults = np.where(partner, 2, 1)
    role = np.where(position == 0, 0, np.where(partner[hh] & (position == 1), 1, 2))
    child_index = position - adults[hh]  # 0 for the first child, 1 for the second, ...
    P = len(hh)
    o = origin[hh]

    # Names by origin (Zipf draws: very common names repeat).
    given = np.empty(P, dtype=object)
    sur_a = np.empty(P, dtype=object)
    sur_b = np.full(P, "", dtype=object)
    head_sur = np.empty(H, dtype=object)
    partner_sur = np.empty(H, dtype=object)
    for k, name in enumerate(ORIGIN_NAMES):
        _, givens, surnames = ORIGINS[name]
        in_origin = o == k
        given[in_origin] = np.array(givens, dtype=object)[
            zipf_choice(rng, len(givens), in_origin.sum())
        ]
        hk = origin == k
        head_sur[hk] = np.array(surnames, dtype=object)[zipf_choice(rng, len(surnames), hk.sum())]
        partner_sur[hk] = np.array(surnames, dtype=object)[
            zipf_choice(rng, len(surnames), hk.sum())
        ]
        own = np.array(surnames, dtype=object)[zipf_choice(rng, len(surnames), in_origin.sum())]
        two = name in TWO_SURNAMES
        idx = np.flatnonzero(in_origin)
        r = role[idx]
        h = hh[idx]
        if two:
            # Head: own paternal + own maternal; partner likewise; children: head's + partner's first surname.
            sur_a[idx] = np.where(
                r == 0, head_sur[h], np.where(r == 1, partner_sur[h], head_sur[h])
            )
            sur_b[idx] = np.where(
                r == 2, partner_sur[h], own
            )  # children: the partner's first surname
            sur_b[idx[rng.random(len(idx)) < 0.25]] = ""  # many file with one surname only
        else:
            keeps = rng.random(len(idx)) < 0.75
            sur_a[idx] = np.where((r == 1) & ~keeps, own, head_sur[h])
    # Jr/Sr: in some households a child carries the head's given name.
    jr_house = (size >= 2) & (rng.random(H) < 0.06)
    first_child = child_index == 0
    jr = first_child & jr_house[hh]
    head_index = np.cumsum(size) - size
    given[jr] = given[head_index[hh[jr]]]
    suffix = np.full(P, "", dtype=object)
    suffix[jr] = "JR"
    sr = np.zeros(P, dtype=bool)
    sr[head_index[np.unique(hh[jr])]] = True
    suffix[sr & (rng.random(P) < 0.5)] = "SR"
    middle = np.where(
        rng.random(P) < 0.35,
        np.array([g.split()[0] for g in given], dtype=object)[rng.permutation(P)],
        "",
    )
    middle = np.where(rng.random(P) < 0.3, np.array([m[:1] for m in middle], dtype=object), middle)

    # Dates of birth; twins share one.
    head_year = rng.integers(1950, 1986, size=H)
    birth_year = np.where(role <= 1, head_year[hh] + rng.integers(-4, 5, size=P), 0)
    child_year = np.minimum(2006, head_year[hh] + rng.integers(20, 41, size=P))
    birth_year = np.where(role == 2, child_year, birth_year)
    birth_day = rng.integers(0, 365, size=P)
    twin_house = (size >= 4) & (rng.random(H) < 0.05)
    second_child = (child_index == 1) & twin_house[hh]
    twin = second_child | (first_child & twin_house[hh] & np.r_[second_child[1:], False])
    birth_year[second_child] = birth_year[np.flatnonzero(second_child) - 1]
    birth_day[second_child] = birth_day[np.flatnonzero(second_child) - 1]
    dob = (
        np.array(birth_year - 1970, dtype="datetime64[Y]").astype("datetime64[D]") + birth_day
    ).astype(str)

    # Keep accents on some records, fold them on others (masters disagree with themselves).
    accented = rng.random(P) < 0.35
    fold_some = np.vectorize(strip_accents, otypes=[object])
    given = np.where(accented, given, fold_some(given))
    sur_a = np.where(accented, sur_a, fold_some(sur_a))
    sur_b = np.where(accented, sur_b, fold_some(np.where(sur_b == "", "", sur_b)))
    joiner = np.where(rng.random(P) < 0.06, "-", " ")
    last = np.array(
        [a if not b else f"{a}{j}{b}" for a, b, j in zip(sur_a, sur_b, joiner)], dtype=object
    )

    # Person-years: each person files from 18 (and the household's first year) to its last year.
    first = np.maximum(start[hh], birth_year - FIRST_YEAR + 18)
    count = np.maximum(0, end[hh] - first + 1)
    files = count > 0
    person_id = person_offset + np.arange(P)
    itin = rng.random(P) < 0.15
    row_person = np.repeat(np.arange(P), count)
    year_index = first[row_person] + (
        np.arange(len(row_person)) - np.repeat(np.cumsum(count) - count, count)
    )
    row_hh = hh[row_person]
    e = epoch[row_hh, year_index]

    def at(arr):
        return arr[row_hh, e]

    r_house, r_street, r_type, r_dir = at(house), at(street), at(stype), at(direction)
    r_place, r_zip, r_unit, r_po = at(place), at(zip_tail), at(unit_no), at(po_box)
    dirs = list(DIRECTIONALS) + [""]
    street_line = _join(
        pa.array(r_house.astype(str)),
        _take(dirs, np.where(r_dir < 0, 4, r_dir)),
        _take(STREET_NAMES, r_street),
        _take(list(STREET_TYPES), r_type),
    )
    box_line = pc.binary_join_element_wise(
        "PO BOX", pa.array((r_house % 9000 + 100).astype(str)), " "
    )
    street_line = pc.if_else(pa.array(r_po), box_line, street_line)
    unit = pc.if_else(
        pa.array((r_unit >= 0) & ~r_po),
        pc.binary_join_element_wise("APT", pa.array(r_unit.astype(str)), " "),
        "",
    )
    zip3 = np.array([p[2] for p in PLACES])
    zips = np.char.add(zip3[r_place], np.char.zfill(r_zip.astype(str), 2))

    person_tin = tins(person_id, itin)
    rows = pa.table(
        {
            "tin": person_tin.take(pa.array(row_person)),
            "first_name": pa.array(given, pa.string()).take(pa.array(row_person)),
            "middle_name": pa.array(middle, pa.string()).take(pa.array(row_person)),
            "last_name": pa.array(last, pa.string()).take(pa.array(row_person)),
            "suffix": pa.array(suffix, pa.string()).take(pa.array(row_person)),
            "date_of_birth": pa.array(dob).take(pa.array(row_person)),
            "street": street_line,
            "unit": unit,
            "city": _take([p[0] for p in PLACES], r_place),
            "state": _take([p[1] for p in PLACES], r_place),
            "zip": pa.array(zips),
            "tax_year": pa.array((FIRST_YEAR + year_index).astype(np.int16)),
        }
    )
    labels = pa.table(
        {
            "tin": person_tin,
            "person_id": pa.array(person_id),
            "household_id": pa.array(household_offset + hh),
            "origin": _take(ORIGIN_NAMES, o),
            "itin": pa.array(itin),
            "jr_sr": pa.array(jr | sr),
            "twin": pa.array(twin),
            "shared_home": pa.array(shared[hh]),
            "apartment_building": pa.array(building[hh]),
        }
    ).filter(pa.array(files))
    return rows, labels, P


def generate_master(taxpayers: int, out: Path, seed: int = 7) -> tuple[int, int]:
    """Write a master of about `taxpayers` people to `out` (Parquet or CSV) and its labels beside it
    as `<stem>.labels.parquet`. Returns (rows, taxpayers) written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    labels_path = out.with_name(out.stem + ".labels.parquet")
    writer = labels_writer = None
    rows_written = people = persons_made = 0
    chunk = 0
    try:
        while people < taxpayers:
            rng = np.random.default_rng([seed, chunk])
            want = taxpayers - people
            n_households = max(1, min(HOUSEHOLDS_PER_CHUNK, int(want / 2.0) + 1))
            rows, labels, made = _chunk(
                rng, n_households, persons_made, chunk * HOUSEHOLDS_PER_CHUNK
            )
            if labels.num_rows > want:  # trim the last chunk to the exact number of taxpayers
                keep = labels.slice(0, want)
                labels = keep
                rows = rows.filter(pc.is_in(rows["tin"], keep["tin"]))
            if writer is None:
                writer = _open_writer(out, rows.schema)
                labels_writer = pq.ParquetWriter(labels_path, labels.schema)
            writer.write_table(rows)
            labels_writer.write_table(labels)
            rows_written += rows.num_rows
            people += labels.num_rows
            persons_made += made
            chunk += 1
    finally:
        if writer is not None:
            writer.close()
            labels_writer.close()
    return rows_written, people


def _open_writer(out: Path, schema: pa.Schema):
    if out.suffix.lower() == ".csv":
        import pyarrow.csv as pacsv

        return pacsv.CSVWriter(out, schema)
    return pq.ParquetWriter(out, schema, compression="zstd")
