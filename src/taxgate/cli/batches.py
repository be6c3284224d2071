"""Batches: process, replay, audit, the demo, rules and explanations."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from taxgate.cli.shared import DATABASE, USER_ERRORS, app, console, errors, fail, sign, store_at
from taxgate.domain import Outcome, ReasonCode


@app.command()
def process(
    manifest: Path = typer.Argument(..., help="The batch manifest (JSON)."),
    master: Path = typer.Option(..., "--master", help="Taxpayer master (Parquet or CSV)."),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Folder for the response (response.csv, reasons.csv, ...) and, in "
        "auditors/, what only the tax agency reads (decisions.csv, evidence.jsonl).",
    ),
    policy: Path = typer.Option(
        None, "--policy", help="Policy file or folder (default: the shipped demo policy)."
    ),
    database_url: str = typer.Option(
        None,
        "--database-url",
        help="The store (default: TAXGATE_DATABASE_URL or sqlite:///taxgate.db).",
    ),
) -> None:
    """Process one batch: intake, rules, identification, decision; record it in the store and the
    ledger (once, however often it is sent); write the response files."""
    from taxgate import pipeline

    try:
        result = pipeline.process(manifest, master, out, policy, store=store_at(database_url))
    except USER_ERRORS as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
    _print_result(result)


@app.command()
def replay(
    manifest: Path = typer.Argument(..., help="The batch manifest (JSON)."),
    master: Path = typer.Option(..., "--master", help="Taxpayer master (Parquet or CSV)."),
    out: Path = typer.Option(..., "--out", help="Folder for the reconstructed response files."),
    rule_set: str = typer.Option(
        "as-practised-2025", "--rule-set", help="The past practice to reconstruct."
    ),
    database_url: str = DATABASE,
) -> None:
    """Reconstruct in the store and the ledger what a past practice disclosed for a batch, so that
    `taxgate audit` can decide it again. Never a way to disclose: the practice is recorded as such."""
    from taxgate import pipeline

    errors.print(
        f"taxgate: replaying {manifest} under the rule set {rule_set!r}: this records what that practice "
        "disclosed; it is not a lawful disclosure path.",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    try:
        result = pipeline.process(
            manifest, master, out, store=store_at(database_url), rule_set=rule_set, replay=True
        )
    except (*USER_ERRORS, ValueError) as exc:
        fail(str(exc))
    _print_result(result)


@app.command()
def audit(
    manifest: Path = typer.Argument(
        ..., help="The manifest of a recorded batch (its rows file must be the one received)."
    ),
    master: Path = typer.Option(..., "--master", help="Taxpayer master (Parquet or CSV)."),
    out: Path = typer.Option(Path("."), "--out", help="Folder for audit-ID.csv and audit-ID.json."),
    rule_set: str = typer.Option("statute", "--rule-set", help="The rules to decide again under."),
    policy: Path = typer.Option(
        None, "--policy", help="Policy file or folder (default: the shipped policy)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    database_url: str = DATABASE,
) -> None:
    """Retroactive audit: decide every disclosure a recorded batch made again, and list (with
    reasons) those the audit's rules would not have made. The audit is ledgered."""
    import json
    from dataclasses import asdict

    from taxgate import remediation
    from taxgate.remediation import CATEGORIES, RemediationError

    try:
        store = store_at(database_url)
        result = remediation.audit(store, manifest, master, out, rule_set, policy)
        sign(store)
    except (*USER_ERRORS, RemediationError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        print(json.dumps(asdict(result)))
        return
    _print_audit(result, CATEGORIES)


def _print_audit(result, categories: dict[str, str]) -> None:
    share = lambda n, d: f"{n / d:.1%}" if d else "-"  # noqa: E731
    console.print(
        f"Audit {result.audit_id} of batch {result.batch_ref}: decided under {result.then}, "
        f"audited under {result.now}{' (as recorded before)' if result.existing else ''}.",
        soft_wrap=True,
    )
    console.print(
        f"{result.audited:,} past disclosures decided again; {result.not_made:,} "
        f"({share(result.not_made, result.audited)}) would not have been made."
    )
    table = Table(title="Why not")
    for column in ("finding", "disclosures", "what it means"):
        table.add_column(column, overflow="fold")
    for name, text in categories.items():
        if result.by_category.get(name):
            table.add_row(name, f"{result.by_category[name]:,}", text)
    console.print(table)
    tin = result.shape
    if tin["tin_path_disclosed"]:
        console.print(
            f"TIN path: {tin['tin_path_disclosed']:,} disclosed, {tin['tin_path_without_valid_address']:,} "
            f"({tin['share']:.1%}) without a valid requester address (the D.D.C.'s finding of 2026-02-26: "
            "about 42,695 of 47,289).",
            soft_wrap=True,
        )
    console.print(
        f"List: {result.findings_file}  (ledger entry {result.ledger_index})", soft_wrap=True
    )


@app.command()
def demo(
    out: Path = typer.Option(
        Path("taxgate-demo"), "--out", help="Folder for the demo world and its outputs."
    ),
    taxpayers: int = typer.Option(20_000, min=100, help="Taxpayers in the synthetic master."),
    requests: int = typer.Option(5_000, min=10, help="Requests in the batch."),
    seed: int = typer.Option(7, help="Seed for the synthetic world."),
) -> None:
    """Build the demo world (a synthetic master and a batch shaped like the 2025 datafile) and process it;
    then replay it as practised in 2025, audit that replay under the statute, open the incident, and
    write the oversight report."""
    import json

    from taxgate import pipeline, remediation
    from taxgate.remediation import CATEGORIES, list_incidents, open_incident
    from taxgate.reports.oversight import oversight
    from taxgate.synth import Mix, generate_batch, generate_master

    started = time.perf_counter()
    master_path = out / "world" / "master.parquet"
    try:
        store = store_at(None)
        with console.status("Building the synthetic master..."):
            rows, people = generate_master(taxpayers, master_path, seed=seed)
        console.print(
            f"Synthetic master: {people:,} taxpayers, {rows:,} rows (one per taxpayer per tax year)."
        )
        with console.status("Drawing a batch shaped like the 2025 datafile..."):
            manifest = generate_batch(
                master_path, out / "batch", requests, seed=seed + 1, mix=Mix.datafile_2025()
            )
        with console.status("Processing the batch under the statute..."):
            result = pipeline.process(manifest, master_path, out / "response", store=store)
        _print_result(result)

        console.rule("The same requests as the 2025 script treated them")
        raw = json.loads(manifest.read_text(encoding="utf-8"))
        replayed = manifest.with_name("manifest-as-practised-2025.json")
        replayed.write_text(
            json.dumps({**raw, "batch_ref": raw["batch_ref"] + "-as-practised-2025"}, indent=2)
            + "\n",
            encoding="utf-8",
        )
        with console.status(
            "Replaying the batch as practised in 2025 (TIN match + non-blank address)..."
        ):
            past = pipeline.process(
                replayed,
                master_path,
                out / "replay-2025",
                store=store,
                rule_set="as-practised-2025",
                replay=True,
            )
        console.print(
            f"As practised in 2025: {past.outcomes.get('DISCLOSED', 0):,} addresses disclosed "
            f"(under the statute: {result.outcomes.get('DISCLOSED', 0):,})."
        )
        with console.status("Auditing those disclosures under the statute..."):
            found = remediation.audit(store, replayed, master_path, out / "audit")
        _print_audit(found, CATEGORIES)
        incident = next((i for i in list_incidents(store) if i.audit_id == found.audit_id), None)
        if incident is None and found.not_made:
            incident = open_incident(store, found.audit_id, master_path=master_path)
        if incident is not None:
            console.print(
                f"Incident {incident.id}: a disposal request to {incident.agency} and "
                f"{incident.notices - 1:,} taxpayer notices (§ 7431) are owed; "
                f"`taxgate notices render --incident {incident.id}` writes them.",
                soft_wrap=True,
            )
        with console.status("Writing the oversight report..."):
            html, pdf = oversight(store, out / "oversight-report.html")
    except (*USER_ERRORS, ValueError) as exc:
        fail(str(exc))
    console.rule()
    console.print(
        f"Demo done in {time.perf_counter() - started:.1f} s. World: {out / 'world'}  Batch: {manifest}",
        soft_wrap=True,
    )
    console.print(
        f"Why a request went as it did: {_command()} explain REQUEST_ID --response {out / 'response'}",
        soft_wrap=True,
    )
    console.print(f"Oversight report (opens offline): {html}  PDF: {pdf}", soft_wrap=True)


@app.command()
def rules() -> None:
    """Every reason code with the statute it applies and what it means; then every rule that gives one."""
    from taxgate.domain import ReasonCode
    from taxgate.rules import all_rules

    codes = Table(title="Reason codes (the legend every response ships as reasons.csv)")
    # a code is one word, never split: the other columns wrap around it
    codes.add_column("code", no_wrap=True)
    for column in ("level", "citation", "what it means"):
        codes.add_column(column, overflow="fold")
    for code in ReasonCode:
        codes.add_row(code.value, code.level.value, code.citation, code.meaning)
    console.print(codes)
    table = Table(title="Rules (all run; every failing code is reported)")
    table.add_column("code", no_wrap=True)
    for column in ("scope", "what it checks"):
        table.add_column(column, overflow="fold")
    for rule in all_rules():
        table.add_row(rule.code.value, rule.scope, rule.explanation)
    console.print(table)
    console.print(
        "ID_* codes come from identification, HELD_BY_COURT_ORDER and NOTICE_PERIOD from court orders in "
        "force at release; the requester never sees the ID_* codes.",
        soft_wrap=True,
    )


@app.command()
def explain(
    request_id: str = typer.Argument(
        ..., help="The request to explain (its request_id in the response)."
    ),
    response: Path = typer.Option(
        None,
        "--response",
        help="The folder `taxgate process --out DIR` wrote the response "
        "into (its auditors/ folder: evidence.jsonl, decisions.csv; summary.json).",
    ),
    out: Path = typer.Option(None, "--out", hidden=True, help="Old name of --response."),
    policy: Path = typer.Option(
        None,
        "--policy",
        help="Policy file or folder the batch was judged under (default: the shipped policy).",
    ),
) -> None:
    """Why a request went as it did: the rule that decided it in words, with its citation and the
    thresholds it was held to; for an identified request, the candidate, the runner-up and how each
    field moved the match weight (also drawn as a chart, explain-ID.html, that opens offline)."""
    import csv
    import json

    from taxgate.render import to_html
    from taxgate.reports.explanation import explanation, refusal_lines, steps
    from taxgate.response import auditors

    folder = response or out
    if folder is None:
        fail("say which response: --response DIR (the folder `taxgate process --out DIR` wrote)")
    audit = auditors(folder)
    if not (audit / "decisions.csv").is_file():
        fail(
            f"no response in {folder}: run `taxgate process MANIFEST --master MASTER --out {folder}` first"
        )
    found = None
    if (audit / "evidence.jsonl").is_file():
        with open(audit / "evidence.jsonl", encoding="utf-8") as fh:
            found = next((r for r in map(json.loads, fh) if r["request_id"] == request_id), None)
    if found is None:
        with open(audit / "decisions.csv", encoding="utf-8", newline="") as fh:
            decided = [r for r in csv.DictReader(fh) if r["request_id"] == request_id]
        if not decided:
            fail(f"request {request_id!r} is not in the response in {folder}")
        for record in decided:  # a request id may repeat in a batch (each a row of its own)
            for line in refusal_lines(record):
                console.print(line, soft_wrap=True)
        return
    for code, figure in found.get("figures", {}).items():  # the figure behind a cross-batch refusal
        reason = ReasonCode(code)
        counted = figure.get("cases", figure.get("uses"))
        what = (
            "cases for the officer"
            if "cases" in figure
            else "uses of the reason text"
            if "uses" in figure
            else ""
        )
        if what:
            span = (
                f"within {figure['window_days']} days"
                if "window_days" in figure
                else "in this batch"
            )
            console.print(
                f"[bold]{request_id}[/]: {found['outcome']}, {code} ({reason.citation}): {counted:,} {what} "
                f"{span} ({figure.get('in_this_batch', counted):,} in this batch; the limit is "
                f"{figure['limit']:,}), counted since {figure.get('since', '-')}, from batch "
                f"{figure.get('first_batch', '-')}.",
                soft_wrap=True,
            )
        else:
            earlier = figure.get("request_id_answered_in") or figure.get("person_case_answered_in")
            console.print(
                f"[bold]{request_id}[/]: {found['outcome']}, {code} ({reason.citation}): "
                + (
                    f"asked before, in batch {earlier}."
                    if earlier
                    else "asked before in this batch."
                ),
                soft_wrap=True,
            )
    if "candidate" not in found:
        return
    rule = _identification_policy(folder, policy)
    document = explanation(found, rule.threshold, rule.review, rule.margin)
    console.print(f"[bold]{document.title}[/] ({document.subtitle})")
    for label, value in document.facts:
        console.print(f"{label}: {value}", soft_wrap=True)
    for line in document.sections[0].paragraphs:
        console.print(f"- {line}", soft_wrap=True)
    table = Table(
        title="Match weight, field by field (log2 Bayes factor), from the prior to the weight that decided"
    )
    for column in ("field", "compared", "level", "weight", "running total"):
        table.add_column(
            column, justify="right" if column in ("weight", "running total") else "left"
        )
    drawn = steps(found)
    table.add_row(drawn[0][0], "", "", f"{drawn[0][1]:+.1f}", f"{drawn[0][1]:.1f}")
    total = drawn[0][1]
    for (field, compared, level, weight), (_, value) in zip(document.sections[1].rows, drawn[1:]):
        total += value
        table.add_row(field, compared, level, weight, f"{total:.1f}")
    table.add_row("[bold]match weight[/]", "", "", "", f"[bold]{total:.1f}[/]")
    console.print(table)
    chart = (
        audit / f"explain-{request_id}.html"
    )  # it names TINs: beside the auditors' files, never the response
    chart.write_text(to_html(document), encoding="utf-8")
    console.print(f"Chart (opens offline): {chart}", soft_wrap=True)


def _identification_policy(folder: Path, policy_path: Path | None):
    """The identification thresholds of the policy version the batch was judged under (summary.json)."""
    import json
    from datetime import date

    from taxgate.policy import load_policies, policy_in_force

    policies = load_policies(policy_path)
    summary = folder / "summary.json"
    version = json.loads(summary.read_text()).get("policy_version") if summary.is_file() else None
    chosen = next((p for p in policies if p.recorded == version), None)
    if chosen is None:
        chosen = policy_in_force(policies, date.today())
        console.print(
            f"(policy {version or 'unknown'} not found: thresholds of {chosen.recorded}, in force today)",
            soft_wrap=True,
        )
    return chosen.identification


def _command() -> str:
    """How the user can run taxgate again from here: `taxgate` if it is on PATH, else its path
    (after `scripts/demo`, .venv/bin/taxgate, until the venv is activated)."""
    import os
    import shutil
    import sys

    found = shutil.which("taxgate")
    here = (
        Path(sys.argv[0]).resolve()
        if Path(sys.argv[0]).name == "taxgate"
        else Path(sys.executable).parent / "taxgate"
    )
    if found and Path(found).resolve() == here.resolve():
        return "taxgate"
    if not here.is_file():
        return "taxgate"
    relative = os.path.relpath(here)
    return str(here) if relative.startswith("..") else relative


def _print_result(result) -> None:
    console.print(
        f"Batch [bold]{result.batch_ref}[/]: {result.rows:,} requests ({result.malformed:,} could not be read)"
    )
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
    both = result.codes.get("ADDRESS_PLACEHOLDER", 0) and result.codes.get("ADDRESS_INCOMPLETE", 0)
    if both:
        console.print(
            'A placeholder where the street belongs ("Failed to Provide", "NA NA", a ZIP code alone) '
            "leaves no address once it is set aside, so such a request carries ADDRESS_PLACEHOLDER and "
            "ADDRESS_INCOMPLETE both; a placeholder in the unit alone would be a placeholder only.",
            soft_wrap=True,
        )
    out = Path(result.out_dir)
    console.print(f"Rows file SHA-256: {result.rows_sha256}", soft_wrap=True)
    if result.checkpoint:
        size = result.checkpoint.split("\n")[1]
        again = (
            " It had been received before: nothing was decided or ledgered twice."
            if result.resumed
            else ""
        )
        console.print(
            f"Recorded as batch {result.batch_id} in the store; ledger checkpoint signed at "
            f"{int(size):,} entries.{again}"
        )
    console.print(
        f"Policy {result.policy_version}, rules {result.rule_set_version}, model {result.model_version}"
    )
    for name in (
        "response.csv",
        "response.jsonl",
        "reasons.csv",
        "malformed_rows.csv",
        "summary.json",
        "auditors/decisions.csv",
        "auditors/evidence.jsonl",
    ):
        console.print(f"  {out / name}")
