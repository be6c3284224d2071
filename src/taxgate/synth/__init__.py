"""Synthetic data with ground truth: a taxpayer master and request batches. Synthetic only: no real
person's name, address or number is used or produced."""

from taxgate.synth.batch import Mix, generate_batch
from taxgate.synth.master import generate_master

__all__ = ["Mix", "generate_batch", "generate_master"]
