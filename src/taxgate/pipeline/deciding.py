"""Pass 3: one decision per request from what DuckDB joins (the rules' results, the batch's
figures, the identification, the address released), in worker processes, in row order."""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path

import duckdb
import pyarrow as pa

from taxgate import identify, response
from taxgate.decide import Decision, decide
from taxgate.domain import Outcome, ReasonCode, Request
from taxgate.history import History
from taxgate.normalize.text import digits
from taxgate.pipeline import staging
from taxgate.pipeline.staging import sql_text
from taxgate.policy import Policy
from taxgate.release.batch import Row, decision_record, encoded
from taxgate.response import evidence_fields, evidence_json
from taxgate.rules import (
    RULE_SETS,
    RowStats,
    RuleSet,
    figures_evidence,
)

# Rows recorded per store transaction in pass 3. Smaller means less to redo after a crash; the
# exactly-once test sets it low so that a kill lands mid-batch.
RECORD_ROWS = int(os.environ.get("TAXGATE_RECORD_ROWS", staging.CHUNK_ROWS))


ASKED = (
    "first_name",
    "middle_name",
    "last_name",
    "suffix",
    "date_of_birth",
    "tin",
    "street",
    "unit",
    "city",
    "state",
    "zip",
    "statute",
)


@dataclass
class Decided:
    """One request as decided, before any order is applied at release."""

    request: Request
    row: Row
    # response.evidence_fields: serialised once, written twice; None when `lines` came made
    evidence: dict[str, tuple[str, str]] | None
    lines: tuple | None = None  # `response.lines`, when pass 3 was told how the batch is recorded

    def evidence_fields(self) -> dict[str, tuple[str, str]] | None:
        """The evidence as `response.evidence_fields` gives it, read back from the row's JSON when
        the worker did not send it (it sends `lines` instead: a decision held at release is the
        rare one whose lines are made again)."""
        if self.evidence is None and self.row.evidence:
            return evidence_fields(json.loads(self.row.evidence))
        return self.evidence


@dataclass(frozen=True)
class Recording:
    """How a batch's decisions are recorded and answered, so that pass 3's workers can make each
    decision's ledger entry (`release.batch.encoded`) and response lines (`response.lines`)
    beside it: the batch's id in the store, the versions its entries name, and those its response
    files name."""

    batch_id: int
    versions: dict
    response_versions: tuple[str, str]


_CODES = {
    code.value: code for code in ReasonCode
}  # a dict lookup: Enum's call costs more, a million times


def decide_block(
    con: duckdb.DuckDBPyConnection,
    judged: Path,
    releasing: list[str],
    rules: RuleSet,
    policy: Policy,
    history: History | None,
    lap: Callable[[str], None],
    pool: ProcessPoolExecutor | None = None,
    ahead: int = 2,
    recording: Recording | None = None,
) -> Iterator[list[Decided]]:
    """Pass 3 over one block's rows (those of `judged`): decide each, in row order, streamed.

    DuckDB joins everything a decision reads; the decisions themselves, their evidence's JSON and,
    with `recording`, their ledger entries and response lines, are made chunk by chunk in `pool`'s
    workers when there is one (`ahead` chunks in flight), so that this process, which records and
    writes every row, does little else per row."""
    wanted = ", ".join(f"'{c}'" for c in releasing)
    reader = con.sql(
        f"""
        SELECT s.row_number, s.request_id, s.parse_error, s.tin, s.statute, s.engaged_official, s.case_number,
               j.codes, j.refused_items, j.wants,
               d.code, d.review, d.matched_tin, d.match_weight, d.runner_up_tin, d.runner_up_weight, d.evidence,
               a.address, CASE WHEN d.review THEN struct_pack({", ".join(f"{c} := s.{c}" for c in ASKED)}) END AS asked,
               struct_pack({", ".join(f"{f.name} := t.{f.name}" for f in fields(RowStats))}) AS figures
        FROM read_parquet({sql_text(judged)}) j
        JOIN staged s USING (row_number)
        JOIN row_stats t USING (row_number)
        LEFT JOIN id_decisions d USING (row_number)
        LEFT JOIN released a ON d.code IN ({wanted}) AND a.tin = d.matched_tin
        ORDER BY s.row_number
        """
    ).to_arrow_reader(RECORD_ROWS)
    window = history.window_days if history else None
    args = (rules.name, policy, window, recording)
    if pool is None:
        decided = (decide_rows(batch, *args) for batch in reader)
    else:
        decided = _in_order((pool.submit(decide_rows, batch, *args) for batch in reader), ahead)
    for rows in decided:
        chunk = [unpacked(row) for row in rows]
        lap("decide")
        yield chunk


def _in_order(futures: Iterator[Future], ahead: int = 2) -> Iterator:
    """The futures' results in the order submitted, keeping `ahead` more submitted meanwhile."""
    pending: deque[Future] = deque()
    for future in futures:
        pending.append(future)
        if len(pending) > ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def decide_rows(
    batch: pa.RecordBatch,
    rule_set: str,
    policy: Policy,
    window_days: int | None,
    recording: Recording | None = None,
) -> list[tuple]:
    """One decision per row of pass 3's query (in a worker, or in the main process when alone), each
    as a tuple of plain values (`unpacked` makes it a `Decided`): a worker's answer is pickled, and
    dataclasses pickle several times slower than tuples of strings. With `recording`, each also
    carries its ledger entry and its response lines."""
    releases = RULE_SETS[rule_set].releases
    chunk: list[tuple] = []
    for row in batch.to_pylist():
        found = identify.from_row(row) if row["code"] else None
        decision = decide(
            [_CODES[c] for c in row["codes"].split(";") if c],
            [r for r in row["refused_items"].split(";") if r],
            row["wants"],
            found,
            releases,
        )
        evidence = found.evidence if found else None
        if (
            evidence and decision.outcome is Outcome.REVIEW
        ):  # the officer sees the request beside the record
            evidence = {**evidence, "request": row["asked"]}
        behind = figures_evidence(decision.codes, row["figures"], policy, window_days)
        if behind:  # the figure behind a cross-batch code, for whoever reads the decision later
            evidence = {**(evidence or {}), "figures": behind}
        dumped = evidence_fields(evidence) if evidence else None
        values = (
            row["row_number"],
            row["request_id"],
            row["parse_error"],
            digits(row["tin"]),
            decision.outcome.value,
            ";".join(c.value for c in decision.codes),
            decision.refused_items,
            decision.matched_tin,
            decision.runner_up_tin,
            decision.match_weight,
            decision.runner_up_weight,
            row["address"],
            evidence_json(dumped) if dumped else None,
            row["statute"] or "",
            row["engaged_official"] or "",
            row["case_number"] or "",
            dumped,
        )
        if recording is None:
            chunk.append((*values, None, None))
            continue
        made = unpacked((*values, None, None))
        chunk.append(
            (
                *values[:-1],
                None,  # the evidence's fields: in the lines already, and the most objects to pickle
                encoded(decision_record(made.row, recording.batch_id), recording.versions),
                response.lines(
                    made.request,
                    decision,
                    made.row.address,
                    dumped,
                    recording.response_versions,
                ),
            )
        )
    return chunk


_OUTCOMES = {outcome.value: outcome for outcome in Outcome}


def unpacked(values: tuple) -> Decided:
    """A `Decided` from `decide_rows`'s tuple."""
    (
        row_number,
        request_id,
        parse_error,
        requested_tin,
        outcome,
        codes,
        refused,
        matched_tin,
        runner_up_tin,
        match_weight,
        runner_up_weight,
        address,
        evidence,
        statute,
        official,
        case_number,
        dumped,
        entry,
        lines,
    ) = values
    request = Request(row_number, request_id=request_id, parse_error=parse_error)
    decision = Decision(
        _OUTCOMES[outcome],
        tuple(_CODES[c] for c in codes.split(";") if c),
        refused,
        matched_tin,
        runner_up_tin,
        match_weight,
        runner_up_weight,
    )
    return Decided(
        request,
        Row(
            row_number,
            request.display_id,
            requested_tin,
            decision,
            address,
            evidence,
            statute,
            official,
            case_number,
            entry,
        ),
        dumped,
        lines,
    )
