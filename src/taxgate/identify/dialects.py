"""The decision written once, in DuckDB's SQL, run on Spark as SQLGlot translates it.

`identify.decision` and `normalize.name` write the positive-identification rules as DuckDB SQL and
macros. Spark has no macros, and SQLGlot (which Splink itself uses to speak both dialects) has no
Spark spelling for a few of DuckDB's list functions, so `to_spark` first writes each macro call
out as its body (arguments put in for parameters), then rewrites those functions into Spark's,
and only then lets SQLGlot translate the rest. Each rewrite is exact for the values the decision
gives it (token lists with no NULL in them); `tests/identify/test_spark.py` runs the rules on both engines.

A function this module does not know is not guessed at: `to_spark` refuses (UnsupportedSQL) any
DuckDB list function left in the translation, so a new rule cannot silently mean something else
on Spark.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

import sqlglot
from sqlglot import exp

_MACRO = re.compile(
    r"\s*CREATE\s+OR\s+REPLACE\s+MACRO\s+(\w+)\s*\(([^)]*)\)\s+AS\s+(.*)\Z", re.S | re.I
)
# DuckDB functions with no faithful spelling in SQLGlot's Spark output; each is rewritten below.
_DUCKDB_ONLY = (
    "LIST_HAS_ALL",
    "LIST_BOOL_AND",
    "LIST_BOOL_OR",
    "LIST_TRANSFORM",
    "LIST_SLICE",
    "STRUCT_PACK",
)


class UnsupportedSQL(ValueError):
    """The DuckDB SQL uses something `to_spark` cannot translate faithfully."""


def _macro(text: str) -> tuple[str, tuple[str, ...], exp.Expression]:
    found = _MACRO.match(text)
    if not found:
        raise UnsupportedSQL(f"not a macro definition: {text[:60]!r}")
    name, params, body = found.groups()
    return (
        name.lower(),
        tuple(p.strip().lower() for p in params.split(",")),
        sqlglot.parse_one(body, read="duckdb"),
    )


def _inline(
    tree: exp.Expression, macros: dict[str, tuple[tuple[str, ...], exp.Expression]]
) -> exp.Expression:
    """Every call of a macro written out as its body, its parameters replaced by the call's arguments
    (all at once, so an argument is never itself rewritten), until no call is left."""

    def expand(node: exp.Expression) -> exp.Expression:
        if not isinstance(node, exp.Anonymous) or node.name.lower() not in macros:
            return node
        params, body = macros[node.name.lower()]
        if len(node.expressions) != len(params):
            raise UnsupportedSQL(
                f"{node.name} takes {len(params)} arguments, given {len(node.expressions)}"
            )
        given = dict(zip(params, node.expressions))
        bound = {v.name.lower() for lam in body.find_all(exp.Lambda) for v in lam.expressions}
        for arg in node.expressions:  # a lambda's variable must not capture an argument's column
            if bound & {c.name.lower() for c in arg.find_all(exp.Column)}:
                raise UnsupportedSQL(f"an argument of {node.name} names a column its lambda binds")

        def put(n: exp.Expression) -> exp.Expression:
            if isinstance(n, exp.Column) and not n.table and n.name.lower() in given:
                arg = given[n.name.lower()].copy()
                return (
                    arg
                    if isinstance(arg, (exp.Column, exp.Literal, exp.Paren))
                    else exp.Paren(this=arg)
                )
            return n

        return body.copy().transform(put, copy=False)

    for _ in range(32):  # macros call macros; a cycle would never end
        if not any(isinstance(n, exp.Anonymous) and n.name.lower() in macros for n in tree.walk()):
            return tree
        tree = tree.transform(expand)
    raise UnsupportedSQL("macros nested deeper than 32 calls (a macro that calls itself?)")


def _lambda_over(node: exp.Expression, name: str) -> tuple[exp.Expression, exp.Expression] | None:
    """(list, lambda) of `list_transform(list, lambda)` (as SQLGlot parses it), else None."""
    if isinstance(node, exp.Transform):
        return node.this, node.expression
    if isinstance(node, exp.Anonymous) and node.name.upper() == name and len(node.expressions) == 2:
        return node.expressions[0], node.expressions[1]
    return None


def _rewrite(node: exp.Expression) -> exp.Expression:
    """DuckDB's list functions in Spark's words."""
    if isinstance(node, exp.Anonymous):
        name = node.name.upper()
        args = node.expressions
        if name == "LIST_HAS_ALL" and len(args) == 2:
            # every element of the second is in the first: nothing of the second is left without them
            left = exp.func("ARRAY_EXCEPT", args[1].copy(), args[0].copy(), dialect="spark")
            return exp.Paren(
                this=exp.EQ(this=exp.ArraySize(this=left), expression=exp.Literal.number(0))
            )
        if name in ("LIST_BOOL_AND", "LIST_BOOL_OR") and len(args) == 1:
            over = _lambda_over(args[0], "LIST_TRANSFORM")
            if over is None:
                raise UnsupportedSQL(f"{name} over something other than list_transform")
            # over the non-empty lists the decision gives it, all(...) is forall and any(...) is exists
            return exp.Anonymous(
                this="FORALL" if name == "LIST_BOOL_AND" else "EXISTS",
                expressions=[over[0].copy(), over[1].copy()],
            )
    if (
        isinstance(node, exp.Bracket)
        and len(node.expressions) == 1
        and isinstance(node.expressions[0], exp.Slice)
    ):
        part = node.expressions[0]
        if not (isinstance(part.this, exp.Literal) and part.this.name == "1"):
            raise UnsupportedSQL("a list slice that does not start at the first element")
        # DuckDB's l[1:n] (1-based, inclusive) is Spark's slice(l, 1, n) (start, length)
        return exp.Anonymous(
            this="SLICE", expressions=[node.this.copy(), part.this.copy(), part.expression.copy()]
        )
    if (
        isinstance(node, exp.Bracket)
        and len(node.expressions) == 1
        and not (isinstance(node.expressions[0], exp.Literal) and node.expressions[0].is_string)
    ):
        index = node.expressions[0]
        number = index.this if isinstance(index, exp.Neg) else index
        if not (isinstance(number, exp.Literal) and number.is_int):
            raise UnsupportedSQL("a list index that is not a whole number")
        # SQLGlot reads DuckDB's 1-based l[i] as the 0-based i - 1 (negative ones too: l[-1] as -2)
        duckdb_index = (-1 if isinstance(index, exp.Neg) else 1) * int(number.name) + 1
        if duckdb_index == 0:
            raise UnsupportedSQL("a list index of 0")
        # l[i] is NULL past the list's end on DuckDB, and Spark's an error when ANSI mode is on,
        # even in a condition an earlier one rules out: try_element_at (1-based) is DuckDB's l[i]
        return exp.Anonymous(
            this="TRY_ELEMENT_AT", expressions=[node.this.copy(), exp.Literal.number(duckdb_index)]
        )
    if isinstance(node, exp.Round) and node.args.get("decimals") is not None:
        places = node.args["decimals"]
        if not (isinstance(places, exp.Literal) and places.is_int and 0 <= int(places.name) <= 15):
            raise UnsupportedSQL("round() to places that are not a whole number from 0 to 15")
        if int(places.name) == 0:
            return node
        # DuckDB rounds a double as round(x * 10^n) / 10^n, half away from zero on the product; Spark
        # rounds the shortest decimal that prints x (16.2385 is 16.238499..., DuckDB's 16.238, Spark's
        # 16.239). To whole numbers the two agree, so Spark is given DuckDB's steps.
        scale = exp.Literal.number(10 ** int(places.name))
        product = exp.Mul(this=exp.Paren(this=node.this.copy()), expression=scale)
        whole = exp.Round(this=product, decimals=exp.Literal.number(0))
        return exp.Paren(this=exp.Div(this=whole, expression=scale.copy()))
    if isinstance(node, exp.ArgMax) and isinstance(node.expression, exp.Tuple):
        # an ordering by several values: DuckDB compares the row, Spark the struct, field by field
        node = node.copy()
        node.set("expression", exp.Struct(expressions=node.expression.expressions))
        return node
    return node


@lru_cache(maxsize=16)
def _parsed_macros(macros: tuple[str, ...]) -> dict[str, tuple[tuple[str, ...], exp.Expression]]:
    return {name: (params, body) for name, params, body in map(_macro, macros)}


def to_spark(sql: str, macros: Iterable[str] = ()) -> str:
    """Spark SQL for a DuckDB query that calls `macros` (their CREATE MACRO texts)."""
    tree = _inline(sqlglot.parse_one(sql, read="duckdb"), _parsed_macros(tuple(macros)))
    for _ in range(
        8
    ):  # a rewrite's result is rewritten again: list functions nest (lambdas in lambdas)
        before = tree.sql(dialect="duckdb")
        tree = tree.transform(_rewrite)
        if tree.sql(dialect="duckdb") == before:
            break
    left = sorted({n.name.upper() for n in tree.find_all(exp.Anonymous)} & set(_DUCKDB_ONLY))
    if left:
        raise UnsupportedSQL(f"no faithful Spark form for {', '.join(left)}")
    return tree.sql(dialect="spark")
