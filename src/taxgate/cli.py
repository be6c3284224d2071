"""The command line (DESIGN.md "Command line"). Thin: parse, call a stage, print.

Exit codes: 0 done, 2 bad input with a one-line reason on stderr; never a traceback for a user error.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from taxgate.domain import Outcome, ReasonCode
from taxgate.identify import MasterError
from taxgate.intake import IntakeError
from taxgate.policy import PolicyError

app = typer.Typer(
    help="taxgate: a disclosure gateway for confidential taxpayer information (26 U.S.C. § 6103(i)(2)).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
synth_app = typer.Typer(help="Seeded synthetic data with ground-truth labels.", no_args_is_help=True)
app.add_typer(synth_app, name="synth")
model_app = typer.Typer(help="The identification model (Splink).", no_args_is_help=True)
app.add_typer(model_app, name="model")
console = Console()
errors = Console(stderr=True)

USER_ERRORS = (IntakeError, MasterError, PolicyError)


def fail(message: str) -> None:
    errors.print(f"taxgate: error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def process(
    manifest: Path = typer.Argument(..., help="The batch manifest (JSON)."),
    master: Path = typer.Option(..., "--master", help="Taxpayer master (Parquet or CSV)."),
    out: Path = typer.Option(..., "--out", help="Folder for response.csv, response.jsonl, decisions.csv."),
    policy: Path = typer.Option(None, "--policy", help="Policy file or folder (default: the shipped demo policy)."),
) -> None:
    """Process one batch: intake, rules, identification, decision; write the response files."""
    from taxgate.pipeline import process as run

    try:
        result = run(manifest, master, out, policy)
    except USER_ERRORS as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
    _print_result(result)


@app.command()
def demo(
    out: Path = typer.Option(Path("taxgate-demo"), "--out", help="Folder for the demo world and its outputs."),
    taxpayers: int = typer.Option(20_000, min=100, help="Taxpayers in the synthetic master."),
    requests: int = typer.Option(5_000, min=10, help="Requests in the batch."),
    seed: int = typer.Option(7, help="Seed for the synthetic world."),
) -> None:
    """Build the demo world (a synthetic master and a batch shaped like the 2025 datafile) and process it."""
    from taxgate.pipeline import process as run
    from taxgate.synth import generate_batch, generate_master

    started = time.perf_counter()
    master_path = out / "world" / "master.parquet"
    with console.status("Building the synthetic master..."):
        rows, people = generate_master(taxpayers, master_path, seed=seed)
    console.print(f"Synthetic master: {people:,} taxpayers, {rows:,} rows (one per taxpayer per tax year).")
    with console.status("Drawing a batch shaped like the 2025 datafile..."):
        manifest = generate_batch(master_path, out / "batch", requests, seed=seed + 1)
    with console.status("Processing the batch..."):
        result = run(manifest, master_path, out / "response")
    _print_result(result)
    console.print(f"Demo done in {time.perf_counter() - started:.1f} s. World: {out / 'world'}  Batch: {manifest}",
                  soft_wrap=True)
    console.print(f"Why a request went as it did: taxgate explain REQUEST_ID --out {out / 'response'}", soft_wrap=True)


@app.command()
def rules() -> None:
    """List every rule: its reason code, the statute it applies, and what it checks."""
    from taxgate.rules import all_rules

    table = Table(title="Rules (all run; every failing code is reported)")
    for column in ("code", "scope", "citation", "what it checks"):
        table.add_column(column, overflow="fold")
    for rule in all_rules():
        table.add_row(rule.code.value, rule.scope, rule.citation, rule.explanation)
    console.print(table)


@synth_app.command("master")
def synth_master(
    out: Path = typer.Option(..., "--out", help="Output file (.parquet or .csv); labels go beside it."),
    taxpayers: int = typer.Option(100_000, min=1, help="Number of taxpayers."),
    seed: int = typer.Option(7),
) -> None:
    """A taxpayer master: one row per taxpayer per tax year, with address histories and hard cases."""
    from taxgate.synth import generate_master

    started = time.perf_counter()
    rows, people = generate_master(taxpayers, out, seed=seed)
    elapsed = time.perf_counter() - started
    console.print(f"Wrote {rows:,} rows for {people:,} taxpayers to {out} in {elapsed:.1f} s ({rows / elapsed:,.0f} rows/s).")


@synth_app.command("batch")
def synth_batch(
    master: Path = typer.Option(..., "--master", help="The master to draw people from."),
    out: Path = typer.Option(..., "--out", help="Output folder: manifest.json, requests.*, labels."),
    size: int = typer.Option(10_000, min=1, help="Number of requests."),
    seed: int = typer.Option(11),
    fmt: str = typer.Option("csv", "--format", help="csv, jsonl or parquet."),
    clean: bool = typer.Option(False, "--clean", help="No defects: only lawful requests (for matching accuracy)."),
    mix: list[str] = typer.Option(
        [], "--mix", help="NAME=SHARE, repeatable: e.g. --mix boilerplate=1 --mix single_officer=1 for the 2025 shape."
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
            fail(f"--mix {item!r}: use NAME=SHARE with SHARE in 0..1 and NAME one of {', '.join(sorted(names))}")
        shares = replace(shares, **{name: share})
    manifest = generate_batch(master, out, size, seed=seed, mix=shares, fmt=fmt, submitted_at=submitted_at)
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

    with console.status("Training..."):
        train_model(out, seed=seed, taxpayers=taxpayers, requests=requests)
    console.print(f"Wrote {out}. Ship it as src/taxgate/identify/model/<name>.json to make it the model in use.")


@app.command()
def explain(
    request_id: str = typer.Argument(..., help="The request to explain."),
    out: Path = typer.Option(..., "--out", help="The folder `taxgate process` wrote (it reads evidence.jsonl)."),
) -> None:
    """Why a request was or was not identified: candidate, runner-up, every field's level and weight."""
    import json

    path = out / "evidence.jsonl"
    if not path.is_file():
        fail(f"no evidence file in {out}: run `taxgate process ... --out {out}` first")
    found = None
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            if record["request_id"] == request_id:
                found = record
                break
    if found is None:
        fail(f"request {request_id!r} was not identified in {out} (refused requests are never looked up)")
    candidate, runner = found["candidate"], found["runner_up"]
    console.print(f"[bold]{request_id}[/]: {found['outcome']}, {found['decision']}")
    console.print(f"candidate TIN {candidate['tin']} weight {candidate['weight']}, "
                  f"address on record: {candidate['address_on_record']}, names agree: {found.get('names_agree', '-')}")
    console.print(f"runner-up: {runner['tin'] or 'none'} weight {runner['weight']}")
    table = Table(title="Match weight, field by field (log2 Bayes factor; the prior is not shown)")
    for column in ("field", "level", "weight", "term-frequency adj.", "running total"):
        table.add_column(column, justify="right" if column != "field" else "left")
    total = 0.0
    for name, field in found["fields"].items():
        total += field["weight"] + field.get("tf", 0.0)
        table.add_row(name, str(field["level"]), f"{field['weight']:+.2f}", f"{field.get('tf', 0.0):+.2f}", f"{total:.2f}")
    console.print(table)
    from taxgate.identify.waterfall import waterfall_html

    chart = out / f"explain-{request_id}.html"
    chart.write_text(waterfall_html(found), encoding="utf-8")
    console.print(f"Waterfall chart (opens offline): {chart}")


def _not_yet(name: str, issue: int) -> None:
    @app.command(name, context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
                 help=f"Not available yet: arrives with issue {issue}.")
    def _command(ctx: typer.Context) -> None:
        fail(f"'taxgate {name}' is not available in this version (planned in issue {issue})")


_not_yet("ledger", 4)
_not_yet("orders", 5)
_not_yet("report", 5)
_not_yet("serve", 6)


def _print_result(result) -> None:
    console.print(f"Batch [bold]{result.batch_ref}[/]: {result.rows:,} requests ({result.malformed:,} could not be read)")
    table = Table(title="Outcomes")
    table.add_column("outcome")
    table.add_column("requests", justify="right")
    for outcome in Outcome:
        table.add_row(outcome.value, f"{result.outcomes.get(outcome.value, 0):,}")
    console.print(table)
    reasons = Table(title="Reason codes (a request may carry several)")
    reasons.add_column("code")
    reasons.add_column("level")
    reasons.add_column("requests", justify="right")
    for code in ReasonCode:
        count = result.codes.get(code.value, 0)
        if count:
            reasons.add_row(code.value, code.level.value, f"{count:,}")
    console.print(reasons)
    out = Path(result.out_dir)
    console.print(f"Rows file SHA-256: {result.rows_sha256}", soft_wrap=True)
    console.print(f"Policy {result.policy_version}, rules {result.rule_set_version}, model {result.model_version}")
    for name in ("response.csv", "response.jsonl", "decisions.csv", "evidence.jsonl", "malformed_rows.csv", "summary.json"):
        console.print(f"  {out / name}")


def main() -> None:  # pragma: no cover - `python -m taxgate`
    sys.exit(app())
