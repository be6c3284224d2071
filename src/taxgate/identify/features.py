"""The columns the model compares, built the same way for requests and for the master.

Names are folded tokens without particles; addresses are USPS-standardised by usaddress + scourgify
and split into house number, street, unit, ZIP5, city and state; phonetic codes come from jellyfish.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from functools import lru_cache

import jellyfish

from taxgate.normalize.address import parse_street, state_code, street_letters, street_parts, zip5
from taxgate.normalize.name import name_tokens, suffix_code
from taxgate.normalize.text import digits, fold

PERSON_COLUMNS = (
    "given",
    "given_first",
    "given_phonetic",
    "middle_initial",
    "surname",
    "surname_first",
    "surname_phonetic",
    "suffix",
    "dob",
    "tin",
)
ADDRESS_COLUMNS = (
    "house_number",
    "street_name",
    "street_core",
    "street_type",
    "street_letters",
    "unit",
    "zip5",
    "city",
    "state",
    "address_key",
)
FEATURE_COLUMNS = PERSON_COLUMNS + ADDRESS_COLUMNS


EARLIEST_BIRTH_YEAR = 1880


def iso_date(value: str) -> str:
    """A date of birth as YYYY-MM-DD, or "" when it cannot be read or cannot be one (no such day, or
    a year before 1880 or after this one): such a date neither helps nor vetoes, as a blank would.
    A slashed date is read month first (MM/DD/YYYY) and, when that is no date, day first."""
    text = value.strip()
    if len(text) >= 10 and text[4] == "-" and text[7] == "-" and text[:4].isdigit():
        readings = [(text[:4], text[5:7], text[8:10])]
    else:
        parts = text.replace("-", "/").split("/")
        if not (len(parts) == 3 and all(p.isdigit() for p in parts) and len(parts[2]) == 4):
            return ""
        readings = [(parts[2], parts[0], parts[1]), (parts[2], parts[1], parts[0])]
    for year, month, day in readings:
        try:
            born = date(int(year), int(month), int(day))
        except ValueError:
            continue
        return born.isoformat() if EARLIEST_BIRTH_YEAR <= born.year <= date.today().year else ""
    return ""


@lru_cache(maxsize=200_000)
def _phonetic(token: str) -> str:
    return jellyfish.metaphone(token) if token else ""


def name_features(first: str, middle: str, last: str) -> tuple[str, str, str, str, str, str, str]:
    given, surname = name_tokens(first), name_tokens(last)
    return (
        " ".join(given),
        given[0] if given else "",
        _phonetic(given[0]) if given else "",
        fold(middle)[:1],
        " ".join(surname),
        surname[0] if surname else "",
        _phonetic(surname[0]) if surname else "",
    )


def person_features(
    first: str, middle: str, last: str, suffix: str, dob: str, tin: str
) -> tuple[str, ...]:
    """PERSON_COLUMNS for one person."""
    return (*name_features(first, middle, last), suffix_code(suffix), iso_date(dob), digits(tin))


def address_features(
    street: str, unit: str, city: str, state: str, zip_code: str
) -> tuple[str, ...]:
    """ADDRESS_COLUMNS for one address. `address_key` is the standardised street line and unit, the
    form in which a requester's address must equal one the taxpayer filed from; `street_core` and
    `street_type` are the street name split (`street_parts`) and `street_letters` the name spelled
    out in letters (`street_letters`), for telling a typing error apart."""
    line = parse_street(street, unit)
    return (
        line.number,
        line.name,
        *street_parts(line.name),
        street_letters(line.name),
        line.unit,
        zip5(zip_code),
        fold(city),
        state_code(state),
        f"{line.line}#{line.unit}" if line.kind else "",
    )


def _per_distinct(function, keys: list[tuple]) -> list:
    """`function(*key)` for each key, computed once per distinct key: names, dates and addresses
    recur in a batch."""
    answers = {key: function(*key) for key in set(keys)}
    return list(map(answers.__getitem__, keys))


def request_feature_columns(
    columns: Mapping[str, Sequence[str]], rows: Sequence[int]
) -> list[Sequence[str]]:
    """FEATURE_COLUMNS, a sequence each, of the requests at positions `rows` of `columns` (a
    request's fields by name, a sequence each): `person_features` and `address_features` of each."""

    def values(*names: str) -> list[tuple[str, ...]]:
        return list(zip(*([columns[n][i] for i in rows] for n in names)))

    if not rows:
        return [[] for _ in FEATURE_COLUMNS]
    names = _per_distinct(name_features, values("first_name", "middle_name", "last_name"))
    suffixes = _per_distinct(suffix_code, values("suffix"))
    born = _per_distinct(iso_date, values("date_of_birth"))
    tins = [digits(columns["tin"][i]) for i in rows]
    addresses = _per_distinct(address_features, values("street", "unit", "city", "state", "zip"))
    return [*zip(*names), suffixes, born, tins, *zip(*addresses)]
