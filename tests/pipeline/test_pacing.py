"""The garbage collector paced for a batch (`processes.batch_pace`): rarer collections inside a
batch's passes, in the main process and in every worker, and the process as it was after."""

from __future__ import annotations

import gc

from taxgate import pipeline
from taxgate.pipeline import process
from taxgate.processes import BATCH_THRESHOLDS, Workers, batch_pace


def _collector() -> tuple[tuple[int, int, int], int]:
    return gc.get_threshold(), gc.get_freeze_count()


def test_a_worker_collects_at_the_batch_pace_and_freezes_nothing():
    with Workers(1) as pool:
        assert pool.submit(_collector).result() == (BATCH_THRESHOLDS, 0)


def test_a_batch_leaves_the_collector_as_it_found_it(world, tmp_path, monkeypatch):
    before = _collector()
    seen = []
    with batch_pace():
        seen.append(_collector())
    assert seen[0][0] == BATCH_THRESHOLDS and seen[0][1] > 0
    assert _collector() == before

    # A whole batch: paced while its rows are decided, as before after.
    deciding = pipeline.decide_staged

    def watched(*args, **kwargs):
        seen.append(_collector())
        yield from deciding(*args, **kwargs)

    monkeypatch.setattr(pipeline, "decide_staged", watched)
    process(world["manifest"], world["master"], tmp_path / "out")
    assert seen[1][0] == BATCH_THRESHOLDS and seen[1][1] > 0
    assert _collector() == before
