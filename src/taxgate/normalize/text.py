"""Free-text normalisation used to compare values a person typed."""

from __future__ import annotations

import re
import unicodedata

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def fold(text: str) -> str:
    """Lower-case, strip accents, turn every run of punctuation or space into one space."""
    if text.isascii():
        return _NON_ALNUM.sub(" ", text.lower()).strip()
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_only = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NON_ALNUM.sub(" ", ascii_only.lower()).strip()


def split_list(value: str) -> list[str]:
    """A `;`-separated field (tax periods, items, statutes) as its non-empty parts."""
    return [part.strip() for part in value.split(";") if part.strip()]
