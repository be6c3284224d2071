"""The rules judged a column at a time (`rules.judge_rows`): the same codes as every rule asked of
every request, each rule asked once per distinct value of what it declares, and a rule that reads
what it did not declare refused rather than answered from a value outside its key."""

from __future__ import annotations

import random
from dataclasses import fields
from datetime import date

import pyarrow.parquet as pq
import pytest

from taxgate import identify, pipeline
from taxgate.domain import ReasonCode, Request
from taxgate.intake import read_manifest
from taxgate.pipeline import workspace
from taxgate.pipeline.judging import STAGED_FIELDS
from taxgate.policy import load_policies, policy_in_force
from taxgate.rules import (
    CODE_ORDER,
    RULE_SETS,
    Context,
    RowStats,
    Rule,
    UndeclaredRead,
    judge_request,
    judge_rows,
)
from taxgate.rules.registry import request_rule
from taxgate.synth import Mix, generate_batch

AS_OF = date(2025, 7, 25)


@pytest.fixture(scope="module")
def staged(world, tmp_path_factory) -> tuple[dict[str, list], dict[str, list], Context]:
    """A 2025-shaped batch's rows as the rules pass reads them, some made malformed, with figures
    drawn on both sides of every threshold."""
    folder = tmp_path_factory.mktemp("columns")
    manifest = read_manifest(
        generate_batch(world["master"], folder / "batch", 2_000, seed=17, mix=Mix.datafile_2025())
    )
    policy = policy_in_force(load_policies(None), AS_OF)
    with workspace(folder / "out") as (work, _):
        pipeline.stage(manifest, policy, work)
        table = pq.read_table(work / "staged.parquet")
    columns = {name: table.column(name).to_pylist() for name in STAGED_FIELDS}
    rng = random.Random(3)
    for row in rng.sample(range(len(columns["row_number"])), 40):
        columns["parse_error"][row] = "field count 3, expected 21"
    limits = policy.thresholds
    rows = len(columns["row_number"])
    figures = {f.name: [getattr(RowStats(), f.name)] * rows for f in fields(RowStats)}
    figures["relevance_repeats"] = [
        rng.choice([0, limits.relevance_max_repeats, limits.relevance_max_repeats + 1])
        for _ in range(rows)
    ]
    figures["official_cases"] = [
        rng.choice([1, limits.official_max_cases, limits.official_max_cases + 1])
        for _ in range(rows)
    ]
    figures["request_id_ordinal"] = [rng.choice([1, 1, 2]) for _ in range(rows)]
    figures["person_case_ordinal"] = [rng.choice([1, 1, 3]) for _ in range(rows)]
    figures["earlier_request"] = [rng.choice(["", "", "B-1 (batch 4)"]) for _ in range(rows)]
    figures["earlier_person_case"] = [rng.choice(["", "", "B-2 (batch 5)"]) for _ in range(rows)]
    return columns, figures, Context(policy, manifest, AS_OF)


def _requests(columns: dict[str, list]) -> list[Request]:
    return [Request(**dict(zip(columns, values))) for values in zip(*columns.values())]


def _every_rule_asked(rules, request: Request, ctx: Context) -> tuple[ReasonCode, ...]:
    """What the rules say of one request, each asked with the whole request and its figures."""
    if request.malformed:
        return (ReasonCode.MALFORMED_ROW,)
    failed = {rule.code for rule in rules if rule.check(request, ctx)}
    return tuple(sorted(failed, key=CODE_ORDER.__getitem__))


@pytest.mark.parametrize("rule_set", sorted(RULE_SETS))
def test_a_column_at_a_time_every_row_gets_what_every_rule_says_of_it(staged, rule_set):
    columns, figures, ctx = staged
    rules = RULE_SETS[rule_set].rules
    judged = judge_rows(rules, columns, figures, ctx)
    requests = _requests(columns)
    expected = []
    for number, request in enumerate(requests):
        ctx.stats = RowStats(**{name: figures[name][number] for name in figures})
        expected.append(_every_rule_asked(rules, request, ctx))
    assert judged == expected
    found = {code for codes in judged for code in codes}
    if rule_set == "statute":  # the batch and its figures reach every kind of request code
        assert {
            ReasonCode.MALFORMED_ROW,
            ReasonCode.ADDRESS_PLACEHOLDER,
            ReasonCode.RELEVANCE_NOT_SPECIFIC,
            ReasonCode.ENGAGED_OFFICIAL_IMPLAUSIBLE,
            ReasonCode.DUPLICATE_REQUEST,
        } <= found
    assert sum(codes == () for codes in judged) > 0, "some rows pass every rule"
    # One request on its own gets what it gets among the others.
    for number in range(0, len(requests), 97):
        ctx.stats = RowStats(**{name: figures[name][number] for name in figures})
        assert tuple(judge_request(requests[number], ctx, rule_set)) == judged[number]


def test_a_rule_is_asked_once_per_distinct_value_it_reads(staged):
    columns, figures, ctx = staged
    asked: list[str] = []

    def periods_odd(request, ctx) -> bool:
        asked.append(request.tax_periods)
        return len(request.tax_periods) % 2 == 1

    rule = Rule(ReasonCode.TAX_PERIOD_INVALID, "Counts.", periods_odd, "request", ("tax_periods",))
    judged = judge_rows([rule], columns, figures, ctx)
    well_formed = [v for v, e in zip(columns["tax_periods"], columns["parse_error"]) if not e]
    assert sorted(asked) == sorted(set(well_formed)) and len(asked) < len(well_formed) / 10
    for value, error, codes in zip(columns["tax_periods"], columns["parse_error"], judged):
        if error:
            assert codes == (ReasonCode.MALFORMED_ROW,)
        else:
            assert codes == ((ReasonCode.TAX_PERIOD_INVALID,) if len(value) % 2 else ())


@pytest.mark.parametrize(
    "reading",
    [
        lambda request, ctx: request.city == "",  # a field not declared
        lambda request, ctx: (
            getattr(request, "city", "") == ""
        ),  # with a default that would hide it
        lambda request, ctx: hasattr(request, "city"),
        lambda request, ctx: ctx.stats.official_cases > 3,  # a figure not declared
    ],
    ids=["field", "getattr-default", "hasattr", "figure"],
)
def test_a_rule_that_reads_what_it_did_not_declare_is_refused(staged, reading):
    columns, figures, ctx = staged
    rule = Rule(ReasonCode.ADDRESS_MISSING, "Reads too much.", reading, "request", ("street",))
    with pytest.raises(UndeclaredRead, match=r"ADDRESS_MISSING.*without declaring it"):
        judge_rows([rule], columns, figures, ctx)


def test_a_rule_cannot_declare_what_no_request_has():
    with pytest.raises(ValueError, match="reads what no request has"):
        request_rule(ReasonCode.NAME_MISSING, "A field that is not one.", reads=("nickname",))
    with pytest.raises(ValueError, match="reads what no request has"):
        request_rule(ReasonCode.NAME_MISSING, "Nor a figure.", reads=(), figures=("cases",))


def test_identification_keys_a_column_at_a_time_are_each_requests_own(staged):
    columns, _, _ = staged
    requests = _requests(columns)
    chosen = list(range(0, len(requests), 3))
    made = identify.request_feature_columns(columns, chosen)
    assert len(made) == len(identify.FEATURE_COLUMNS)
    assert list(zip(*made)) == [identify.request_features(requests[i]) for i in chosen]
    assert all(len(column) == 0 for column in identify.request_feature_columns(columns, []))


def test_the_callers_context_is_left_as_it_was(staged):
    """`judge_rows` hands each rule its own declared figures as `ctx.stats`, and puts the caller's
    back: a second request judged with the same context reads its own figures, not a proxy's."""
    columns, figures, ctx = staged
    requests = _requests(columns)
    mine = RowStats(relevance_repeats=10**6)
    ctx.stats = mine
    first = judge_request(requests[0], ctx)
    assert ctx.stats is mine
    assert judge_request(requests[0], ctx) == first
    assert ReasonCode.RELEVANCE_NOT_SPECIFIC in first or requests[0].malformed


def test_a_rule_cannot_name_a_field_twice():
    with pytest.raises(ValueError, match="names a field twice"):
        request_rule(ReasonCode.NAME_MISSING, "Twice.", reads=("street", "street"))


def test_a_column_shorter_than_the_rest_is_refused_not_spread_over_every_row(staged):
    columns, figures, ctx = staged
    short = {**figures, "request_id_ordinal": [2]}
    with pytest.raises(ValueError, match="request_id_ordinal.* rows, not"):
        judge_rows(RULE_SETS["statute"].rules, columns, short, ctx)
