"""Free-text normalisation used to compare values a person typed."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


# Latin letters Unicode does not decompose into a letter and an accent, as they are written in ASCII.
_UNDECOMPOSED = str.maketrans(
    {
        "ß": "ss",
        "ẞ": "SS",
        "Æ": "AE",
        "æ": "ae",
        "Œ": "OE",
        "œ": "oe",
        "Ø": "O",
        "ø": "o",
        "Ł": "L",
        "ł": "l",
        "Đ": "D",
        "đ": "d",
        "Ð": "D",
        "ð": "d",
        "Þ": "TH",
        "þ": "th",
        "ı": "i",
        "Ħ": "H",
        "ħ": "h",
        "Ŧ": "T",
        "ŧ": "t",
    }
)


def ascii_text(text: str) -> str:
    """Text in ASCII, case and punctuation kept: accents dropped ("Núñez" -> "Nunez"), the letters
    that carry no separable accent spelled as in ASCII ("Łódź" -> "Lodz", "Straße" -> "Strasse"),
    anything else not ASCII dropped. What is compared is then ASCII alone, where a character is a
    byte: DuckDB counts a string's edits in bytes, Spark in characters, and the two must agree."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text.translate(_UNDECOMPOSED))
    return decomposed.encode("ascii", "ignore").decode("ascii")


@lru_cache(maxsize=65_536)  # a dozen fields of every request: names, states, officers, items recur
def fold(text: str) -> str:
    """Lower-case, in ASCII (`ascii_text`), every run of punctuation or space turned into one space."""
    return _NON_ALNUM.sub(" ", ascii_text(text).lower()).strip()


_ALNUM = re.compile(r"[A-Za-z0-9]")


def is_blank(text: str) -> bool:
    """`fold(text) == ""` without folding: no letter or digit in the text once it is in ASCII. The
    rules ask it of unique values on every request (case numbers, reasons), which no cache holds."""
    if _ALNUM.search(text):  # an ASCII letter or digit stays one in ASCII
        return False
    return text.isascii() or _ALNUM.search(ascii_text(text)) is None


def digits(value: str | None) -> str:
    """Only the digits: "123-45-6789" -> "123456789" (TINs, ZIPs)."""
    return "".join(c for c in value or "" if c.isdigit())


def split_list(value: str) -> list[str]:
    """A `;`-separated field (tax periods, items, statutes) as its non-empty parts."""
    return [part.strip() for part in value.split(";") if part.strip()]
