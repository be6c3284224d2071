"""Pass 2: every rule on every request, a staged chunk at a time in worker processes, and the
chunks gathered into the blocks identification takes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from taxgate import identify
from taxgate.domain import REQUEST_COLUMNS, ReasonCode
from taxgate.intake import Manifest
from taxgate.pipeline import staging
from taxgate.policy import Policy
from taxgate.rules import (
    RULE_SETS,
    Context,
    codes_of,
    is_refusal,
    judge_masks,
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
STAGED_FIELDS = ("row_number", *REQUEST_COLUMNS, "parse_error")  # what the rules may read
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
    """Every rule on every request of one chunk: (judged rows, identification keys of eligible rows).

    Column by column (`rules.judge_masks`): no request is built, and each rule, each item list and
    each name, date and address of the identification keys is worked out once per distinct value."""
    policy, rule_set = task.policy, RULE_SETS[task.rule_set]
    batch_codes = list(task.batch_codes)
    table = pq.ParquetFile(task.staged).read_row_group(task.row_group)
    columns = {name: table.column(name) for name in STAGED_FIELDS}
    masks = judge_masks(
        rule_set.rules, columns, task.stats, Context(policy, task.manifest, task.as_of)
    )
    # Per distinct set of codes: the batch's first, then the request's own; and whether one refuses.
    told, each = np.unique(masks, return_inverse=True)
    said, refuses = [], []
    for mask in told.tolist():
        codes = codes_of(mask)
        said.append(";".join(batch_codes + [c for c in codes if c not in batch_codes]))
        refuses.append(any(is_refusal(c) for c in (*batch_codes, *codes)))
    # Per distinct item list: the items refused, and whether one that may be released is asked for.
    asked = pc.dictionary_encode(pc.fill_null(columns["requested_items"], "").combine_chunks())
    refused, wants = [], []
    for text in asked.dictionary.to_pylist():
        refused.append(";".join(refused_items(text, policy)))
        wants.append(any(i in policy.disclosable_items for i in requested_items(text, policy)))
    lists = asked.indices.to_numpy(zero_copy_only=False)
    malformed = np.asarray(pc.not_equal(pc.fill_null(columns["parse_error"], ""), ""))
    wanting = np.array(wants, dtype=bool)[lists] & ~malformed
    judged = pa.table(
        [
            columns["row_number"],
            pa.array(said, pa.string()).take(pa.array(each.reshape(-1))),
            pc.if_else(
                pa.array(malformed), "", pa.array(refused, pa.string()).take(pa.array(lists))
            ),
            pa.array(wanting),
        ],
        schema=JUDGED,
    )
    eligible = np.flatnonzero(wanting & ~np.array(refuses, dtype=bool)[each.reshape(-1)])
    chosen = table.take(pa.array(eligible)).select(STAGED_FIELDS).to_pydict()
    features = identify.request_feature_columns(chosen, range(len(eligible)))
    return judged, pa.table([chosen["row_number"], *map(list, features)], schema=ID_REQUESTS)


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
