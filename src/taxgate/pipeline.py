"""The main job: intake -> rules -> identify -> decide -> ledger -> response, for one batch.

The batch is streamed in chunks and staged as Parquet between passes, so memory does not grow with
the batch: pass 1 reads the rows and their batch keys, DuckDB turns the keys into per-row batch
figures, pass 2 judges each request in worker processes, and while they judge, this process
identifies the requests already judged eligible (one DuckDB query per block of them) and, pass 3,
decides, records each chunk in the store and the ledger (exactly once: see `release.batch`), and
writes the response in row order.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime
from multiprocessing import get_context
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from taxgate import identify
from taxgate.decide import Decision, decide
from taxgate.domain import REQUEST_COLUMNS, Outcome, ReasonCode, Request
from taxgate.history import Figures, History, scope_of
from taxgate.intake import Manifest, RowStream, read_manifest
from taxgate.normalize.text import digits
from taxgate.policy import Policy, load_policies, policy_in_force
from taxgate.release.batch import BatchRecorder, Row
from taxgate.response import ResponseWriter, evidence_fields, evidence_json
from taxgate.rules import (
    KEYS_SQL,
    ROW_STATS_SQL,
    RULE_SETS,
    Context,
    RowStats,
    RuleSet,
    figures_evidence,
    is_refusal,
    judge_batch,
    named_rule_set,
    refused_items,
    requested_items,
)
from taxgate.store import Store, open_store

CHUNK_ROWS = 50_000
# Rows recorded per store transaction in pass 3. Smaller means less to redo after a crash; the
# exactly-once test sets it low so that a kill lands mid-batch.
RECORD_ROWS = int(os.environ.get("TAXGATE_RECORD_ROWS", CHUNK_ROWS))
_STAGED = pa.schema(
    [("row_number", pa.int64())]
    + [(c, pa.string()) for c in REQUEST_COLUMNS]
    + [("parse_error", pa.string()), ("extra", pa.string())]
)
_JUDGED = pa.schema(
    [
        ("row_number", pa.int64()),
        ("codes", pa.string()),
        ("refused_items", pa.string()),
        ("wants", pa.bool_()),
    ]
)
_ID_REQUESTS = pa.schema(
    [("row_number", pa.int64())] + [(k, pa.string()) for k in identify.FEATURE_COLUMNS]
)


@dataclass
class BatchResult:
    batch_ref: str
    manifest_sha256: str
    rows_sha256: str
    rows: int
    malformed: int
    policy_version: str
    rule_set_version: str
    model_version: str
    out_dir: str
    batch_id: int = 0  # in the store
    resumed: bool = False  # the store already knew this batch (sent again, or a run restarted)
    checkpoint: str = ""  # the signed ledger checkpoint after the batch
    outcomes: dict[str, int] = field(default_factory=dict)
    codes: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


class _ChunkWriter:
    """Append rows (tuples in schema order) to a Parquet file, a chunk at a time."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.schema, self.rows = schema, []
        self._writer = pq.ParquetWriter(path, schema)

    def add(self, row: tuple) -> None:
        self.rows.append(row)
        if len(self.rows) >= CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            columns = [
                pa.array(column, type=f.type) for column, f in zip(zip(*self.rows), self.schema)
            ]
            self._writer.write_table(pa.Table.from_arrays(columns, schema=self.schema))
            self.rows = []

    def close(self) -> None:
        self.flush()
        self._writer.close()


def _sql_text(path: Path) -> str:
    """A path as a SQL string literal (views cannot take parameters)."""
    return "'" + str(path).replace("'", "''") + "'"


def _requests_from(batch: pa.RecordBatch | pa.Table, fields: tuple[str, ...] = REQUEST_COLUMNS):
    """Requests back from staged rows, with only `fields` filled in."""
    columns = batch.to_pydict()
    for i in range(batch.num_rows):
        request = Request(
            row_number=columns["row_number"][i], parse_error=columns["parse_error"][i]
        )
        for name in fields:
            setattr(request, name, columns[name][i])
        yield request


@dataclass(frozen=True)
class _RuleTask:
    """One staged chunk to judge; small enough to send to a worker process."""

    staged: Path
    row_group: int
    stats: dict[str, np.ndarray]  # this chunk's slice of the batch figures
    policy: Policy
    manifest: Manifest
    as_of: date
    batch_codes: tuple[ReasonCode, ...]
    rule_set: str


def _judge_chunk(task: _RuleTask) -> tuple[pa.Table, pa.Table]:
    """Every rule on every request of one chunk: (judged rows, identification keys of eligible rows)."""
    policy, batch_codes, judge = task.policy, list(task.batch_codes), RULE_SETS[task.rule_set].judge
    ctx = Context(policy, task.manifest, task.as_of)
    judged = {name: [] for name in _JUDGED.names}
    eligible = {name: [] for name in _ID_REQUESTS.names}
    rows = pq.ParquetFile(task.staged).read_row_group(task.row_group)
    figures = zip(*(task.stats[f.name].tolist() for f in fields(RowStats)))
    for request, stats in zip(_requests_from(rows), figures):
        ctx.stats = RowStats(*stats)
        codes = batch_codes + [c for c in judge(request, ctx) if c not in batch_codes]
        refused = [] if request.malformed else refused_items(request, policy)
        wants = not request.malformed and any(
            i in policy.disclosable_items for i in requested_items(request, policy)
        )
        for name, value in zip(
            _JUDGED.names, (request.row_number, ";".join(codes), ";".join(refused), wants)
        ):
            judged[name].append(value)
        if wants and not any(is_refusal(c) for c in codes):
            for name, value in zip(
                _ID_REQUESTS.names, (request.row_number, *identify.request_features(request))
            ):
                eligible[name].append(value)
    return pa.table(judged, schema=_JUDGED), pa.table(eligible, schema=_ID_REQUESTS)


def _rule_workers(rows: int) -> int:
    """Worker processes for the rules pass: one per core for big batches; none for small ones,
    where starting processes costs more than it saves. TAXGATE_WORKERS overrides."""
    if "TAXGATE_WORKERS" in os.environ:
        return max(1, int(os.environ["TAXGATE_WORKERS"]))
    return min(len(os.sched_getaffinity(0)), 4) if rows > 2 * CHUNK_ROWS else 1


class _Laps:
    """Seconds per stage, for the summary and the benchmarks: each call ends a stretch of time and
    adds it to its stage (the stages of a batch interleave, a block at a time)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._clock = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(self.seconds.get(stage, 0.0) + now - self._clock, 3)
        self._clock = now


@contextmanager
def workspace(
    out_dir: Path, keep_work: bool = False
) -> Iterator[tuple[Path, duckdb.DuckDBPyConnection]]:
    """`out_dir/.work` and an on-disk DuckDB database in it: DuckDB spills there instead of holding a
    big batch in memory. The work files hold the requests, so they are removed unless `keep_work`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / ".work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    con = duckdb.connect(str(work / "work.duckdb"))
    con.execute("SET threads TO 2")
    con.execute("SET memory_limit = '4GB'")
    con.execute(
        "SET enable_progress_bar = false"
    )  # the CLI prints its own summary; stdout is not DuckDB's
    try:
        yield work, con
    finally:
        con.close()
        if not keep_work:
            shutil.rmtree(work, ignore_errors=True)


def stage(manifest: Manifest, policy: Policy, work: Path) -> RowStream:
    """Pass 1: intake, staging every row with its batch keys. Returns the consumed stream (its
    `sha256`, `rows` and `malformed` are then known)."""
    stream = RowStream(manifest.rows_path, manifest.rows_format, policy.thresholds.max_field_chars)
    staged = _ChunkWriter(work / "staged.parquet", _STAGED)
    for request in stream:
        staged.add(
            (
                request.row_number,
                *(getattr(request, c) for c in REQUEST_COLUMNS),
                request.parse_error,
                json.dumps(request.extra) if request.extra else "",
            )
        )
    staged.close()
    return stream


# What a request says about the person (and the statute, which decides whether an order holds a release),
# kept with a REVIEW's evidence for the officer's side-by-side view and decision.
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
    evidence: (
        dict[str, tuple[str, str]] | None
    )  # response.evidence_fields: serialised once, written twice


def _blocks(
    results: Iterator[tuple[pa.Table, pa.Table]],
    rows: int,
    judged_already: Callable[[int], bool] = lambda chunk: False,
) -> Iterator[tuple[pa.Table, pa.Table]]:
    """The rules pass's chunks, in order, gathered into blocks of about `rows` requests. The first
    block also takes every chunk already judged when it fills (`judged_already(i)`: chunk i is):
    each block costs a Splink run over the master, and while a master is first prepared the
    workers judge most of the batch, so the first block is then most of it."""
    judged, eligible, held, first = [], [], 0, True
    for number, (judged_rows, eligible_rows) in enumerate(results):
        judged.append(judged_rows)
        eligible.append(eligible_rows)
        held += judged_rows.num_rows
        if held >= rows and not (first and judged_already(number + 1)):
            yield pa.concat_tables(judged), pa.concat_tables(eligible)
            judged, eligible, held, first = [], [], 0, False
    if judged:
        yield pa.concat_tables(judged), pa.concat_tables(eligible)


def _block_rows(rows: int, workers: int) -> int:
    """Requests identified and decided at a time. With workers, the main process decides one block
    while they judge the next, so blocks are a fraction of the batch; alone, it is one block (a
    block costs a Splink run over the master)."""
    if workers == 1:
        return max(rows, 1)
    return max(CHUNK_ROWS, -(-rows // (4 * workers)) // CHUNK_ROWS * CHUNK_ROWS)


def decide_staged(
    con: duckdb.DuckDBPyConnection,
    work: Path,
    master_path: Path,
    manifest: Manifest,
    policy: Policy,
    rules: RuleSet,
    as_of: date,
    rows: int,
    lap: Callable[[str], None] = lambda stage: None,
    history: History | None = None,
    block_rows: int | None = None,
) -> Iterator[list[Decided]]:
    """Passes 2 and 3 over the staged rows: every rule on every request, identification of those that
    passed, and one decision per request, yielded in row order in chunks of RECORD_ROWS.

    The rules run in worker processes chunk by chunk while this process identifies and decides the
    chunks already judged, a block at a time (`_block_rows`): a request is identified only after
    every rule has passed it, and scores the same in any block (the model's frequencies are the
    master's). `lap(stage)` is called at the end of each stretch of this process's time, so that the
    stages add up to its wall time ("rules" is the time spent waiting for the workers).

    `history` is the agency's recorded requests (the batch's keys are registered there first); without
    it the batch's figures are its own alone; `block_rows` overrides the block's size."""
    con.execute(
        f"CREATE OR REPLACE VIEW staged AS SELECT * FROM read_parquet({_sql_text(work / 'staged.parquet')})"
    )
    con.execute(f"CREATE OR REPLACE TABLE batch_keys AS {KEYS_SQL}")
    (history.figures(con) if history else Figures.none()).into(con)
    con.execute(f"CREATE OR REPLACE TABLE row_stats AS {ROW_STATS_SQL}")
    stats = con.execute("SELECT * FROM row_stats ORDER BY row_number").fetchnumpy()
    lap("history")
    batch_codes = tuple(judge_batch(manifest, policy, as_of))
    staged_file = pq.ParquetFile(work / "staged.parquet")
    bounds = np.cumsum(
        [0]
        + [staged_file.metadata.row_group(g).num_rows for g in range(staged_file.num_row_groups)]
    )
    tasks = [
        _RuleTask(
            work / "staged.parquet",
            g,
            {k: v[bounds[g] : bounds[g + 1]] for k, v in stats.items()},
            policy,
            manifest,
            as_of,
            batch_codes,
            rules.name,
        )
        for g in range(staged_file.num_row_groups)
    ]
    workers = _rule_workers(rows)
    releasing = sorted(c.value for c in rules.releases)
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn")) if workers > 1 else None
    # Pass 3's workers are a pool of their own: in one, a block's decisions would wait behind every
    # chunk still to judge, and this process (which records them) with them.
    deciders = (
        ProcessPoolExecutor(workers, mp_context=get_context("spawn")) if workers > 1 else None
    )
    try:
        futures = [pool.submit(_judge_chunk, task) for task in tasks] if pool else []
        results = (f.result() for f in futures) if pool else map(_judge_chunk, tasks)
        identify.load_master(con, master_path)  # while the workers judge
        lap("master")

        def judged_already(chunk: int) -> bool:
            return chunk < len(futures) and futures[chunk].done()

        for block, (judged, eligible) in enumerate(
            _blocks(results, block_rows or _block_rows(rows, workers), judged_already)
        ):
            lap("rules")
            # Identification: only requests that passed every rule are looked up at all.
            pq.write_table(judged, work / f"judged-{block}.parquet")
            pq.write_table(eligible, work / f"id_requests-{block}.parquet")
            con.execute(
                f"CREATE OR REPLACE VIEW id_requests AS SELECT * FROM read_parquet("
                f"{_sql_text(work / f'id_requests-{block}.parquet')})"
            )
            identify.identify(con, policy.identification)
            if rules.tin_path:
                identify.match_by_tin(con)
            lap("identify")
            # The one item the law allows, for positive identifications only.
            identify.release_addresses(con, "id_decisions", releasing)
            yield from _decide_block(
                con,
                work / f"judged-{block}.parquet",
                releasing,
                rules,
                policy,
                history,
                lap,
                deciders,
            )
    finally:
        for workers_of in (
            pool,
            deciders,
        ):  # a run that stopped early judges and decides no further
            if workers_of:
                workers_of.shutdown(cancel_futures=True)


_CODES = {
    code.value: code for code in ReasonCode
}  # a dict lookup: Enum's call costs more, a million times


def _decide_block(
    con: duckdb.DuckDBPyConnection,
    judged: Path,
    releasing: list[str],
    rules: RuleSet,
    policy: Policy,
    history: History | None,
    lap: Callable[[str], None],
    pool: ProcessPoolExecutor | None = None,
    ahead: int = 2,
) -> Iterator[list[Decided]]:
    """Pass 3 over one block's rows (those of `judged`): decide each, in row order, streamed.

    DuckDB joins everything a decision reads; the decisions themselves, and their evidence's JSON,
    are made chunk by chunk in `pool`'s workers when there is one (`ahead` chunks in flight), so that
    this process, which records and writes every row, does nothing else per row."""
    wanted = ", ".join(f"'{c}'" for c in releasing)
    reader = con.sql(
        f"""
        SELECT s.row_number, s.request_id, s.parse_error, s.tin, s.statute, s.engaged_official, s.case_number,
               j.codes, j.refused_items, j.wants,
               d.code, d.review, d.matched_tin, d.match_weight, d.runner_up_tin, d.runner_up_weight, d.evidence,
               a.address, CASE WHEN d.review THEN struct_pack({", ".join(f"{c} := s.{c}" for c in ASKED)}) END AS asked,
               struct_pack({", ".join(f"{f.name} := t.{f.name}" for f in fields(RowStats))}) AS figures
        FROM read_parquet({_sql_text(judged)}) j
        JOIN staged s USING (row_number)
        JOIN row_stats t USING (row_number)
        LEFT JOIN id_decisions d USING (row_number)
        LEFT JOIN released a ON d.code IN ({wanted}) AND a.tin = d.matched_tin
        ORDER BY s.row_number
        """
    ).to_arrow_reader(RECORD_ROWS)
    window = history.window_days if history else None
    if pool is None:
        for batch in reader:
            chunk = [_unpacked(row) for row in _decide_rows(batch, rules.name, policy, window)]
            lap("decide")
            yield chunk
        return
    pending: deque[Future[list[tuple]]] = deque()
    for batch in reader:
        pending.append(pool.submit(_decide_rows, batch, rules.name, policy, window))
        if len(pending) > ahead:
            chunk = [_unpacked(row) for row in pending.popleft().result()]
            lap("decide")
            yield chunk
    while pending:
        chunk = [_unpacked(row) for row in pending.popleft().result()]
        lap("decide")
        yield chunk


def _decide_rows(
    batch: pa.RecordBatch, rule_set: str, policy: Policy, window_days: int | None
) -> list[tuple]:
    """One decision per row of pass 3's query (in a worker, or in the main process when alone), each
    as a tuple of plain values (`_unpacked` makes it a `Decided`): a worker's answer is pickled, and
    dataclasses pickle several times slower than tuples of strings."""
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
        chunk.append(
            (
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
        )
    return chunk


_OUTCOMES = {outcome.value: outcome for outcome in Outcome}


def _unpacked(values: tuple) -> Decided:
    """A `Decided` from `_decide_rows`'s tuple."""
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
        ),
        dumped,
    )


def process(
    manifest_path: Path,
    master_path: Path,
    out_dir: Path,
    policy_path: Path | None = None,
    today: date | None = None,
    keep_work: bool = False,
    store: Store | None = None,
    rule_set: str = "statute",
    replay: bool = False,
) -> BatchResult:
    """Process one batch end to end and write the response files into `out_dir`.

    `keep_work` leaves the staged files and the DuckDB work database in `out_dir/.work` (for
    benchmarks and debugging; they hold the requests, so they are removed by default).

    `store` is where the batch is recorded and ledgered (default: `open_store()`, the URL in
    TAXGATE_DATABASE_URL or ./taxgate.db).

    `rule_set` names one of `rules.RULE_SETS`; one that is not lawful runs only with `replay=True`
    (reconstructing a past practice in the ledger so that it can be audited).

    Raises IntakeError, MasterError, PolicyError, StoreError or ValueError for input that cannot be processed.
    """
    laps = _Laps()
    rules = named_rule_set(rule_set)
    if not rules.lawful and not replay:
        raise ValueError(
            f"rule set {rules.name} is not lawful: it can only be replayed (taxgate replay), never used to disclose"
        )
    manifest = read_manifest(manifest_path)
    today = today or datetime.now(UTC).date()
    # Judged as of the day it says it was submitted, never a day after it arrived: a batch dated ahead
    # would otherwise move the history's window past the batches before it.
    as_of = min(manifest.submitted_at.date(), today) if manifest.submitted_at else today
    policy = policy_in_force(load_policies(policy_path), as_of)
    own_store = store is None
    try:
        with workspace(out_dir, keep_work) as (work, con):
            stream = stage(manifest, policy, work)
            laps("intake")

            # The batch's receipt is ledgered once; a batch seen before keeps the date it was judged as of.
            store = store or open_store()
            versions = {
                "policy": policy.recorded,
                "rule_set": rules.version,
                "model": identify.MODEL_VERSION,
            }
            recorder = BatchRecorder.open(
                store, manifest, stream.sha256, stream.rows, as_of, versions
            )
            if recorder.as_of != as_of:
                as_of = recorder.as_of
                policy = policy_in_force(load_policies(policy_path), as_of)
            laps("receipt")

            outcomes: Counter[str] = Counter()
            code_counts: Counter[str] = Counter()
            history = History(
                store,
                recorder.batch.id,
                scope_of(manifest.agency, rules.name),
                as_of,
                policy.history_window_days,
                received=today,
            )
            with ResponseWriter(
                out_dir, f"{rules.version}+{policy.recorded}", identify.MODEL_VERSION
            ) as writer:
                for chunk in decide_staged(
                    con,
                    work,
                    master_path,
                    manifest,
                    policy,
                    rules,
                    as_of,
                    stream.rows,
                    laps,
                    history,
                ):
                    indexes = recorder.record([d.row for d in chunk])
                    laps("ledger")
                    for d, index in zip(chunk, indexes):
                        # the decision as recorded: an order in force at release may have held it
                        decision = d.row.decision
                        writer.write(
                            d.request, decision, d.row.address, d.evidence, ledger_index=str(index)
                        )
                        outcomes[decision.outcome.value] += 1
                        code_counts.update(c.value for c in decision.codes)
                    laps("decide")  # the response's rows count with the decision
            note = recorder.complete(outcomes)
            laps("ledger")
    finally:
        if own_store and store is not None:
            store.close()
    seconds = laps.seconds

    result = BatchResult(
        batch_ref=manifest.batch_ref,
        manifest_sha256=manifest.sha256,
        rows_sha256=stream.sha256,
        rows=stream.rows,
        malformed=stream.malformed,
        policy_version=policy.recorded,
        rule_set_version=rules.version,
        model_version=identify.MODEL_VERSION,
        out_dir=str(out_dir),
        batch_id=recorder.batch.id,
        resumed=recorder.resumed,
        checkpoint=note,
        outcomes=dict(outcomes.most_common()),
        codes=dict(code_counts.most_common()),
        seconds=seconds,
    )
    (out_dir / "summary.json").write_text(
        json.dumps(asdict(result), indent=2) + "\n", encoding="utf-8"
    )
    return result
