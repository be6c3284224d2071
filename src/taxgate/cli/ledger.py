"""The ledger and the reports drawn from the store."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer
from rich.table import Table

from taxgate.cli._common import DATABASE, app, console, errors, fail, store_at
from taxgate.policy import PolicyError

ledger_app = typer.Typer(help="The tamper-evident ledger: verify, checkpoints, proofs.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
report_app = typer.Typer(help="Reports from the store: oversight, accounting (§ 6103(p)(3)(A)), JCT (§ 6103(p)(3)(C)).",
                         no_args_is_help=True)
app.add_typer(report_app, name="report")


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

    store = store_at(database_url)
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

    store = store_at(database_url)
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
    import json

    from taxgate.ledger import LedgerError, inclusion_proof

    try:
        proof = inclusion_proof(store_at(database_url), index, size)
    except LedgerError as exc:
        fail(str(exc))
    print(json.dumps(proof, indent=2, ensure_ascii=False))


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

    store = store_at(database_url)
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
    import binascii
    import json

    from taxgate.ledger import check_proof, merkle
    from taxgate.ledger.checkpoint import CheckpointError

    try:
        data = json.loads(proof_file.read_text(encoding="utf-8"))
        trusted = check_proof(data, _verifier_key(key), checkpoint.read_text(encoding="utf-8") if checkpoint else None)
    except (OSError, ValueError, KeyError, TypeError, binascii.Error) as exc:
        if isinstance(exc, (CheckpointError, merkle.ProofError)):
            errors.print(f"taxgate: proof REJECTED: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(1)
        fail(f"cannot read the proof: {exc}")
    console.print(f"Proof checked: entry {data['index']} is in the ledger of {trusted.size:,} entries signed by "
                  f"{trusted.origin}.")


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
        html, pdf = oversight(store_at(database_url), out)
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

    rows = accounting(store_at(database_url), tin)
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

    rows = jct(store_at(database_url), year)
    table = Table(title=f"Disclosures under § 6103(i)(2), {year} (26 U.S.C. § 6103(p)(3)(C))")
    for column in ("agency", "requests", "disclosures", "taxpayers_disclosed"):
        table.add_column(column, justify="left" if column == "agency" else "right")
    for row in rows:
        table.add_row(row["agency"], f"{row['requests']:,}", f"{row['disclosures']:,}", f"{row['taxpayers_disclosed']:,}")
    console.print(table)

