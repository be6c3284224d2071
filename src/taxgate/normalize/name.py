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


# Rule 2 is written once, in SQL, so that identification decides a million requests inside the
# database; `names_agree` below evaluates the same text for Python callers. Arguments are token
# lists (`name_tokens`); a nickname agrees only through the policy's table, built into tg_nick.
_RULE_2_MACROS = (
    # A compound given name with its first part alone ("maria guadalupe" / "maria") agrees.
    """CREATE OR REPLACE MACRO tg_given_agree(a, b) AS len(a) > 0 AND len(b) > 0 AND (
           (len(a) <= len(b) AND b[1:len(a)] = a) OR (len(b) < len(a) AND a[1:len(b)] = b)
           OR (len(a) = 1 AND len(b) = 1 AND tg_nick(a[1]) = tg_nick(b[1])))""",
    # Either order, and one surname may be missing: one side's surnames are all among the other's.
    """CREATE OR REPLACE MACRO tg_surnames_agree(a, b) AS len(a) > 0 AND len(b) > 0
           AND (list_has_all(b, a) OR list_has_all(a, b))""",
    # `text` is space-joined name_tokens (one space between tokens), so a split is enough.
    """CREATE OR REPLACE MACRO tg_tokens(text) AS CASE WHEN coalesce(text, '') = '' THEN [] ELSE string_split(text, ' ') END""",
    # Arguments are token lists: tg_tokens(the model's `given` / `surname` column).
    """CREATE OR REPLACE MACRO tg_names_agree(given_a, surname_a, given_b, surname_b) AS
           (tg_given_agree(given_a, given_b) AND tg_surnames_agree(surname_a, surname_b))
           -- written surname-first on one side ("Nguyen" / "Thi Lan" against "Thi Lan" / "Nguyen")
           OR (tg_given_agree(given_a, surname_b) AND tg_surnames_agree(surname_a, given_b))
           -- the whole name in one field on one side: all tokens in order
           OR (len(given_a || surname_a) > 0 AND given_a || surname_a = given_b || surname_b)""",
    # A typing error: equal, or one edit apart (two for words of six letters or more): a letter
    # inserted, dropped or wrong, or two adjacent letters swapped. identify.decision also reads it
    # for streets and cities.
    """CREATE OR REPLACE MACRO tg_typo(a, b) AS a = b OR (len(a) >= 3 AND len(b) >= 3
           AND damerau_levenshtein(a, b) <= CASE WHEN least(len(a), len(b)) >= 6 THEN 2 ELSE 1 END)""",
    # Near but not agreeing: each part agrees, or is a typing error away, as a whole or token by
    # token, in either order of given and family name. Not agreement: the decision asks for more
    # beside it.
    """CREATE OR REPLACE MACRO tg_part_close(a, b) AS len(a) > 0 AND len(b) > 0 AND (
           tg_typo(array_to_string(a, ''), array_to_string(b, ''))  -- a space put in or left out
           OR (len(a) <= len(b) AND list_bool_and(list_transform(a, lambda x: list_bool_or(list_transform(b, lambda y: tg_typo(x, y))))))
           OR (len(b) < len(a) AND list_bool_and(list_transform(b, lambda y: list_bool_or(list_transform(a, lambda x: tg_typo(x, y)))))))""",
    """CREATE OR REPLACE MACRO tg_names_close(given_a, surname_a, given_b, surname_b) AS
           (tg_part_close(given_a, given_b) AND tg_part_close(surname_a, surname_b))
           OR (tg_part_close(given_a, surname_b) AND tg_part_close(surname_a, given_b))""",
)


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def define_names_agree(con, nicknames: dict[str, str] | None = None) -> None:
    """Define `tg_names_agree(given_a, surname_a, given_b, surname_b)` on a DuckDB connection, over
    token lists: `tg_tokens(text)` splits space-joined `name_tokens` (the model's `given`, `surname`)."""
    pairs = ", ".join(f"{_sql_literal(k)}: {_sql_literal(v)}" for k, v in sorted((nicknames or {}).items()))
    con.execute(f"CREATE OR REPLACE MACRO tg_nick(t) AS coalesce(MAP {{{pairs}}}[t], t)" if pairs
                else "CREATE OR REPLACE MACRO tg_nick(t) AS t")
    for macro in _RULE_2_MACROS:
        con.execute(macro)


@lru_cache(maxsize=8)
def _rule_2(nicknames: tuple[tuple[str, str], ...]):
    import duckdb

    con = duckdb.connect()
    define_names_agree(con, dict(nicknames))
    return con


def names_agree(
    given_a: str, surname_a: str, given_b: str, surname_b: str, nicknames: dict[str, str] | None = None
) -> bool:
    """Rule 2: do two (given name, surname) pairs name the same person after normalising?"""
    names = [" ".join(name_tokens(n)) for n in (given_a, surname_a, given_b, surname_b)]
    con = _rule_2(tuple(sorted((nicknames or {}).items())))
    return bool(con.execute("SELECT tg_names_agree(tg_tokens(?), tg_tokens(?), tg_tokens(?), tg_tokens(?))", names).fetchall()[0][0])
