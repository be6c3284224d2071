"""Personal names: folded tokens, suffixes, and when two names agree (docs/DESIGN.md "Positive
identification", rule 2).

Names agree after normalising case, accents, hyphens and the particles de / del / de la / y; the
paternal and maternal surnames may come in either order and one of them may be missing; a name
written surname-first agrees with the same name written given-first; a nickname agrees with its
given name only where the policy lists it. A spelling difference is not agreement: the names are
"close" (`tg_names_close`), which identify.decision accepts only beside the same date of birth.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache

from taxgate.normalize.text import fold

# Particles that join Spanish and Portuguese surnames: "de la Cruz" and "Cruz" are one surname.
PARTICLES = frozenset({"de", "del", "la", "las", "los", "y", "da", "das", "do", "dos", "e", "dela"})
SUFFIXES = {
    "jr": "jr",
    "junior": "jr",
    "sr": "sr",
    "senior": "sr",
    "ii": "ii",
    "2nd": "ii",
    "iii": "iii",
    "3rd": "iii",
    "iv": "iv",
    "4th": "iv",
    "v": "v",
}


@lru_cache(maxsize=500_000)
def name_tokens(name: str) -> tuple[str, ...]:
    """Folded tokens of a name without particles: "María de la Cruz-Núñez" -> (maria, cruz, nunez)."""
    return tuple(t for t in fold(name).split() if t not in PARTICLES)


def suffix_code(suffix: str) -> str:
    """ "Jr." -> "jr", "III" -> "iii"; anything else is not a generational suffix and reads as ""."""
    return SUFFIXES.get(fold(suffix).replace(" ", ""), "")


# Rule 2 is written once, in SQL, so that identification decides a million requests inside the
# database; `names_agree` below evaluates the same text for Python callers. Arguments are token
# lists (`name_tokens`). A nickname agrees only through the policy's table (`tg_nickname`): where
# a one-word given name is listed as the other's nickname, the caller gives both sides the same
# given name before asking (identify.decision's `tokens`), so each macro stays a pure function.
RULE_2_MACROS = (
    # A compound given name with its first part alone ("maria guadalupe" / "maria") agrees.
    """CREATE OR REPLACE MACRO tg_given_agree(a, b) AS array_length(a) > 0 AND array_length(b) > 0 AND (
           (array_length(a) <= array_length(b) AND b[1:array_length(a)] = a)
           OR (array_length(b) < array_length(a) AND a[1:array_length(b)] = b))""",
    # Either order, and one surname may be missing: one side's surnames are all among the other's.
    """CREATE OR REPLACE MACRO tg_surnames_agree(a, b) AS array_length(a) > 0 AND array_length(b) > 0
           AND (list_has_all(b, a) OR list_has_all(a, b))""",
    # `text` is space-joined name_tokens (one space between tokens), so a split is enough.
    """CREATE OR REPLACE MACRO tg_tokens(text) AS
           CASE WHEN coalesce(text, '') = '' THEN [] ELSE string_split(text, ' ') END""",
    # Arguments are token lists: tg_tokens(the model's `given` / `surname` column). CASE, not OR:
    # DuckDB evaluates every operand of an OR, but only the rows a WHEN leaves to the next arm.
    """CREATE OR REPLACE MACRO tg_names_agree(given_a, surname_a, given_b, surname_b) AS CASE
           WHEN tg_given_agree(given_a, given_b) AND tg_surnames_agree(surname_a, surname_b) THEN true
           -- written surname-first on one side ("Nguyen" / "Thi Lan" against "Thi Lan" / "Nguyen")
           WHEN tg_given_agree(given_a, surname_b) AND tg_surnames_agree(surname_a, given_b) THEN true
           -- the whole name in one field on one side: all tokens in order
           ELSE array_length(list_concat(given_a, surname_a)) > 0
               AND list_concat(given_a, surname_a) = list_concat(given_b, surname_b) END""",
    # A typing error: equal, or one edit apart (two for words of six letters or more): a letter
    # inserted, dropped or wrong, or two adjacent letters swapped. identify.decision also reads it
    # for streets and cities. Lengths more than two apart are never within two edits.
    """CREATE OR REPLACE MACRO tg_typo(a, b) AS CASE WHEN a = b THEN true
           WHEN length(a) < 3 OR length(b) < 3 OR abs(length(a) - length(b)) > 2 THEN false
           ELSE damerau_levenshtein(a, b) <= CASE WHEN least(length(a), length(b)) >= 6 THEN 2 ELSE 1 END END""",
    # Near but not agreeing: each part agrees, or is a typing error away, as a whole or token by
    # token, in either order of given and family name. Not agreement: the decision asks for more
    # beside it. A part is its token list and the tokens joined without spaces (`*_text`: a space
    # put in or left out), passed in as columns because a macro repeats its arguments and each
    # copy is planned again. Token by token (every token of the shorter list a typing error from
    # one of the longer's) only where a side has more than one: the lambdas are the costly part.
    """CREATE OR REPLACE MACRO tg_part_close(a, a_text, b, b_text) AS CASE
           WHEN array_length(a) = 0 OR array_length(b) = 0 THEN false
           WHEN tg_typo(a_text, b_text) THEN true
           WHEN array_length(a) = 1 AND array_length(b) = 1 THEN false
           ELSE list_bool_and(list_transform(CASE WHEN array_length(a) <= array_length(b) THEN a ELSE b END,
                    lambda x: list_bool_or(list_transform(CASE WHEN array_length(a) <=
                        array_length(b) THEN b ELSE a END,
                                                          lambda y: tg_typo(x, y))))) END""",
    """CREATE OR REPLACE MACRO tg_names_close(given_a, given_a_text, surname_a, surname_a_text,
                                              given_b, given_b_text, surname_b, surname_b_text) AS CASE
           WHEN CASE WHEN tg_part_close(given_a, given_a_text, given_b, given_b_text)
                     THEN tg_part_close(surname_a, surname_a_text, surname_b, surname_b_text) ELSE false END THEN true
           -- written surname-first on one side
           WHEN tg_part_close(given_a, given_a_text, surname_b, surname_b_text)
                THEN tg_part_close(surname_a, surname_a_text, given_b, given_b_text)
           ELSE false END""",
)


def nickname_pairs(
    nicknames: Mapping[str, str] | Iterable[tuple[str, str]] | None,
) -> frozenset[tuple[str, str]]:
    """(name, name) pairs that agree as nickname and name, both ways round: only a nickname and the
    name it stands for, never two nicknames of one name ("Ron" and "Erin" are both Aaron's)."""
    pairs = nicknames.items() if isinstance(nicknames, Mapping) else (nicknames or ())
    return frozenset(
        p for a, b in pairs for p in ((fold(a), fold(b)), (fold(b), fold(a))) if p[0] != p[1]
    )


def nickname_table(nicknames: Mapping[str, str] | Iterable[tuple[str, str]] | None):
    """The policy's nickname pairs, both ways round, as the Arrow table `tg_nickname(a, b)`."""
    import pyarrow as pa

    pairs = sorted(nickname_pairs(nicknames))
    return pa.table(
        {"a": [a for a, _ in pairs], "b": [b for _, b in pairs]},
        schema=pa.schema([("a", pa.string()), ("b", pa.string())]),
    )


def define_names_agree(
    con, nicknames: Mapping[str, str] | Iterable[tuple[str, str]] | None = None
) -> None:
    """Define `tg_names_agree(given_a, surname_a, given_b, surname_b)` and its kin on a DuckDB
    connection, over token lists: `tg_tokens(text)` splits space-joined `name_tokens` (the model's
    `given`, `surname`). Table `tg_nickname(a, b)` holds the policy's nickname pairs both ways round."""
    con.register("tg_nickname_rows", nickname_table(nicknames))
    con.execute("CREATE OR REPLACE TEMP TABLE tg_nickname AS SELECT * FROM tg_nickname_rows")
    con.unregister("tg_nickname_rows")
    for macro in RULE_2_MACROS:
        con.execute(macro)


@lru_cache(maxsize=1)  # one connection for Python callers
def _rule_2():
    import duckdb

    con = duckdb.connect()
    define_names_agree(con)
    return con


def names_agree(
    given_a: str,
    surname_a: str,
    given_b: str,
    surname_b: str,
    nicknames: Mapping[str, str] | None = None,
) -> bool:
    """Rule 2: do two (given name, surname) pairs name the same person after normalising?"""
    names = [list(name_tokens(n)) for n in (given_a, surname_a, given_b, surname_b)]
    if (
        len(names[0]) == 1
        and len(names[2]) == 1
        and (names[0][0], names[2][0]) in nickname_pairs(nicknames)
    ):
        names[2] = names[
            0
        ]  # as identify.decision does: a listed nickname is the name it stands for
    texts = [" ".join(tokens) for tokens in names]
    return bool(
        _rule_2()
        .execute(
            "SELECT tg_names_agree(tg_tokens(?), tg_tokens(?), tg_tokens(?), tg_tokens(?))", texts
        )
        .fetchall()[0][0]
    )
