"""The same model on Spark (Splink's Spark backend, local mode) reaches the same decisions as on DuckDB."""

from __future__ import annotations

import csv

from taxgate.pipeline import process
from taxgate.synth import Mix, generate_batch


def decisions(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_duckdb_and_spark_reach_the_same_decisions(world, tmp_path, monkeypatch):
    manifest = generate_batch(world["master"], tmp_path / "batch", 200, seed=23, mix=Mix.clean())
    monkeypatch.setenv("TAXGATE_MATCH_BACKEND", "duckdb")
    process(manifest, world["master"], tmp_path / "duckdb")
    monkeypatch.setenv("TAXGATE_MATCH_BACKEND", "spark")
    process(manifest, world["master"], tmp_path / "spark")
    on_duckdb, on_spark = decisions(tmp_path / "duckdb" / "auditors" / "decisions.csv"), decisions(tmp_path / "spark" / "auditors" / "decisions.csv")
    assert len(on_duckdb) == len(on_spark) == 200
    assert sum(d["outcome"] == "DISCLOSED" for d in on_duckdb) > 50  # the comparison is not vacuous
    for a, b in zip(on_duckdb, on_spark):
        assert (a["request_id"], a["outcome"], a["reasons"], a["matched_tin"], a["runner_up_tin"]) == (
            b["request_id"], b["outcome"], b["reasons"], b["matched_tin"], b["runner_up_tin"])
        if a["match_weight"]:
            assert abs(float(a["match_weight"]) - float(b["match_weight"])) < 1e-6
    assert (tmp_path / "duckdb" / "response.csv").read_bytes() == (tmp_path / "spark" / "response.csv").read_bytes()
