"""Personal names: the folded forms that identification compares.

This is the interim normaliser (case, accents, hyphens, Spanish particles). The full treatment of
surname order, dropped maternal surnames and nicknames belongs to identification (issue 3).
"""

from __future__ import annotations

from functools import lru_cache

from taxgate.normalize.text import fold

# Particles that join Spanish and Portuguese surnames: "de la Cruz" and "Cruz" are one surname.
PARTICLES = frozenset({"de", "del", "la", "las", "los", "y", "da", "das", "do", "dos", "e"})


@lru_cache(maxsize=500_000)
def name_tokens(name: str) -> tuple[str, ...]:
    """Folded tokens of a name without particles: "María de la Cruz-Núñez" -> (maria, cruz, nunez)."""
    return tuple(t for t in fold(name).split() if t not in PARTICLES)


def name_key(name: str) -> str:
    return " ".join(name_tokens(name))
