"""Every rule of a rule set on many requests at once, each rule once per distinct value of what it reads.

A batch repeats itself: its statute, tax periods, reason text, officer and items recur on most rows,
and a rule's answer depends on nothing but the fields and figures it declares (`Rule.reads`,
`Rule.figures`) and the batch's context. So a rule is asked once per distinct value of those, and
its answer is spread over the rows that carry it. A rule is handed only what it declared: reading
any other field raises `UndeclaredRead`, so an answer can never come from a value that was not
part of the key it is kept under.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Mapping, Sequence
from itertools import compress, repeat

import numpy as np

from taxgate.domain import ReasonCode
from taxgate.rules.registry import Context, Rule

# A code's bit in a row's mask; the bits in this order are docs/DESIGN.md's table order.
CODE_ORDER = {code: i for i, code in enumerate(ReasonCode)}
assert len(CODE_ORDER) < 63, "a row's codes are kept as the bits of one int64"
_MALFORMED = 1 << CODE_ORDER[ReasonCode.MALFORMED_ROW]


class UndeclaredRead(RuntimeError):
    """A rule read a field or figure it did not declare (a defect of the rule, never of the input)."""


class _Undeclared:
    """Refuses, loudly, a read of a name that is not among the declared ones (an AttributeError
    could be swallowed by a `getattr` with a default, and the rule answer from nothing)."""

    __slots__ = ()

    def __getattr__(self, name: str):
        raise UndeclaredRead(
            f"rule(s) {self._rules} read {name!r} without declaring it"  # type: ignore[attr-defined]
        )


def _declared(names: tuple[str, ...], rules: list[Rule]) -> type:
    """A row type holding `names` alone: read as fast as any attribute, anything else refused."""
    row = namedtuple("Declared", names)  # noqa: PYI024  (made per group of rules, at run time)
    labels = ", ".join(f"{r.check.__qualname__} ({r.code.value})" for r in rules)
    return type("Declared", (_Undeclared, row), {"__slots__": (), "_rules": labels})


def judge_rows(
    rules: Sequence[Rule],
    columns: Mapping[str, Sequence],
    figures: Mapping[str, Sequence],
    ctx: Context,
) -> list[tuple[ReasonCode, ...]]:
    """Each row's codes: those of every rule that fails on it, in the table's order, without
    repeats; a row that could not be parsed (`parse_error`) is MALFORMED_ROW alone (its fields are
    not the requester's words, so nothing else can be said about them).

    `columns` are the requests' fields by name, a sequence each, in row order, `parse_error` among
    them; `figures` the rows' `RowStats` fields likewise. `ctx` gives the batch's context; its
    `stats` is replaced, rule by rule, by what each rule declared."""
    malformed = [bool(error) for error in columns["parse_error"]]
    well_formed = [not m for m in malformed]
    rows = len(malformed)
    masks = np.zeros(rows, dtype=np.int64)
    # Rules that read the same names are judged together, key by key: they share the key and any
    # work the key's value costs (the address rules each assess the one address).
    groups: dict[tuple[str, ...], list[Rule]] = {}
    for rule in rules:
        groups.setdefault((*rule.reads, *rule.figures), []).append(rule)
    for names, group in groups.items():
        values = [columns[n] if n in columns else figures[n] for n in names]
        # one name: its values are the keys themselves (no tuple a row)
        keys = values[0] if len(values) == 1 else list(zip(*values)) or [()] * rows
        # What each rule of the group is handed: the request's declared fields (and `malformed`,
        # False: a malformed row is never judged by them), and the declared figures as ctx.stats.
        reads, figured = group[0].reads, group[0].figures
        request_of, stats_of = _declared((*reads, "malformed"), group), _declared(figured, group)
        checks = [(rule.check, 1 << CODE_ORDER[rule.code]) for rule in group]
        single, cut, make = len(names) == 1, len(reads), tuple.__new__
        fails = {}
        for key in set(compress(keys, well_formed)):
            named = (key,) if single else key
            request = make(request_of, (*named[:cut], False))
            ctx.stats = make(stats_of, named[cut:])
            failed = 0
            for check, bit in checks:
                if check(request, ctx):
                    failed |= bit
            if failed:
                fails[key] = failed
        if fails:
            masks |= np.fromiter(map(fails.get, keys, repeat(0)), dtype=np.int64, count=rows)
    masks[np.array(malformed, dtype=bool)] = _MALFORMED
    codes_of = {
        mask: tuple(code for code, i in CODE_ORDER.items() if mask >> i & 1)
        for mask in set(masks.tolist())
    }
    return [codes_of[mask] for mask in masks.tolist()]
