"""Free-text normalisation used to compare values a person typed."""

from __future__ import annotations

import re
import unicodedata

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def fold(text: str) -> str:
    """Lower-case, strip accents, turn every run of punctuation or space into one space."""
    if text.isascii():
        return _NON_ALNUM.sub(" ", text.lower()).strip()
    # Decompose, then drop what is not ASCII: accents go, letters stay ("Núñez" -> "nunez").
    ascii_only = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _NON_ALNUM.sub(" ", ascii_only.lower()).strip()


def digits(value: str | None) -> str:
    """Only the digits: "123-45-6789" -> "123456789" (TINs, ZIPs)."""
    return "".join(c for c in value or "" if c.isdigit())


def split_list(value: str) -> list[str]:
    """A `;`-separated field (tax periods, items, statutes) as its non-empty parts."""
    return [part.strip() for part in value.split(";") if part.strip()]
