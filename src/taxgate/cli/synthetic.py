"""Synthetic data and the identification model."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import typer

from taxgate.cli.shared import app, console, fail

synth_app = typer.Typer(
    help="Seeded synthetic data with ground-truth labels.", no_args_is_help=True
)
app.add_typer(synth_app, name="synth")
model_app = typer.Typer(help="The identification model (Splink).", no_args_is_help=True)
app.add_typer(model_app, name="model")


@synth_app.command("master")
def synth_master(
    out: Path = typer.Option(
        ..., "--out", help="Output file (.parquet or .csv); labels go beside it."
    ),
    taxpayers: int = typer.Option(100_000, min=1, help="Number of taxpayers."),
    seed: int = typer.Option(7),
) -> None:
    """A taxpayer master: one row per taxpayer per tax year, with address histories and hard cases."""
    from taxgate.synth import generate_master

    started = time.perf_counter()
    rows, people = generate_master(taxpayers, out, seed=seed)
    elapsed = time.perf_counter() - started
    console.print(
        f"Wrote {rows:,} rows for {people:,} taxpayers to {out} in {elapsed:.1f} s ({rows / elapsed:,.0f} rows/s)."
    )


@synth_app.command("batch")
def synth_batch(
    master: Path = typer.Option(..., "--master", help="The master to draw people from."),
    out: Path = typer.Option(
        ..., "--out", help="Output folder: manifest.json, requests.*, labels."
    ),
    size: int = typer.Option(10_000, min=1, help="Number of requests."),
    seed: int = typer.Option(11),
    fmt: str = typer.Option("csv", "--format", help="csv, jsonl or parquet."),
    clean: bool = typer.Option(
        False, "--clean", help="No defects: only lawful requests (for matching accuracy)."
    ),
    mix: list[str] = typer.Option(
        [],
        "--mix",
        help="NAME=SHARE, repeatable: e.g. --mix boilerplate=1 --mix single_officer=1 for the 2025 shape.",
    ),
    submitted_at: str = typer.Option("2025-07-25T14:00:00Z", help="The manifest's submitted_at."),
) -> None:
    """A request batch shaped like the 2025 datafile, with the defects the courts found."""
    from dataclasses import fields, replace

    from taxgate.synth import Mix, generate_batch

    if fmt not in ("csv", "jsonl", "parquet"):
        fail(f"unknown format {fmt!r}: use csv, jsonl or parquet")
    if not master.is_file():
        fail(f"taxpayer master not found: {master}")
    shares = Mix.clean() if clean else Mix()
    names = {f.name for f in fields(Mix)}
    for item in mix:
        name, _, value = item.partition("=")
        try:
            share = float(value)
        except ValueError:
            share = -1.0
        if name not in names or not 0.0 <= share <= 1.0:
            fail(
                f"--mix {item!r}: use NAME=SHARE with SHARE in 0..1 and NAME one of {', '.join(sorted(names))}"
            )
        shares = replace(shares, **{name: share})
    manifest = generate_batch(
        master, out, size, seed=seed, mix=shares, fmt=fmt, submitted_at=submitted_at
    )
    console.print(f"Wrote {manifest} with its rows and labels.")


@model_app.command("train")
def model_train(
    out: Path = typer.Option(..., "--out", help="Where to write the trained model (JSON)."),
    seed: int = typer.Option(2026, help="Seed of the synthetic training world."),
    taxpayers: int = typer.Option(40_000, min=1_000),
    requests: int = typer.Option(20_000, min=500),
) -> None:
    """Train the identification model on a seeded synthetic world; the same seed gives the same file."""
    from taxgate.identify.training import train_model
    from taxgate.synth import training_world

    with console.status("Training..."), tempfile.TemporaryDirectory() as tmp:
        train_model(out, *training_world(Path(tmp), seed, taxpayers, requests), seed=seed)
    console.print(
        f"Wrote {out}. Ship it as src/taxgate/identify/model/<name>.json to make it the model in use."
    )
