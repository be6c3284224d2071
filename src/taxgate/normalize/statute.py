"""Reading statute citations the way requesters write them.

"8 USC 1253(a)(1)", "8 U.S.C. § 1253(a)(1)" and "Title 8, Section 1253(a)(1)" are one citation.
Anything that does not read as title + section is not a citation; we never guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_CITATION = re.compile(
    r"""^\s*
    (?:TITLE\s*)?(?P<title>\d{1,2})\s*,?\s*
    (?P<code>U\s*S\s*C(?:\s*A)?|UNITED\s+STATES\s+CODE)?\s*,?\s*
    (?:(?:SECTIONS?|SECS?|SS|S)\s*)?
    (?P<section>\d{1,5}[A-Z]?(?:-\d+)?)\s*
    (?P<subs>(?:\(\s*[A-Z0-9]{1,4}\s*\)\s*)*)
    $""",
    re.VERBOSE,
)
_SUBSECTION = re.compile(r"\(\s*([A-Z0-9]{1,4})\s*\)")


@dataclass(frozen=True, slots=True)
class Citation:
    title: int
    section: str
    subsections: tuple[str, ...] = ()

    def __str__(self) -> str:
        subs = "".join(f"({s})" for s in self.subsections)
        return f"{self.title} U.S.C. § {self.section}{subs}"

    def within(self, other: Citation) -> bool:
        """True when this citation is `other` or one of its subsections."""
        return (
            self.title == other.title
            and self.section == other.section
            and self.subsections[: len(other.subsections)] == other.subsections
        )


@lru_cache(maxsize=4096)
def parse_citation(text: str) -> Citation | None:
    """Parse one citation; None when it does not read as `TITLE U.S.C. § SECTION(sub)...`."""
    cleaned = text.upper().replace("§", " S ").replace(".", " ").replace("—", "-")
    cleaned = re.sub(r"\s+", " ", cleaned).strip()
    match = _CITATION.match(cleaned)
    if not match:
        return None
    # A bare "1326" or "8 1326" is not a citation: it needs "U.S.C." or "Title".
    if not match.group("code") and not cleaned.startswith("TITLE"):
        return None
    section = match.group("section").lower()
    # Subsection letters are compared case-blind: requesters write (a) and (A) interchangeably.
    subs = tuple(s.lower() for s in _SUBSECTION.findall(match.group("subs")))
    return Citation(int(match.group("title")), section, subs)
