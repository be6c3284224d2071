"""Pass 2: every rule on every request, a staged chunk at a time in worker processes, and the
chunks gathered into the blocks identification takes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from taxgate import identify
from taxgate.domain import ReasonCode
from taxgate.intake import Manifest
from taxgate.pipeline import staging
from taxgate.pipeline.staging import requests_from
from taxgate.policy import Policy
from taxgate.rules import (
    RULE_SETS,
    Context,
    RowStats,
    is_refusal,
    refused_items,
    requested_items,
)

JUDGED = pa.schema(
    [
        ("row_number", pa.int64()),
        ("codes", pa.string()),
        ("refused_items", pa.string()),
        ("wants", pa.bool_()),
    ]
)
ID_REQUESTS = pa.schema(
    [("row_number", pa.int64())] + [(k, pa.string()) for k in identify.FEATURE_COLUMNS]
)


@dataclass(frozen=True)
class RuleTask:
    """One staged chunk to judge; small enough to send to a worker process."""

    staged: Path
    row_group: int
    stats: dict[str, np.ndarray]  # this chunk's slice of the batch figures
    policy: Policy
    manifest: Manifest
    as_of: date
    batch_codes: tuple[ReasonCode, ...]
    rule_set: str


def judge_chunk(task: RuleTask) -> tuple[pa.Table, pa.Table]:
    """Every rule on every request of one chunk: (judged rows, identification keys of eligible rows)."""
    policy, batch_codes, judge = task.policy, list(task.batch_codes), RULE_SETS[task.rule_set].judge
    ctx = Context(policy, task.manifest, task.as_of)
    numbers, codes_of, refused_of, wants_of = [], [], [], []
    eligible = []
    rows = pq.ParquetFile(task.staged).read_row_group(task.row_group)
    figures = zip(*(task.stats[f.name].tolist() for f in fields(RowStats)))
    for request, stats in zip(requests_from(rows), figures):
        ctx.stats = RowStats(*stats)
        codes = batch_codes + [c for c in judge(request, ctx) if c not in batch_codes]
        refused = [] if request.malformed else refused_items(request, policy)
        wants = not request.malformed and any(
            i in policy.disclosable_items for i in requested_items(request, policy)
        )
        numbers.append(request.row_number)
        codes_of.append(";".join(codes))
        refused_of.append(";".join(refused))
        wants_of.append(wants)
        if wants and not any(is_refusal(c) for c in codes):
            eligible.append((request.row_number, *identify.request_features(request)))
    judged = pa.table([numbers, codes_of, refused_of, wants_of], schema=JUDGED)
    columns = list(zip(*eligible)) or [[] for _ in ID_REQUESTS.names]
    return judged, pa.table([list(c) for c in columns], schema=ID_REQUESTS)


def rule_workers(rows: int) -> int:
    """Worker processes for the rules pass: one per core for big batches; none for small ones,
    where starting processes costs more than it saves. TAXGATE_WORKERS overrides."""
    if "TAXGATE_WORKERS" in os.environ:
        return max(1, int(os.environ["TAXGATE_WORKERS"]))
    return min(len(os.sched_getaffinity(0)), 4) if rows > 2 * staging.CHUNK_ROWS else 1


def blocks(
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


def rows_per_block(rows: int, workers: int) -> int:
    """Requests identified and decided at a time. With workers, the main process decides one block
    while they judge the next, so blocks are a fraction of the batch; alone, it is one block (a
    block costs a Splink run over the master). Two blocks per worker: at a ten-million-row master a
    run costs about 3 s whatever its size, and the 2025 batch's warm run took 302 s in eight blocks,
    268 s in four and 267 s in two (peak memory 7.6, 7.7, 7.9 GiB)."""
    if workers == 1:
        return max(rows, 1)
    return max(
        staging.CHUNK_ROWS, -(-rows // (2 * workers)) // staging.CHUNK_ROWS * staging.CHUNK_ROWS
    )
