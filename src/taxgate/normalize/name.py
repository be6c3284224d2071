"""Personal names: folded tokens, suffixes, and when two names agree (DESIGN.md "Positive
identification", rule 2).

Names agree after normalising case, accents, hyphens and the particles de / del / de la / y; the
paternal and maternal surnames may come in either order and one of them may be missing; a name
written surname-first agrees with the same name written given-first; a nickname agrees with its
given name only where the policy lists it. A spelling difference is not agreement: it may score
high in the probabilistic model, but then a person decides (REVIEW).
"""

from __future__ import annotations

from functools import lru_cache

from taxgate.normalize.text import fold

# Particles that join Spanish and Portuguese surnames: "de la Cruz" and "Cruz" are one surname.
PARTICLES = frozenset({"de", "del", "la", "las", "los", "y", "da", "das", "do", "dos", "e", "dela"})
SUFFIXES = {"jr": "jr", "junior": "jr", "sr": "sr", "senior": "sr", "ii": "ii", "2nd": "ii",
            "iii": "iii", "3rd": "iii", "iv": "iv", "4th": "iv", "v": "v"}


@lru_cache(maxsize=500_000)
def name_tokens(name: str) -> tuple[str, ...]:
    """Folded tokens of a name without particles: "María de la Cruz-Núñez" -> (maria, cruz, nunez)."""
    return tuple(t for t in fold(name).split() if t not in PARTICLES)


def suffix_code(suffix: str) -> str:
    """"Jr." -> "jr", "III" -> "iii"; anything else is not a generational suffix and reads as ""."""
    return SUFFIXES.get(fold(suffix).replace(" ", ""), "")


def _given_agree(a: tuple[str, ...], b: tuple[str, ...], nicknames: dict[str, str]) -> bool:
    if not a or not b:
        return False
    if a == b:
        return True
    # A compound given name with its first part alone ("maria guadalupe" / "maria") agrees.
    shorter, longer = sorted((a, b), key=len)
    if longer[: len(shorter)] == shorter:
        return True
    canon = lambda t: tuple(nicknames.get(x, x) for x in t)  # noqa: E731
    return canon(a)[:1] == canon(b)[:1] and len(a) == len(b) == 1


def _surnames_agree(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    # Either order, and one surname may be missing: one side's surnames are all among the other's.
    return bool(a) and bool(b) and (set(a) <= set(b) or set(b) <= set(a))


def names_agree(
    given_a: str, surname_a: str, given_b: str, surname_b: str, nicknames: dict[str, str] | None = None
) -> bool:
    """Rule 2: do two (given name, surname) pairs name the same person after normalising?"""
    nicknames = nicknames or {}
    ga, sa, gb, sb = name_tokens(given_a), name_tokens(surname_a), name_tokens(given_b), name_tokens(surname_b)
    if _given_agree(ga, gb, nicknames) and _surnames_agree(sa, sb):
        return True
    # Written surname-first on one side ("Nguyen" / "Thi Lan" against "Thi Lan" / "Nguyen").
    if _given_agree(ga, sb, nicknames) and _surnames_agree(sa, gb):
        return True
    # The whole name in one field on one side: compare all tokens in order.
    return bool(ga + sa) and ga + sa == gb + sb
