"""Synthetic data with ground truth: a taxpayer master and request batches. Synthetic only: no real
person's name, address or number is used or produced."""

from pathlib import Path

from taxgate.synth.batch import Mix, generate_batch
from taxgate.synth.master import generate_master


def training_world(
    folder: Path, seed: int, taxpayers: int, requests: int
) -> tuple[Path, Path, Path]:
    """The world the identification model is trained on (`identify.training.train_model`): a master
    of `taxpayers` from `seed`, a clean batch of `requests` from `seed + 1`, its labels; written
    into `folder`. Returns (master, manifest, labels)."""
    master = folder / "master.parquet"
    generate_master(taxpayers, master, seed=seed)
    manifest = generate_batch(master, folder / "batch", requests, seed=seed + 1, mix=Mix.clean())
    return master, manifest, folder / "batch" / "requests.labels.parquet"


__all__ = ["Mix", "generate_batch", "generate_master", "training_world"]
