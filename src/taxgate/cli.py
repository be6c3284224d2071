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
from taxgate.store import StoreError

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
DATABASE = typer.Option(None, "--database-url", help="The store (default: TAXGATE_DATABASE_URL or sqlite:///taxgate.db).")

USER_ERRORS = (IntakeError, MasterError, PolicyError, StoreError)


def fail(message: str) -> None:
    errors.print(f"taxgate: error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def process(
    manifest: Path = typer.Argument(..., help="The batch manifest (JSON)."),
    master: Path = typer.Option(..., "--master", help="Taxpayer master (Parquet or CSV)."),
    out: Path = typer.Option(..., "--out", help="Folder for response.csv, response.jsonl, decisions.csv."),
    policy: Path = typer.Option(None, "--policy", help="Policy file or folder (default: the shipped demo policy)."),
    database_url: str = typer.Option(None, "--database-url", help="The store (default: TAXGATE_DATABASE_URL or sqlite:///taxgate.db)."),
) -> None:
    """Process one batch: intake, rules, identification, decision; record it in the store and the
    ledger (once, however often it is sent); write the response files."""
    from taxgate.pipeline import process as run

    try:
        result = run(manifest, master, out, policy, store=_store(database_url))
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
    rule_set: str = typer.Option("as-practised-2025", "--rule-set", help="The past practice to reconstruct."),
    database_url: str = DATABASE,
) -> None:
    """Reconstruct in the store and the ledger what a past practice disclosed for a batch, so that
    `taxgate audit` can decide it again. Never a way to disclose: the practice is recorded as such."""
    from taxgate.pipeline import process as run

    errors.print(f"taxgate: replaying {manifest} under the rule set {rule_set!r}: this records what that practice "
                 "disclosed; it is not a lawful disclosure path.", markup=False, highlight=False, soft_wrap=True)
    try:
        result = run(manifest, master, out, store=_store(database_url), rule_set=rule_set, replay=True)
    except (*USER_ERRORS, ValueError) as exc:
        fail(str(exc))
    _print_result(result)


@app.command()
def audit(
    manifest: Path = typer.Argument(..., help="The manifest of a recorded batch (its rows file must be the one received)."),
    master: Path = typer.Option(..., "--master", help="Taxpayer master (Parquet or CSV)."),
    out: Path = typer.Option(Path("."), "--out", help="Folder for audit-ID.csv and audit-ID.json."),
    rule_set: str = typer.Option("statute", "--rule-set", help="The rules to decide again under."),
    policy: Path = typer.Option(None, "--policy", help="Policy file or folder (default: the shipped policy)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    database_url: str = DATABASE,
) -> None:
    """Retroactive audit: decide every disclosure a recorded batch made again, and list (with
    reasons) those the audit's rules would not have made. The audit is ledgered."""
    import json
    from dataclasses import asdict

    from taxgate.remediation import CATEGORIES, RemediationError
    from taxgate.remediation import audit as run_audit

    try:
        result = run_audit(_store(database_url), manifest, master, out, rule_set, policy)
    except (*USER_ERRORS, RemediationError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        print(json.dumps(asdict(result)))
        return
    _print_audit(result, CATEGORIES)


def _print_audit(result, categories: dict[str, str]) -> None:
    share = lambda n, d: f"{n / d:.1%}" if d else "-"  # noqa: E731
    console.print(f"Audit {result.audit_id} of batch {result.batch_ref}: decided under {result.then}, "
                  f"audited under {result.now}{' (as recorded before)' if result.existing else ''}.", soft_wrap=True)
    console.print(f"{result.audited:,} past disclosures decided again; {result.not_made:,} "
                  f"({share(result.not_made, result.audited)}) would not have been made.")
    table = Table(title="Why not")
    for column in ("finding", "disclosures", "what it means"):
        table.add_column(column, overflow="fold")
    for name, text in categories.items():
        if result.by_category.get(name):
            table.add_row(name, f"{result.by_category[name]:,}", text)
    console.print(table)
    tin = result.shape
    if tin["tin_path_disclosed"]:
        console.print(f"TIN path: {tin['tin_path_disclosed']:,} disclosed, {tin['tin_path_without_valid_address']:,} "
                      f"({tin['share']:.1%}) without a valid requester address (the D.D.C.'s finding of 2026-02-26: "
                      "about 42,695 of 47,289).", soft_wrap=True)
    console.print(f"List: {result.findings_file}  (ledger entry {result.ledger_index})", soft_wrap=True)


@app.command()
def demo(
    out: Path = typer.Option(Path("taxgate-demo"), "--out", help="Folder for the demo world and its outputs."),
    taxpayers: int = typer.Option(20_000, min=100, help="Taxpayers in the synthetic master."),
    requests: int = typer.Option(5_000, min=10, help="Requests in the batch."),
    seed: int = typer.Option(7, help="Seed for the synthetic world."),
) -> None:
    """Build the demo world (a synthetic master and a batch shaped like the 2025 datafile) and process it;
    then replay it as practised in 2025, audit that replay under the statute, open the incident, and
    write the oversight report."""
    import json

    from taxgate.pipeline import process as run
    from taxgate.remediation import CATEGORIES, audit as run_audit, list_incidents, open_incident
    from taxgate.reports.oversight import oversight
    from taxgate.synth import Mix, generate_batch, generate_master

    started = time.perf_counter()
    master_path = out / "world" / "master.parquet"
    try:
        store = _store(None)
        with console.status("Building the synthetic master..."):
            rows, people = generate_master(taxpayers, master_path, seed=seed)
        console.print(f"Synthetic master: {people:,} taxpayers, {rows:,} rows (one per taxpayer per tax year).")
        with console.status("Drawing a batch shaped like the 2025 datafile..."):
            manifest = generate_batch(master_path, out / "batch", requests, seed=seed + 1, mix=Mix.datafile_2025())
        with console.status("Processing the batch under the statute..."):
            result = run(manifest, master_path, out / "response", store=store)
        _print_result(result)

        console.rule("The same requests as the 2025 script treated them")
        raw = json.loads(manifest.read_text(encoding="utf-8"))
        replayed = manifest.with_name("manifest-as-practised-2025.json")
        replayed.write_text(json.dumps({**raw, "batch_ref": raw["batch_ref"] + "-as-practised-2025"}, indent=2) + "\n",
                            encoding="utf-8")
        with console.status("Replaying the batch as practised in 2025 (TIN match + non-blank address)..."):
            past = run(replayed, master_path, out / "replay-2025", store=store, rule_set="as-practised-2025", replay=True)
        console.print(f"As practised in 2025: {past.outcomes.get('DISCLOSED', 0):,} addresses disclosed "
                      f"(under the statute: {result.outcomes.get('DISCLOSED', 0):,}).")
        with console.status("Auditing those disclosures under the statute..."):
            found = run_audit(store, replayed, master_path, out / "audit")
        _print_audit(found, CATEGORIES)
        incident = next((i for i in list_incidents(store) if i.audit_id == found.audit_id), None)
        if incident is None and found.not_made:
            incident = open_incident(store, found.audit_id)
        if incident is not None:
            console.print(f"Incident {incident.id}: a disposal request to {incident.agency} and "
                          f"{incident.notices - 1:,} taxpayer notices (§ 7431) are owed; "
                          f"`taxgate notices render --incident {incident.id}` writes them.", soft_wrap=True)
        with console.status("Writing the oversight report..."):
            html, pdf = oversight(store, out / "oversight-report.html")
    except (*USER_ERRORS, ValueError) as exc:
        fail(str(exc))
    console.rule()
    console.print(f"Demo done in {time.perf_counter() - started:.1f} s. World: {out / 'world'}  Batch: {manifest}",
                  soft_wrap=True)
    console.print(f"Why a request went as it did: taxgate explain REQUEST_ID --out {out / 'response'}", soft_wrap=True)
    console.print(f"Oversight report (opens offline): {html}  PDF: {pdf}", soft_wrap=True)


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


_not_yet("serve", 6)

ledger_app = typer.Typer(help="The tamper-evident ledger: verify, checkpoints, proofs.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
report_app = typer.Typer(help="Reports from the store: oversight, accounting (§ 6103(p)(3)(A)), JCT (§ 6103(p)(3)(C)).",
                         no_args_is_help=True)
app.add_typer(report_app, name="report")


def _store(url: str | None):
    from taxgate.store import StoreError, open_store

    try:
        return open_store(url)
    except StoreError as exc:
        fail(str(exc))


def _verifier_key(key: str | None) -> str:
    """A verifier key given as text, or read from a file (default: the signing key's .pub)."""
    import os

    if key and "+" in key and not Path(key).exists():
        return key
    path = Path(key or Path(os.environ.get("TAXGATE_LEDGER_KEY") or "taxgate-ledger.key").with_suffix(".pub"))
    if not path.is_file():
        fail(f"no verifier key at {path}: give --key NAME+ID+KEY or a file holding it")
    return path.read_text(encoding="utf-8").strip()


@ledger_app.command("verify")
def ledger_verify(
    key: str = typer.Option(None, "--key", help="Verifier key (text or file; default: taxgate-ledger.pub)."),
    database_url: str = DATABASE,
) -> None:
    """Recompute the whole ledger from its entries; name the first bad entry (exit 1) if any."""
    from taxgate.ledger import Ledger
    from taxgate.ledger.record import verify_records

    store = _store(database_url)
    ledger = Ledger(store)
    started = time.perf_counter()
    problem = next(iter(ledger.verify(_verifier_key(key))), None) or next(iter(verify_records(store)), None)
    with store.session() as session:
        size, note = ledger.size(session), ledger.latest_checkpoint(session)
    if problem is not None:
        errors.print(f"taxgate: ledger FAILED verification at entry {problem.index}: {problem.message}",
                     markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    signed = int(note.split("\n")[1]) if note else 0
    console.print(f"Ledger verified: {size:,} entries, every checkpoint signature and root recomputed, "
                  "every stored decision and disclosure matched to its entry "
                  f"({time.perf_counter() - started:.1f} s).")
    if size > signed:
        console.print(f"{size - signed:,} entries after the latest checkpoint (size {signed:,}) are not signed yet: "
                      "run `taxgate ledger checkpoint`.")


@ledger_app.command("checkpoint")
def ledger_checkpoint(database_url: str = DATABASE) -> None:
    """Sign the current tree head and print the checkpoint (C2SP signed note)."""
    from taxgate.ledger import Ledger, LedgerError, load_signer

    store = _store(database_url)
    try:
        signer = load_signer()
    except LedgerError as exc:
        fail(str(exc))
    with store.session.begin() as session:
        note = Ledger(store).checkpoint(session, signer)
    sys.stdout.write(note)


@ledger_app.command("prove")
def ledger_prove(
    index: int = typer.Argument(..., help="The entry's index."),
    size: int = typer.Option(None, "--size", help="Tree size to prove against (default: the latest checkpoint)."),
    database_url: str = DATABASE,
) -> None:
    """Print an inclusion proof (JSON) for one entry, with the checkpoint it proves against."""
    import base64
    import json

    from taxgate.ledger import Ledger, LedgerError
    from taxgate.ledger.checkpoint import parse

    store = _store(database_url)
    ledger = Ledger(store)
    with store.session() as session:
        note = ledger.latest_checkpoint(session)
        if size is None and note is None:
            fail("no checkpoint yet: run `taxgate ledger checkpoint` first")
        size = parse(note).size if size is None else size
        try:
            proof = ledger.prove(session, index, size)
            entry = ledger.entry(session, index)
        except LedgerError as exc:
            fail(str(exc))
        from taxgate.store.models import Checkpoint as CheckpointRow

        row = session.get(CheckpointRow, size)
    print(json.dumps({"index": index, "size": size, "entry": entry.decode(),
                      "proof": [base64.b64encode(h).decode() for h in proof],
                      "checkpoint": row.note if row else None}, indent=2, ensure_ascii=False))


@ledger_app.command("consistency")
def ledger_consistency(
    old: int = typer.Argument(..., help="The older tree size."),
    new: int = typer.Argument(None, help="The newer tree size (default: the ledger's size)."),
    database_url: str = DATABASE,
) -> None:
    """Print a consistency proof (JSON) that the tree of size NEW extends the tree of size OLD."""
    import base64
    import json

    from taxgate.ledger import Ledger, LedgerError

    store = _store(database_url)
    ledger = Ledger(store)
    with store.session() as session:
        try:
            new = ledger.size(session) if new is None else new
            proof = ledger.consistency(session, old, new)
            roots = ledger.root(session, old), ledger.root(session, new)
        except LedgerError as exc:
            fail(str(exc))
    print(json.dumps({"old": old, "new": new, "old_root": base64.b64encode(roots[0]).decode(),
                      "new_root": base64.b64encode(roots[1]).decode(),
                      "proof": [base64.b64encode(h).decode() for h in proof]}, indent=2))


@ledger_app.command("check")
def ledger_check(
    proof_file: Path = typer.Argument(..., help="A proof from `taxgate ledger prove` (JSON)."),
    key: str = typer.Option(..., "--key", help="The ledger's verifier key (text or file)."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="The checkpoint to trust (default: the one in the proof)."),
) -> None:
    """Check an inclusion proof offline: needs only the proof, a checkpoint and the public key."""
    import base64
    import binascii
    import json

    from taxgate.ledger import merkle
    from taxgate.ledger.checkpoint import CheckpointError, verify

    try:
        data = json.loads(proof_file.read_text(encoding="utf-8"))
        note = checkpoint.read_text(encoding="utf-8") if checkpoint else data["checkpoint"]
        trusted = verify(note, _verifier_key(key))
        if trusted.size != data["size"]:
            fail(f"the proof is for tree size {data['size']}, the checkpoint for {trusted.size}")
        merkle.verify_inclusion(data["index"], data["size"], merkle.leaf_hash(data["entry"].encode()),
                                [base64.b64decode(h, validate=True) for h in data["proof"]], trusted.root)
    except (OSError, ValueError, KeyError, TypeError, binascii.Error) as exc:
        if isinstance(exc, (CheckpointError, merkle.ProofError)):
            errors.print(f"taxgate: proof REJECTED: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(1)
        fail(f"cannot read the proof: {exc}")
    console.print(f"Proof checked: entry {data['index']} is in the ledger of {trusted.size:,} entries signed by "
                  f"{trusted.origin}.")


orders_app = typer.Typer(help="Court orders and agreement terms: they hold disclosures, never refuse.",
                         no_args_is_help=True)
app.add_typer(orders_app, name="orders")


@orders_app.command("add")
def orders_add(
    order_file: Path = typer.Argument(..., help="The order as JSON (DESIGN.md \"Court orders\")."),
    database_url: str = DATABASE,
) -> None:
    """Add an order (ledgered). A stay in force holds every matching disclosure from now on."""
    import json

    from taxgate.notices import add_order_with_notices
    from taxgate.orders import OrderError

    try:
        raw = json.loads(order_file.read_text(encoding="utf-8"))
        order = add_order_with_notices(_store(database_url), raw)
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {order_file}")
    except json.JSONDecodeError as exc:
        fail(f"{order_file.name} is not valid JSON: {exc.msg} (line {exc.lineno})")
    except OrderError as exc:
        fail(str(exc))
    console.print(f"Order {order.id} added: {order.kind}, {order.court} {order.docket}, in force from "
                  f"{order.effective_from} (ledger entry {order.ledger_index}).")


@orders_app.command("list")
def orders_list(
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
    database_url: str = DATABASE,
) -> None:
    """Every order, in force or not."""
    import json
    from dataclasses import asdict
    from datetime import date

    from taxgate.orders import list_orders

    if as_json:
        for o in list_orders(_store(database_url)):
            print(json.dumps({**asdict(o), "in_force": o.in_force(date.today())}, default=str))
        return
    table = Table(title="Orders")
    for column in ("id", "kind", "court", "docket", "agency", "statutes", "from", "to", "hours", "state"):
        table.add_column(column)
    today = date.today()
    for o in list_orders(_store(database_url)):
        state = f"lifted {o.lifted_at.date()}" if o.lifted_at else ("in force" if o.in_force(today) else "not in force")
        table.add_row(str(o.id), o.kind, o.court, o.docket, o.agency or "any", "; ".join(o.statutes) or "all",
                      str(o.effective_from), str(o.effective_to or ""), str(o.hours or ""), state)
    console.print(table)


@orders_app.command("lift")
def orders_lift(
    order_id: int = typer.Argument(..., help="The order's id (see `taxgate orders list`)."),
    out: Path = typer.Option(Path("."), "--out", help="Folder for the released items' response file."),
    database_url: str = DATABASE,
) -> None:
    """Lift an order (ledgered); every item it held that nothing else holds is released now, once."""
    from taxgate.ledger.record import release_held
    from taxgate.orders import OrderError, lift_order

    store = _store(database_url)
    try:
        lift_order(store, order_id)
    except OrderError as exc:
        fail(str(exc))
    console.print(f"Order {order_id} lifted.")
    _write_released(release_held(store), out / f"released-after-order-{order_id}.csv")


@orders_app.command("release")
def orders_release(
    out: Path = typer.Option(Path("."), "--out", help="Folder for the released items' response file."),
    watch: bool = typer.Option(False, "--watch", help="Keep running: decide held items again every --every seconds."),
    every: float = typer.Option(60.0, "--every", min=1.0, help="With --watch: seconds between rounds."),
    database_url: str = DATABASE,
) -> None:
    """Decide held items again now: release, once, each one no order holds any more (a notice
    period run out, an order lapsed). With --watch it does so on a timer until stopped; several
    watchers, or a watcher and a lift, still release each item once (a locked row per item)."""
    from datetime import UTC, datetime

    from taxgate.ledger.record import release_held

    store = _store(database_url)
    if not watch:
        _write_released(release_held(store), out / "released.csv")
        return
    console.print(f"Watching held items every {every:g} s; Ctrl-C stops.")
    try:
        while True:
            released = release_held(store)
            if released:
                stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
                _write_released(released, out / f"released-{stamp}.csv")
            time.sleep(every)
    except KeyboardInterrupt:
        console.print("Stopped.")


def _write_released(released: list[dict], path: Path) -> None:
    import csv

    console.print(f"{len(released):,} held item(s) released.")
    if released:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(released[0]))
            writer.writeheader()
            writer.writerows(released)
        console.print(f"  {path}")


notices_app = typer.Typer(help="Notices owed under court orders: what is due, what is overdue.", no_args_is_help=True)
app.add_typer(notices_app, name="notices")


@notices_app.command("due")
def notices_due(
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
    database_url: str = DATABASE,
) -> None:
    """Every notice not yet sent, with its due time; overdue ones first."""
    import json
    from dataclasses import asdict
    from datetime import UTC, datetime

    from taxgate.notices import list_notices

    now = datetime.now(UTC)
    notices = sorted(list_notices(_store(database_url), unsent_only=True), key=lambda n: (not n.overdue(now), n.due_at))
    if as_json:
        for n in notices:
            print(json.dumps({**asdict(n), "overdue": n.overdue(now)}, default=str, ensure_ascii=False))
        return
    table = Table(title="Notices due")
    for column in ("id", "kind", "recipient", "batch", "order", "due", "state"):
        table.add_column(column)
    for n in notices:
        table.add_row(str(n.id), n.kind, n.recipient, str(n.batch_id or ""), str(n.order_id or ""),
                      n.due_at.isoformat(timespec="minutes"), "OVERDUE" if n.overdue(now) else "due")
    console.print(table)
    console.print(f"{len(notices)} notice(s) not sent, {sum(n.overdue(now) for n in notices)} overdue.")


@notices_app.command("sent")
def notices_sent(
    notice_ids: list[int] = typer.Argument(None, help="The notices' ids (see `taxgate notices due`)."),
    incident: int = typer.Option(None, "--incident", help="Every unsent notice of this incident."),
    kind: str = typer.Option(None, "--kind", help="With --incident: only this kind (taxpayer, disposal_request)."),
    database_url: str = DATABASE,
) -> None:
    """Record that notices were sent (ledgered, once each); a pre-transfer notice starts its period."""
    from taxgate.notices import NoticeError, list_notices, mark_sent

    store = _store(database_url)
    ids = list(notice_ids or [])
    if incident is not None:
        ids += [n.id for n in list_notices(store, unsent_only=True, incident_id=incident, kind=kind)]
    if not ids:
        fail("name the notices: IDs, or --incident ID (nothing unsent matched)")
    try:
        sent = mark_sent(store, ids)
    except NoticeError as exc:
        fail(str(exc))
    for notice in sent[:20]:
        console.print(f"Notice {notice.id} ({notice.kind} to {notice.recipient}) recorded as sent "
                      f"{notice.sent_at.isoformat(timespec='seconds')}.")
    if len(sent) > 20:
        console.print(f"... and {len(sent) - 20:,} more ({len(sent):,} in all).")


@notices_app.command("render")
def notices_render(
    notice_ids: list[int] = typer.Argument(None, help="The notices' ids."),
    incident: int = typer.Option(None, "--incident", help="Every notice of this incident."),
    out: Path = typer.Option(Path("notices"), "--out", help="Folder for notice-ID.html and notice-ID.pdf."),
    database_url: str = DATABASE,
) -> None:
    """Render notices as HTML and PDF documents, ready to send."""
    from taxgate.notices import list_notices
    from taxgate.notices.documents import write_notice

    store = _store(database_url)
    notices = list_notices(store, incident_id=incident, ids=list(notice_ids) if notice_ids else None)
    if not notices:
        fail("no such notices: give IDs or --incident ID (see `taxgate notices due`)")
    for n in notices:
        write_notice(n, out)
    console.print(f"{len(notices):,} notice(s) rendered in {out} (HTML and PDF).")


incidents_app = typer.Typer(help="Disclosures found unlawful: disposal requests and taxpayer notices, tracked.",
                            no_args_is_help=True)
app.add_typer(incidents_app, name="incidents")


@incidents_app.command("open")
def incidents_open(
    audit_id: int = typer.Argument(..., help="The audit whose findings the incident covers."),
    database_url: str = DATABASE,
) -> None:
    """Open an incident for an audit's findings: a disposal request to the recipient and a notice to
    each taxpayer (26 U.S.C. § 7431), with due times; all ledgered."""
    from taxgate.remediation import RemediationError, open_incident

    try:
        status = open_incident(_store(database_url), audit_id)
    except (RemediationError, PolicyError) as exc:
        fail(str(exc))
    console.print(f"Incident {status.id} opened for audit {audit_id}: {status.notices:,} notice(s) owed "
                  f"(1 disposal request to {status.agency}, {status.notices - 1:,} taxpayer notices). "
                  "See `taxgate notices due`.", soft_wrap=True)


@incidents_app.command("certify")
def incidents_certify(
    incident_id: int = typer.Argument(...),
    by: str = typer.Option(..., "--by", help="Who certified the disposal for the recipient (name, title)."),
    database_url: str = DATABASE,
) -> None:
    """Record the recipient's certification that it disposed of the records (ledgered)."""
    from taxgate.remediation import RemediationError, certify_disposal

    try:
        status = certify_disposal(_store(database_url), incident_id, by)
    except RemediationError as exc:
        fail(str(exc))
    console.print(f"Incident {incident_id}: disposal certified by {status.disposal_certified_by}. "
                  + ("Closed." if status.closed_at else f"{status.notices - status.notices_sent:,} notice(s) still to send."))


@incidents_app.command("list")
def incidents_list(
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
    database_url: str = DATABASE,
) -> None:
    """Every incident and how far it is from closed."""
    import json
    from dataclasses import asdict

    from taxgate.remediation import list_incidents

    incidents = list_incidents(_store(database_url))
    if as_json:
        for i in incidents:
            print(json.dumps(asdict(i), default=str))
        return
    table = Table(title="Incidents")
    for column in ("id", "audit", "agency", "opened", "notices sent", "disposal certified", "state"):
        table.add_column(column)
    for i in incidents:
        table.add_row(str(i.id), str(i.audit_id), i.agency, i.opened_at.date().isoformat(), f"{i.notices_sent}/{i.notices}",
                      i.disposal_certified_by or "no", "closed" if i.closed_at else "open")
    console.print(table)


@report_app.command("oversight")
def report_oversight(
    out: Path = typer.Option(Path("oversight-report.html"), "--out", help="The HTML file; the PDF is written beside it."),
    database_url: str = DATABASE,
) -> None:
    """The oversight report: one self-contained HTML file and a PDF, with charts, drawn from a ledger
    checkpoint signed now."""
    from taxgate.ledger import LedgerError
    from taxgate.reports.oversight import oversight

    try:
        html, pdf = oversight(_store(database_url), out)
    except (LedgerError, PolicyError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {exc.filename or out}")
    console.print(f"Oversight report: {html}  (PDF: {pdf})", soft_wrap=True)


@report_app.command("accounting")
def report_accounting(
    tin: str = typer.Option(..., "--tin", help="The taxpayer's TIN."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
    database_url: str = DATABASE,
) -> None:
    """Every request about one taxpayer and every disclosure of their information."""
    import json

    from taxgate.reports import accounting

    rows = accounting(_store(database_url), tin)
    if as_json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return
    table = Table(title=f"Accounting of requests and disclosures, TIN ending {tin[-4:]} (26 U.S.C. § 6103(p)(3)(A))")
    for column in ("received", "agency", "request_id", "about", "outcome", "disclosed_item", "disclosed", "ledger_index"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c]) for c in ("received", "agency", "request_id", "about", "outcome",
                                               "disclosed_item", "disclosed", "ledger_index")))
    console.print(table)
    console.print(f"{len(rows)} request(s), {sum(1 for r in rows if r['disclosed'])} disclosure(s).")


@report_app.command("jct")
def report_jct(
    year: int = typer.Option(..., "--year", help="Calendar year."),
    database_url: str = DATABASE,
) -> None:
    """The yearly figures for the Joint Committee on Taxation, per agency (§ 6103(p)(3)(C))."""
    from taxgate.reports import jct

    rows = jct(_store(database_url), year)
    table = Table(title=f"Disclosures under § 6103(i)(2), {year} (26 U.S.C. § 6103(p)(3)(C))")
    for column in ("agency", "requests", "disclosures", "taxpayers_disclosed"):
        table.add_column(column, justify="left" if column == "agency" else "right")
    for row in rows:
        table.add_row(row["agency"], f"{row['requests']:,}", f"{row['disclosures']:,}", f"{row['taxpayers_disclosed']:,}")
    console.print(table)


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
    if result.checkpoint:
        size = result.checkpoint.split("\n")[1]
        again = " It had been received before: nothing was decided or ledgered twice." if result.resumed else ""
        console.print(f"Recorded as batch {result.batch_id} in the store; ledger checkpoint signed at {int(size):,} entries.{again}")
    console.print(f"Policy {result.policy_version}, rules {result.rule_set_version}, model {result.model_version}")
    for name in ("response.csv", "response.jsonl", "decisions.csv", "evidence.jsonl", "malformed_rows.csv", "summary.json"):
        console.print(f"  {out / name}")


def main() -> None:  # pragma: no cover - `python -m taxgate`
    sys.exit(app())
