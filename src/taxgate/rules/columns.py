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
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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


Column = pa.Array | pa.ChunkedArray | np.ndarray | Sequence


def _encoded(column: Column) -> tuple[np.ndarray, list]:
    """(each row's index into the distinct values, the distinct values as Python objects)."""
    if not isinstance(column, pa.Array | pa.ChunkedArray):
        column = pa.array(column)
    encoded = pc.dictionary_encode(column, null_encoding="encode")
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    return encoded.indices.to_numpy(zero_copy_only=False), encoded.dictionary.to_pylist()


def _keys(indexes: list[np.ndarray], rows: int) -> np.ndarray:
    """One key a row for several columns' indexes: equal exactly where every index is equal."""
    key = np.zeros(rows, dtype=np.int64)
    for index in indexes:
        # renumbered densely before each step, so that the product stays below rows × distinct
        _, key = np.unique(key * (int(index.max(initial=0)) + 1) + index, return_inverse=True)
    return key.reshape(-1)


def judge_masks(
    rules: Sequence[Rule],
    columns: Mapping[str, Column],
    figures: Mapping[str, Column],
    ctx: Context,
) -> np.ndarray:
    """Each row's codes as the bits of one int64 (`CODE_ORDER`): those of every rule that fails on
    it; a row that could not be parsed (`parse_error`) is MALFORMED_ROW alone (its fields are not
    the requester's words, so nothing else can be said about them).

    `columns` are the requests' fields by name, a column each (Arrow, NumPy or a list), in row
    order, `parse_error` among them; `figures` the rows' `RowStats` fields likewise. `ctx` gives the
    batch's context; its `stats` is replaced, rule by rule, by what each rule declared. No value
    is made a Python object but the distinct ones, and no rule asked but of them."""
    encoded = {}  # name: (each row's index, the distinct values)

    def of(name: str) -> tuple[np.ndarray, list]:
        if name not in encoded:
            encoded[name] = _encoded(columns[name] if name in columns else figures[name])
        return encoded[name]

    errors, error_values = of("parse_error")
    for name in {n for rule in rules for n in (*rule.reads, *rule.figures)}:
        if len(of(name)[0]) != len(errors):  # a short column would be spread over every row
            raise ValueError(f"column {name!r} has {len(of(name)[0])} rows, not {len(errors)}")
    malformed = np.array([bool(e) for e in error_values], dtype=bool)[errors]
    well_formed = np.flatnonzero(~malformed)
    masks = np.zeros(len(errors), dtype=np.int64)
    # Rules that read the same names are judged together, key by key: they share the key and any
    # work the key's value costs (the address rules each assess the one address).
    groups: dict[tuple[str, ...], list[Rule]] = {}
    for rule in rules:
        groups.setdefault((*rule.reads, *rule.figures), []).append(rule)
    given = ctx.stats  # the caller's, put back however the rules end
    try:
        for names, group in groups.items():
            _judge_group(names, group, of, well_formed, masks, ctx)
    finally:
        ctx.stats = given
    masks[malformed] = _MALFORMED
    return masks


def _judge_group(
    names: tuple[str, ...],
    group: list[Rule],
    of: Callable[[str], tuple[np.ndarray, list]],
    well_formed: np.ndarray,
    masks: np.ndarray,
    ctx: Context,
) -> None:
    """One group of rules that read the same names: each rule asked once per distinct key among
    the well-formed rows, its bit ORed into `masks` of every row with that key."""
    keys = _keys([of(n)[0] for n in names], len(masks))
    # one row of the well-formed for each distinct key: what every row with that key is told
    present, first = np.unique(keys[well_formed], return_index=True)
    # What each rule of the group is handed: the request's declared fields (and `malformed`,
    # False: a malformed row is never judged by them), and the declared figures as ctx.stats.
    reads = group[0].reads
    request_of, stats_of = (
        _declared((*reads, "malformed"), group),
        _declared(group[0].figures, group),
    )
    checks = [(rule.check, 1 << CODE_ORDER[rule.code]) for rule in group]
    picked = [(of(n)[0][well_formed[first]].tolist(), of(n)[1]) for n in names]
    failed_by_key = np.zeros(int(keys.max(initial=0)) + 1, dtype=np.int64)
    make = tuple.__new__
    for number, key in enumerate(present.tolist()):
        named = [values[rows[number]] for rows, values in picked]
        request = make(request_of, (*named[: len(reads)], False))
        ctx.stats = make(stats_of, named[len(reads) :])
        failed = 0
        for check, bit in checks:
            if check(request, ctx):
                failed |= bit
        failed_by_key[key] = failed
    masks |= failed_by_key[keys]


def codes_of(mask: int) -> tuple[ReasonCode, ...]:
    """The codes whose bits a mask holds, in the table's order."""
    return tuple(code for code, i in CODE_ORDER.items() if mask >> i & 1)


def judge_rows(
    rules: Sequence[Rule],
    columns: Mapping[str, Column],
    figures: Mapping[str, Column],
    ctx: Context,
) -> list[tuple[ReasonCode, ...]]:
    """`judge_masks`, each row's codes as a tuple, in the table's order."""
    masks = judge_masks(rules, columns, figures, ctx).tolist()
    told = {mask: codes_of(mask) for mask in set(masks)}
    return [told[mask] for mask in masks]
