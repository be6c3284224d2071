from __future__ import annotations

from pathlib import Path

import pytest

from taxgate.synth import generate_batch, generate_master


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> dict[str, Path]:
    """A small synthetic world shared by the end-to-end tests: master, labels, one default batch."""
    root = tmp_path_factory.mktemp("world")
    master = root / "master.parquet"
    generate_master(3_000, master, seed=3)
    manifest = generate_batch(master, root / "batch", 1_500, seed=5)
    return {"root": root, "master": master, "manifest": manifest}
