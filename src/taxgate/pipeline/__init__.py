"""The main job: intake -> rules -> identify -> decide -> ledger -> response, for one batch.

The batch is streamed in chunks and staged as Parquet between passes, so memory does not grow with
the batch: pass 1 reads the rows and their batch keys, DuckDB turns the keys into per-row batch
figures, pass 2 judges each request in worker processes, and while they judge, this process
identifies the requests already judged eligible (one DuckDB query per block of them) and, pass 3,
decides, records each chunk in the store and the ledger (exactly once: see `release.batch`), and
writes the response in row order.

- `staging`: pass 1 (every row staged as Parquet, a chunk at a time) and the work folder with its
  on-disk DuckDB database;
- `judging`: pass 2, every rule on every request in worker processes, and the blocks identification
  takes;
- `deciding`: pass 3, one decision per request from what DuckDB joins, in workers of their own;
- here: `decide_staged` (passes 2 and 3 with identification between) and `process` (those, the
  recording in the store and the ledger, and the response).
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq

from taxgate import identify, response
from taxgate.history import Figures, History, scope_of
from taxgate.intake import Manifest, read_manifest
from taxgate.pipeline.deciding import Decided, Recording, decide_block
from taxgate.pipeline.judging import RuleTask, blocks, judge_chunk, rows_per_block, rule_workers
from taxgate.pipeline.staging import sql_text, stage, workspace
from taxgate.policy import Policy, load_policies, policy_in_force
from taxgate.processes import Workers, batch_pace
from taxgate.release.batch import BatchRecorder, batch_versions
from taxgate.response import ResponseWriter
from taxgate.rules import (
    KEYS_SQL,
    ROW_STATS_SQL,
    RuleSet,
    judge_batch,
    named_rule_set,
)
from taxgate.store import Store, open_store

__all__ = ["BatchResult", "Decided", "decide_staged", "process", "stage", "workspace"]


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


class _Recording:
    """Records and answers pass 3's chunks, in order, in a thread of its own, while this process's
    main thread goes on to the next: identifying a block (DuckDB) and recording one (the store)
    each leave most of a core idle, and the store's driver and DuckDB let go of the GIL while they
    work. At most `queued` chunks wait. A failure in the thread is raised in the main thread at its
    next chunk, or when it ends; a run that stops (an error, Ctrl-C) records no further chunk than
    the one in the store's hands, which commits or rolls back whole: the next run takes the batch
    from its mark (`release.batch`), exactly once either way."""

    def __init__(
        self, record: Callable[[list[Decided]], None], threaded: bool = True, queued: int = 2
    ):
        self._record, self._chunks = record, queue.Queue(maxsize=queued)
        self._failed: BaseException | None = None
        self._stopping, self._ended = threading.Event(), threading.Event()
        self.seconds = 0.0  # the thread's busy time, for the summary
        self._thread = None
        if threaded:
            self._thread = threading.Thread(target=self._run, name="taxgate-recording", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            while (chunk := self._chunks.get()) is not None:
                if self._failed is None and not self._stopping.is_set():
                    started = time.perf_counter()
                    try:
                        self._record(chunk)
                    except BaseException as exc:  # raised in the main thread; nothing more recorded
                        self._failed = exc
                    self.seconds += time.perf_counter() - started
        finally:
            self._ended.set()

    def put(self, chunk: list[Decided]) -> None:
        if self._thread is None:  # recorded here and now
            started = time.perf_counter()
            self._record(chunk)
            self.seconds += time.perf_counter() - started
            return
        while True:
            if self._failed is not None:
                raise self._failed
            try:
                self._chunks.put(chunk, timeout=0.2)
                return
            except queue.Full:
                continue

    def halt(self) -> None:
        """Record no chunk after the one in the store's hands: the first thing a stopping run does."""
        self._stopping.set()

    def finish(self) -> None:
        """Wait for every chunk to be recorded; raise what failed."""
        self._end()
        if self._failed is not None:
            raise self._failed

    def stop(self) -> None:
        """Record nothing more, and wait for the chunk in the store's hands to end as its
        transaction does."""
        self.halt()
        self._end()

    def _end(self) -> None:
        """Tell the thread to end once it has taken what is queued, and wait until it has. A Ctrl-C
        meanwhile halts it and is held until then, and raised after: the chunk in the store's
        hands ends whole, and the response files, closed after this, are never closed under it."""
        if self._thread is None or self._ended.is_set():
            return
        held: BaseException | None = None
        told = False
        while not self._ended.is_set():
            try:
                if not told:  # the thread drains the queue, which is never full for long
                    self._chunks.put(None, timeout=0.2)
                    told = True
                else:
                    self._ended.wait(0.2)
            except queue.Full:
                continue
            except KeyboardInterrupt as exc:
                held = held or exc
                self.halt()
        if held is not None:
            raise held


def batch_figures(
    con: duckdb.DuckDBPyConnection, work: Path, history: History | None = None
) -> dict[str, np.ndarray]:
    """Each staged row's figures (`rules.RowStats`, a column each, in row order): its batch keys
    (`rules.KEYS_SQL`) counted with what `history` holds (the batch's own alone without it).
    Leaves views `staged` and tables `batch_keys`, `row_stats` for the passes after it."""
    con.execute(
        f"CREATE OR REPLACE VIEW staged AS SELECT * FROM read_parquet({sql_text(work / 'staged.parquet')})"
    )
    con.execute(f"CREATE OR REPLACE TABLE batch_keys AS {KEYS_SQL}")
    (history.figures(con) if history else Figures.none()).into(con)
    con.execute(f"CREATE OR REPLACE TABLE row_stats AS {ROW_STATS_SQL}")
    return con.execute("SELECT * FROM row_stats ORDER BY row_number").fetchnumpy()


@contextmanager
def master_loading(con: duckdb.DuckDBPyConnection, master_path: Path) -> Iterator[Future]:
    """`identify.load_master` in a thread of its own, on a connection of its own to the work
    database, from the batch's first row: preparing a master (minutes, the first time) or reading
    its cache then overlaps intake and the batch figures, which leave a core idle. The future
    holds its MasterError, raised where the master is needed. However the run ends, the load is
    told to stop (at its next step, or in the query it is in) and waited for, so that nothing uses
    the work folder once it goes and a refused run is not kept waiting for a master's preparation."""
    if os.environ.get("TAXGATE_MATCH_BACKEND", "duckdb") == "spark":
        # Made here, not in the load's thread: only a session made on the main thread has the
        # handler that cancels its jobs on Ctrl-C.
        from taxgate.identify.spark import session

        session()
    cursor, stop = con.cursor(), threading.Event()
    thread = ThreadPoolExecutor(1, thread_name_prefix="taxgate-master")
    loading = thread.submit(identify.load_master, cursor, master_path, stop=stop)
    try:
        yield loading
    finally:
        stop.set()
        cursor.interrupt()
        wait([loading])  # its error, if any, was raised where the master was needed
        thread.shutdown()
        cursor.close()


def judged_as_of(manifest: Manifest, today: date) -> date:
    """The day a batch is judged as of: the day it says it was submitted, never a day after it
    arrived (a batch dated ahead would otherwise move the history's window past those before it)."""
    return min(manifest.submitted_at.date(), today) if manifest.submitted_at else today


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
    recording: Recording | None = None,
    master: Future | None = None,
    stopping: Callable[[], None] = lambda: None,
) -> Iterator[list[Decided]]:
    """Passes 2 and 3 over the staged rows: every rule on every request, identification of those that
    passed, and one decision per request, yielded in row order in chunks of RECORD_ROWS.

    The rules run in worker processes chunk by chunk while this process identifies and decides the
    chunks already judged, a block at a time (`block_rows`): a request is identified only after
    every rule has passed it, and scores the same in any block (the model's frequencies are the
    master's). `lap(stage)` is called at the end of each stretch of this process's time, so that the
    stages add up to its wall time ("rules" is the time spent waiting for the workers).

    `history` is the agency's recorded requests (the batch's keys are registered there first); without
    it the batch's figures are its own alone; `block_rows` overrides the block's size; `recording`
    has pass 3's workers make each decision's ledger entry and response lines beside it; `master`
    is the master being loaded already (`master_loading`), else it is loaded here; `stopping()` is
    called first when the run stops early (an error, Ctrl-C), before the workers are ended."""
    stats = batch_figures(con, work, history)
    lap("history")
    batch_codes = tuple(judge_batch(manifest, policy, as_of))
    staged_file = pq.ParquetFile(work / "staged.parquet")
    bounds = np.cumsum(
        [0]
        + [staged_file.metadata.row_group(g).num_rows for g in range(staged_file.num_row_groups)]
    )
    tasks = [
        RuleTask(
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
    workers = rule_workers(rows)
    releasing = sorted(c.value for c in rules.releases)
    pool = Workers(workers) if workers > 1 else None
    # Pass 3's workers are a pool of their own: in one, a block's decisions would wait behind every
    # chunk still to judge, and this process (which records them) with them.
    deciders = Workers(workers) if workers > 1 else None
    try:
        futures = [pool.submit(judge_chunk, task) for task in tasks] if pool else []
        results = (f.result() for f in futures) if pool else map(judge_chunk, tasks)
        if master is None:
            identify.load_master(con, master_path)  # while the workers judge
        else:
            master.result()  # loaded meanwhile, or its MasterError
        lap("master")

        def judged_already(chunk: int) -> bool:
            return chunk < len(futures) and futures[chunk].done()

        for block, (judged, eligible) in enumerate(
            blocks(results, block_rows or rows_per_block(rows, workers), judged_already)
        ):
            lap("rules")
            # Identification: only requests that passed every rule are looked up at all.
            pq.write_table(judged, work / f"judged-{block}.parquet")
            pq.write_table(eligible, work / f"id_requests-{block}.parquet")
            con.execute(
                f"CREATE OR REPLACE VIEW id_requests AS SELECT * FROM read_parquet("
                f"{sql_text(work / f'id_requests-{block}.parquet')})"
            )
            identify.identify(con, policy.identification)
            if rules.tin_path:
                identify.match_by_tin(con)
            lap("identify")
            # The one item the law allows, for positive identifications only.
            identify.addresses_to_release(con, "id_decisions", releasing)
            yield from decide_block(
                con,
                work / f"judged-{block}.parquet",
                releasing,
                rules,
                policy,
                history,
                lap,
                deciders,
                recording=recording,
            )
    except BaseException:  # a run that stopped early judges and decides no further
        stopping()
        for workers_of in (pool, deciders):
            if workers_of:
                workers_of.stop()
        raise
    finally:
        for workers_of in (pool, deciders):
            if workers_of:
                workers_of.shutdown(cancel_futures=True)


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
    as_of = judged_as_of(manifest, today)
    policy = policy_in_force(load_policies(policy_path), as_of)
    own_store = store is None
    try:
        with (
            batch_pace(),
            workspace(out_dir, keep_work) as (work, con),
            master_loading(con, master_path) as master,
        ):
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
                recording = Recording(
                    recorder.batch.id, batch_versions(recorder.batch), writer.versions
                )

                def record(chunk: list[Decided]) -> None:
                    made = [d.row.decision for d in chunk]
                    indexes = recorder.record([d.row for d in chunk])
                    for d, decided in zip(chunk, made):
                        # the decision as recorded: an order in force at release may have held it
                        decision = d.row.decision
                        if decision is not decided or d.lines is None:
                            d.lines = response.lines(
                                d.request,
                                decision,
                                d.row.address,
                                d.evidence_fields(),
                                writer.versions,
                            )
                        outcomes[decision.outcome.value] += 1
                        code_counts.update(c.value for c in decision.codes)
                    writer.write_lines([d.lines for d in chunk], indexes)

                recording_thread = _Recording(record, threaded=store.threads_share_it)
                try:
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
                        recording=recording,
                        master=master,
                        stopping=recording_thread.halt,
                    ):
                        recording_thread.put(chunk)
                        laps("ledger")  # waiting for the recording to take the chunk
                    recording_thread.finish()
                    laps("ledger")
                except BaseException:
                    recording_thread.halt()
                    raise
                finally:
                    recording_thread.stop()
            laps.seconds["recording"] = round(recording_thread.seconds, 3)
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
