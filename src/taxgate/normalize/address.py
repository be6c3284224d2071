"""US addresses: does a request set one forth, and in what USPS Publication 28 form.

Parsing is `usaddress` (a CRF tagger); standardisation is `usaddress-scourgify`. The only
patterns written here are the ones no parser answers: ZIP codes, state codes, placeholders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import version

import usaddress
from jellyfish import damerau_levenshtein_distance
from scourgify.address_constants import STREET_TYPE_ABBREVIATIONS
from scourgify.cleaning import pre_clean_addr_str
from scourgify.exceptions import AddressNormalizationError
from scourgify.normalize import (
    LINE1_USADDRESS_LABELS,
    LINE2_USADDRESS_LABELS,
    get_normalized_line_segment,
    handle_abnormal_occupancy,
    normalize_address_components,
)

from taxgate.normalize.text import ascii_text, fold

_ZIP = re.compile(r"^(\d{5})(?:-?(\d{4}))?$")

STATES: dict[str, str] = {
    "alabama": "AL",
    "alaska": "AK",
    "arizona": "AZ",
    "arkansas": "AR",
    "california": "CA",
    "colorado": "CO",
    "connecticut": "CT",
    "delaware": "DE",
    "district of columbia": "DC",
    "florida": "FL",
    "georgia": "GA",
    "hawaii": "HI",
    "idaho": "ID",
    "illinois": "IL",
    "indiana": "IN",
    "iowa": "IA",
    "kansas": "KS",
    "kentucky": "KY",
    "louisiana": "LA",
    "maine": "ME",
    "maryland": "MD",
    "massachusetts": "MA",
    "michigan": "MI",
    "minnesota": "MN",
    "mississippi": "MS",
    "missouri": "MO",
    "montana": "MT",
    "nebraska": "NE",
    "nevada": "NV",
    "new hampshire": "NH",
    "new jersey": "NJ",
    "new mexico": "NM",
    "new york": "NY",
    "north carolina": "NC",
    "north dakota": "ND",
    "ohio": "OH",
    "oklahoma": "OK",
    "oregon": "OR",
    "pennsylvania": "PA",
    "rhode island": "RI",
    "south carolina": "SC",
    "south dakota": "SD",
    "tennessee": "TN",
    "texas": "TX",
    "utah": "UT",
    "vermont": "VT",
    "virginia": "VA",
    "washington": "WA",
    "west virginia": "WV",
    "wisconsin": "WI",
    "wyoming": "WY",
    "puerto rico": "PR",
    "guam": "GU",
    "virgin islands": "VI",
    "american samoa": "AS",
    "northern mariana islands": "MP",
    "armed forces americas": "AA",
    "armed forces europe": "AE",
    "armed forces pacific": "AP",
}
_STATE_CODES = frozenset(STATES.values())


def state_code(state: str) -> str:
    """The USPS two-letter code for a state written either way; "" when it is not a state."""
    folded = fold(state)
    if len(folded) == 2 and folded.upper() in _STATE_CODES:
        return folded.upper()
    return STATES.get(folded, "")


def zip5(zip_code: str) -> str:
    """The five-digit ZIP of a ZIP or ZIP+4; "" when it is not one, or is all zeros."""
    match = _ZIP.match(zip_code.strip())
    if not match or match.group(1) == "00000":
        return ""
    return match.group(1)


@lru_cache(maxsize=65_536)  # every address and name field of every request: the same values recur
def is_placeholder(value: str, phrases: frozenset[str]) -> bool:
    """True when a field is filled without content: a listed phrase (case, punctuation and spacing
    aside, so "N/A N/A" is "NA NA"), the same phrase repeated, or all zeros / all x's.
    These are the forms of the 2025 datafile: "Failed to Provide", "Unknown Address", "NA NA"."""
    folded = fold(value)
    if not folded:
        # Punctuation only ("-", "?", "//") is a placeholder; a truly empty field is just missing.
        return bool(value.strip())
    if folded in phrases:
        return True
    compact = folded.replace(" ", "")
    if set(compact) <= {"0"} or set(compact) <= {"x"}:
        return True
    # The same placeholder repeated ("NA NA NA", "n/a n/a"): reduce to the shortest repeating unit.
    period = (compact + compact).find(compact, 1)
    return compact[:period] in _compact(phrases)


@lru_cache(maxsize=16)
def _compact(phrases: frozenset[str]) -> frozenset[str]:
    return frozenset(p.replace(" ", "") for p in phrases if p)


@dataclass(frozen=True, slots=True)
class StreetLine:
    """What a street line turned out to be, and its USPS standard form."""

    kind: str  # "street" (house number + street name), "po_box", or "" (neither)
    line: str = ""  # e.g. "55 W OAK AVE" or "PO BOX 77"
    unit: str = (
        ""  # the unit's identifier without its designator: "APT 12", "# 12", "UNIT 12" -> "12"
    )

    @property
    def number(self) -> str:
        """The house number, or the box number of a PO box."""
        return (
            self.line.split(" ", 1)[0]
            if self.kind == "street"
            else self.line.rsplit(" ", 1)[-1]
            if self.kind
            else ""
        )

    @property
    def name(self) -> str:
        """The street without its number ("N 3RD CT"), or "PO BOX"."""
        return (
            self.line.split(" ", 1)[-1] if self.kind == "street" else "PO BOX" if self.kind else ""
        )


_DESIGNATOR = re.compile(
    r"^(?:#|(?:APT|APARTMENT|UNIT|STE|SUITE|RM|ROOM|FL|FLOOR|BLDG|LOT|SPC|SPACE|TRLR|DEPT)\b)\s*#?\s*"
)


# usaddress tags with a CRF (python-crfsuite): each token's features, and those of its neighbours,
# go to the tagger as nested dicts, which python-crfsuite flattens into attributes by turning each
# nested dict into objects and back: two thirds of a tag's time, for every address. `_crf_tags`
# hands the tagger the same attributes already flat, each token's made once (tokens recur: "ST",
# "AVE", house numbers), and leaves out those of weight 0 (a false feature), which add exactly
# nothing to a label's score. Checked, tag for tag, against usaddress.tag at the versions below
# (tests/normalize); any other version is tagged by usaddress.tag itself.
_CHECKED = {"usaddress": "0.5.16", "python-crfsuite": "0.9.12"}
_FLAT = all(version(package) == v for package, v in _CHECKED.items())


@lru_cache(maxsize=100_000)
def _token_attributes(token: str) -> tuple[list[str], list[str], list[str]]:
    """A token's CRF attributes of weight 1, as python-crfsuite names them when usaddress's
    features are the token's own, its neighbour's before it ("previous:") and after it ("next:")."""
    own = [
        f"{key}:{value}" if isinstance(value, str) else key
        for key, value in usaddress.tokenFeatures(token).items()
        if isinstance(value, str) or value
    ]
    return own, [f"previous:{a}" for a in own], [f"next:{a}" for a in own]


def _crf_tags(text: str) -> dict[str, str] | None:
    """`usaddress.tag(text)[0]`, or None where it raises RepeatedLabelError (a label in two places)."""
    if not _FLAT:
        try:
            return usaddress.tag(text)[0]
        except usaddress.RepeatedLabelError:
            return None
    tokens = usaddress.tokenize(text)
    if not tokens:
        return {}
    made = [_token_attributes(t) for t in tokens]
    last = len(tokens) - 1
    items = []
    for i, (own, _, _) in enumerate(made):
        item = list(own)
        if i > 0:
            item += made[i - 1][1]
            if i == 1:
                item.append("previous:address.start")
        if i < last:
            item += made[i + 1][2]
            if i == last - 1:
                item.append("next:address.end")
        if i == 0:
            item.append("address.start")
        if i == last:
            item.append("address.end")
        items.append(item)
    # How usaddress.tag groups the labelled tokens (no tag mapping).
    components: dict[str, list[str]] = {}
    previous, crossing = None, False
    for token, label in zip(tokens, usaddress.TAGGER.tag(items)):
        if label == "IntersectionSeparator":
            crossing = True
        if "StreetName" in label and crossing:
            label = "Second" + label
        if label == previous:
            components[label].append(token)
        elif label in components:
            return None
        else:
            components[label] = [token]
        previous = label
    return {label: " ".join(parts).strip(" ,;") for label, parts in components.items()}


# A request's rules ask for its street's kind, then identification parses it; addresses recur.
# A rules worker takes a batch 50,000 rows at a time, nearly all distinct in a national datafile:
# 65,536 lines hold a chunk's. At 200,000, four workers' caches took the 2025 batch's warm run to
# 8.09 GiB at its peak, against 7.66 at this size (benchmarks/pipeline_2025.py --steps warm).
LINES_CACHED = 65_536


@lru_cache(maxsize=LINES_CACHED)
def _tag(street: str, unit: str) -> tuple[str, dict[str, str]] | None:
    """The street line and unit as usaddress tags them (after scourgify's pre-cleaning), or None
    when they set forth no street at all."""
    street, unit = ascii_text(street), ascii_text(unit)  # "12 Łódź St" is "12 Lodz St"
    text = " ".join(part for part in (street.strip(), unit.strip()) if part)
    if not text or not re.search(r"[^\W\d_]", street):
        # A street line with no word in it ("31") sets forth no street, whatever the unit field
        # says: the tagger would take the unit's words ("basement apt") for the street's name.
        return None
    try:
        text = pre_clean_addr_str(text)
        tags = _crf_tags(text)
    except (AddressNormalizationError, ValueError):
        return None
    return None if tags is None else (text, tags)


def _box(tags: dict[str, str]) -> str:
    return re.sub(r"[^A-Z0-9]", "", tags["USPSBoxID"].upper())


def street_kind(street: str, unit: str = "") -> str:
    """`parse_street(street, unit).kind` from the tags alone, without standardising: what the
    address rules need of every request, where only identification needs the standard form."""
    tagged = _tag(street, unit)
    if tagged is None:
        return ""
    tags = tagged[1]
    if tags.get("USPSBoxID"):
        return "po_box" if _box(tags) else ""
    return "street" if tags.get("AddressNumber") and tags.get("StreetName") else ""


@lru_cache(maxsize=LINES_CACHED)
def parse_street(street: str, unit: str = "") -> StreetLine:
    """Tag a street line once with usaddress, then standardise the tagged parts with scourgify's
    Publication 28 rules (directionals, street types, numbered streets, unit designators)."""
    tagged = _tag(street, unit)
    if tagged is None:
        return StreetLine("")
    text, tags = tagged
    if tags.get("USPSBoxID"):
        box = _box(tags)
        return StreetLine("po_box", f"PO BOX {box}") if box else StreetLine("")
    if not (tags.get("AddressNumber") and tags.get("StreetName")):
        return StreetLine("")
    # scourgify rewrites the dict it is given, even when it then fails (the fallback below reads
    # what it rewrote): a copy, so that the cached tags stay as usaddress made them.
    tags = dict(tags)
    try:
        tags = normalize_address_components(handle_abnormal_occupancy(tags, text))
        line = get_normalized_line_segment(tags, LINE1_USADDRESS_LABELS) or ""
        second = get_normalized_line_segment(tags, LINE2_USADDRESS_LABELS) or ""
    except (AddressNormalizationError, ValueError, TypeError, KeyError):
        line = " ".join(fold(v).upper() for k, v in tags.items() if not k.startswith("Occupancy"))
        second = fold(tags.get("OccupancyIdentifier", "")).upper()
    unit_id = re.sub(r"[^A-Z0-9]", "", _DESIGNATOR.sub("", second.upper()))
    return StreetLine("street", re.sub(r"\s+", " ", line.upper()).strip(), unit_id)


_TYPE_ABBREVIATIONS = frozenset(STREET_TYPE_ABBREVIATIONS.values())
# Each USPS abbreviation spelled out: the longest of the spellings scourgify maps to it (ST -> STREET).
_SPELLED_OUT = {
    abbr: max(
        (k for k, v in STREET_TYPE_ABBREVIATIONS.items() if v == abbr and k.isalpha()),
        key=len,
        default=abbr,
    )
    for abbr in _TYPE_ABBREVIATIONS
}
# Longhand street types long enough that a typing error in one is still recognisable as that type.
_LONGHAND_TYPES = {
    k: v for k, v in STREET_TYPE_ABBREVIATIONS.items() if len(k) >= 5 and k.isalpha()
}


@lru_cache(maxsize=200_000)
def street_parts(name: str) -> tuple[str, str]:
    """A standardised street name (`StreetLine.name`) as (core, USPS type): "PRIDHAM ST" -> ("PRIDHAM",
    "ST"). A type a clerk mistyped ("LAMBRIGG TREET", "STURT AVNEUE") or glued to the name
    ("PRIDHAMSTREET") is read as the type it is a typing error of, so that the street itself can be
    compared; scourgify standardises only types spelled right. No type: (name, "")."""
    words = name.split()
    if not words or name == "PO BOX":
        return name, ""
    last = words[-1]
    if len(words) > 1 and last in _TYPE_ABBREVIATIONS:
        return " ".join(words[:-1]), last
    if len(words) > 1 and len(last) >= 4:
        near = {
            abbr
            for longhand, abbr in _LONGHAND_TYPES.items()
            if damerau_levenshtein_distance(last, longhand) <= 1
        }
        if len(near) == 1:
            return " ".join(words[:-1]), near.pop()
    for longhand, abbr in _LONGHAND_TYPES.items():
        if last.endswith(longhand) and len(last) - len(longhand) >= 3:
            return " ".join([*words[:-1], last[: -len(longhand)]]), abbr
    return name, ""


@lru_cache(maxsize=200_000)
def street_letters(name: str) -> str:
    """A standardised street name spelled out, letters and digits only: "PRIDHAM ST" -> "PRIDHAMSTREET".
    A clerk's lost or added space, a mistyped type ("PRIDHAMSTRET") are then a letter or two away."""
    core, kind = street_parts(name)
    return re.sub(r"[^A-Z0-9]", "", f"{core}{_SPELLED_OUT.get(kind, kind)}".upper())
