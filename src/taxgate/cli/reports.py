"""The reports drawn from the store: oversight, accounting for a taxpayer, the JCT figures."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from taxgate.cli.shared import DATABASE, app, console, fail, store_at
from taxgate.policy import PolicyError

report_app = typer.Typer(
    help="Reports from the store: oversight, accounting (§ 6103(p)(3)(A)), JCT (§ 6103(p)(3)(C)).",
    no_args_is_help=True,
)
app.add_typer(report_app, name="report")


@report_app.command("oversight")
def report_oversight(
    out: Path = typer.Option(
        Path("oversight-report.html"), "--out", help="The HTML file; the PDF is written beside it."
    ),
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
    csv_out: Path = typer.Option(None, "--csv", help="Also write the accounting to this CSV file."),
    letter: Path = typer.Option(
        None,
        "--letter",
        help="Also write the letter to the taxpayer (HTML, and its PDF beside it).",
    ),
    database_url: str = DATABASE,
) -> None:
    """Every request about one taxpayer and every disclosure of their information (§ 6103(p)(3)(A)):
    who asked, for what purpose, under which practice, what left and when."""
    import json

    from taxgate.render import write
    from taxgate.reports import ACCOUNTING_COLUMNS, accounting, accounting_letter
    from taxgate.response import SafeCSV

    rows = accounting(store_at(database_url), tin)
    if csv_out:
        with open(csv_out, "w", encoding="utf-8", newline="") as fh:
            writer = SafeCSV(fh)
            writer.writerow(ACCOUNTING_COLUMNS)
            writer.writerows([row[c] for c in ACCOUNTING_COLUMNS] for row in rows)
    if letter:
        write(accounting_letter(rows, tin), letter.with_suffix(""))
    if as_json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return
    table = Table(
        title=f"Accounting of requests and disclosures, TIN ending {tin[-4:]} (26 U.S.C. § 6103(p)(3)(A))"
    )
    shown = (
        "received",
        "agency",
        "official",
        "statute",
        "batch",
        "request_id",
        "about",
        "outcome",
        "disclosed",
    )
    for column in shown:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c]) for c in shown))
    console.print(table)
    console.print(
        f"{len(rows)} request(s), {sum(1 for r in rows if r['disclosed'])} disclosure(s)."
    )


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
        table.add_row(
            row["agency"],
            f"{row['requests']:,}",
            f"{row['disclosures']:,}",
            f"{row['taxpayers_disclosed']:,}",
        )
    console.print(table)
