"""Pass 1 stages every row as Parquet; the rules read its columns back. What they read back is what
intake read, field for field, malformed rows included (but `extra`, which the rules never see)."""

from __future__ import annotations

import dataclasses
from datetime import date

import pyarrow.parquet as pq

from taxgate.domain import Request
from taxgate.intake import RowStream, read_manifest
from taxgate.pipeline.judging import STAGED_FIELDS
from taxgate.pipeline.staging import stage
from taxgate.policy import load_policies, policy_in_force
from taxgate.synth import generate_batch


def test_the_staged_rows_read_back_as_intake_read_them(world, tmp_path):
    manifest = read_manifest(generate_batch(world["master"], tmp_path / "batch", 2_000, seed=21))
    with open(manifest.rows_path, "a", encoding="utf-8") as fh:  # damage too: rows of their own
        fh.write('"R-open,Ana\n' + "R-short,too,few\n" + "R-nul\x00," * 3 + "\n")
    policy = policy_in_force(load_policies(None), date(2025, 6, 1))
    read = [
        dataclasses.replace(r, extra={})
        for r in RowStream(manifest.rows_path, "csv", policy.thresholds.max_field_chars)
    ]
    assert sum(r.malformed for r in read) >= 3
    work = tmp_path / "work"
    work.mkdir()
    stream = stage(manifest, policy, work)
    assert stream.rows == len(read)
    staged = pq.read_table(work / "staged.parquet", columns=list(STAGED_FIELDS))
    assert [Request(**row) for row in staged.to_pylist()] == read
