"""Court orders, notices and incidents."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from taxgate.cli.shared import DATABASE, app, console, fail, sign, store_at
from taxgate.policy import PolicyError

orders_app = typer.Typer(
    help="Court orders and agreement terms: they hold disclosures, never refuse.",
    no_args_is_help=True,
)
app.add_typer(orders_app, name="orders")


@orders_app.command("add")
def orders_add(
    order_file: Path = typer.Argument(
        ..., help='The order as JSON (docs/DESIGN.md "Court orders").'
    ),
    database_url: str = DATABASE,
) -> None:
    """Add an order (ledgered). A stay in force holds every matching disclosure from now on."""
    import json

    from taxgate.notices import add_order_with_notices
    from taxgate.orders import OrderError
    from taxgate.policy import known_agencies, load_policies

    try:
        raw = json.loads(order_file.read_text(encoding="utf-8"))
        store = store_at(database_url)
        # scoped only to an agency the policy knows: "DHS ICE" for DHS-ICE would match nothing
        order = add_order_with_notices(
            store, raw, known_agencies(load_policies())
        )  # signed at once
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {order_file}")
    except json.JSONDecodeError as exc:
        fail(f"{order_file.name} is not valid JSON: {exc.msg} (line {exc.lineno})")
    except OrderError as exc:
        fail(str(exc))
    console.print(
        f"Order {order.id} added: {order.kind}, {order.court} {order.docket}, in force from "
        f"{order.effective_from} (ledger entry {order.ledger_index})."
    )


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
        for o in list_orders(store_at(database_url)):
            print(json.dumps({**asdict(o), "in_force": o.in_force(date.today())}, default=str))
        return
    table = Table(title="Orders")
    for column in (
        "id",
        "kind",
        "court",
        "docket",
        "agency",
        "statutes",
        "from",
        "to",
        "hours",
        "state",
    ):
        table.add_column(column)
    today = date.today()
    for o in list_orders(store_at(database_url)):
        state = (
            f"lifted {o.lifted_at.date()}"
            if o.lifted_at
            else ("in force" if o.in_force(today) else "not in force")
        )
        table.add_row(
            str(o.id),
            o.kind,
            o.court,
            o.docket,
            o.agency or "any",
            "; ".join(o.statutes) or "all",
            str(o.effective_from),
            str(o.effective_to or ""),
            str(o.hours or ""),
            state,
        )
    console.print(table)


@orders_app.command("lift")
def orders_lift(
    order_id: int = typer.Argument(..., help="The order's id (see `taxgate orders list`)."),
    authority: str = typer.Option(
        ..., "--authority", help="The court's order that ends it (docket entry, date)."
    ),
    reason: str = typer.Option(..., "--reason", help="Why, in words (at least 10 characters)."),
    by: str = typer.Option(..., "--by", help="Who lifts it (name, title)."),
    out: Path = typer.Option(
        Path("."), "--out", help="Folder for the released items' response file."
    ),
    database_url: str = DATABASE,
) -> None:
    """Lift an order (ledgered with who, on what authority and why). Lifting is final: every item
    it held that nothing else holds is released now, once, for good."""
    from taxgate.orders import OrderError, lift_order
    from taxgate.release import release_held

    store = store_at(database_url)
    try:
        lift_order(store, order_id, by=by, authority=authority, reason=reason)
    except OrderError as exc:
        fail(str(exc))
    console.print(f"Order {order_id} lifted.")
    _write_released(release_held(store), out / f"released-after-order-{order_id}.csv")
    sign(store)


@orders_app.command("release")
def orders_release(
    out: Path = typer.Option(
        Path("."), "--out", help="Folder for the released items' response file."
    ),
    watch: bool = typer.Option(
        False, "--watch", help="Keep running: decide held items again every --every seconds."
    ),
    every: float = typer.Option(
        60.0, "--every", min=1.0, help="With --watch: seconds between rounds."
    ),
    database_url: str = DATABASE,
) -> None:
    """Decide held items again now: release, once, each one no order holds any more (a notice
    period run out, an order lapsed). With --watch it does so on a timer until stopped; several
    watchers, or a watcher and a lift, still release each item once (a locked row per item)."""
    from datetime import UTC, datetime

    from taxgate.release import release_held

    store = store_at(database_url)
    if not watch:
        _write_released(release_held(store), out / "released.csv")
        sign(store)
        return
    console.print(f"Watching held items every {every:g} s; Ctrl-C stops.")
    try:
        while True:
            released = release_held(store)
            if released:
                sign(store)
                stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
                _write_released(released, out / f"released-{stamp}.csv")
            time.sleep(every)
    except KeyboardInterrupt:
        console.print("Stopped.")


def _write_released(released: list[dict], path: Path) -> None:
    from taxgate.response import SafeCSV

    console.print(f"{len(released):,} held item(s) released.")
    if released:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = SafeCSV(fh)
            writer.writerow(list(released[0]))
            writer.writerows(r.values() for r in released)
        console.print(f"  {path}")


notices_app = typer.Typer(
    help="Notices owed to courts, recipients and taxpayers: what is due, what is overdue.",
    no_args_is_help=True,
)
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
    notices = sorted(
        list_notices(store_at(database_url), unsent_only=True),
        key=lambda n: (not n.overdue(now), n.due_at),
    )
    if as_json:
        for n in notices:
            print(
                json.dumps(
                    {**asdict(n), "overdue": n.overdue(now)}, default=str, ensure_ascii=False
                )
            )
        return
    table = Table(title="Notices due")
    for column in ("id", "kind", "recipient", "batch", "order", "due", "state"):
        table.add_column(column)
    for n in notices:
        table.add_row(
            str(n.id),
            n.kind,
            n.recipient,
            str(n.batch_id or ""),
            str(n.order_id or ""),
            n.due_at.isoformat(timespec="minutes"),
            "OVERDUE" if n.overdue(now) else "due",
        )
    console.print(table)
    console.print(
        f"{len(notices)} notice(s) not sent, {sum(n.overdue(now) for n in notices)} overdue."
    )


@notices_app.command("sent")
def notices_sent(
    notice_ids: list[int] = typer.Argument(
        None, help="The notices' ids (see `taxgate notices due`)."
    ),
    incident: int = typer.Option(None, "--incident", help="Every unsent notice of this incident."),
    kind: str = typer.Option(
        None, "--kind", help="With --incident: only this kind (taxpayer, disposal_request)."
    ),
    database_url: str = DATABASE,
) -> None:
    """Record that notices were sent (ledgered, once each); a pre-transfer notice starts its period."""
    from taxgate.notices import NoticeError, list_notices, mark_sent

    store = store_at(database_url)
    ids = list(notice_ids or [])
    if incident is not None:
        ids += [
            n.id for n in list_notices(store, unsent_only=True, incident_id=incident, kind=kind)
        ]
    if not ids:
        fail("name the notices: IDs, or --incident ID (nothing unsent matched)")
    try:
        sent = mark_sent(store, ids)
        sign(store)
    except NoticeError as exc:
        fail(str(exc))
    for notice in sent[:20]:
        console.print(
            f"Notice {notice.id} ({notice.kind} to {notice.recipient}) recorded as sent "
            f"{notice.sent_at.isoformat(timespec='seconds')}."
        )
    if len(sent) > 20:
        console.print(f"... and {len(sent) - 20:,} more ({len(sent):,} in all).")


@notices_app.command("render")
def notices_render(
    notice_ids: list[int] = typer.Argument(None, help="The notices' ids."),
    incident: int = typer.Option(None, "--incident", help="Every notice of this incident."),
    out: Path = typer.Option(
        Path("notices"), "--out", help="Folder for notice-ID.html and notice-ID.pdf."
    ),
    database_url: str = DATABASE,
) -> None:
    """Render notices as HTML and PDF documents, ready to send."""
    from taxgate.notices import list_notices
    from taxgate.notices.documents import write_notice

    store = store_at(database_url)
    notices = list_notices(
        store, incident_id=incident, ids=list(notice_ids) if notice_ids else None
    )
    if not notices:
        fail("no such notices: give IDs or --incident ID (see `taxgate notices due`)")
    for n in notices:
        write_notice(n, out)
    console.print(f"{len(notices):,} notice(s) rendered in {out} (HTML and PDF).")


incidents_app = typer.Typer(
    help="Disclosures found unlawful: disposal requests and taxpayer notices, tracked.",
    no_args_is_help=True,
)
app.add_typer(incidents_app, name="incidents")


@incidents_app.command("open")
def incidents_open(
    audit_id: int = typer.Argument(..., help="The audit whose findings the incident covers."),
    master: Path = typer.Option(
        None,
        "--master",
        help="The taxpayer master: each notice is addressed to the "
        'taxpayer by the name on their latest record (without it: "To the taxpayer").',
    ),
    database_url: str = DATABASE,
) -> None:
    """Open an incident for an audit's findings: a disposal request to the recipient and a notice to
    each taxpayer (26 U.S.C. § 7431), with due times; all ledgered."""
    from taxgate.remediation import RemediationError, open_incident

    try:
        store = store_at(database_url)
        status = open_incident(store, audit_id, master_path=master)
        sign(store)
    except (RemediationError, PolicyError) as exc:
        fail(str(exc))
    console.print(
        f"Incident {status.id} opened for audit {audit_id}: {status.notices:,} notice(s) owed "
        f"(1 disposal request to {status.agency}, {status.notices - 1:,} taxpayer notices). "
        "See `taxgate notices due`.",
        soft_wrap=True,
    )


@incidents_app.command("certify")
def incidents_certify(
    incident_id: int = typer.Argument(...),
    by: str = typer.Option(
        ..., "--by", help="Who certified the disposal for the recipient (name, title)."
    ),
    database_url: str = DATABASE,
) -> None:
    """Record the recipient's certification that it disposed of the records (ledgered)."""
    from taxgate.remediation import RemediationError, certify_disposal

    try:
        store = store_at(database_url)
        status = certify_disposal(store, incident_id, by)
        sign(store)
    except RemediationError as exc:
        fail(str(exc))
    console.print(
        f"Incident {incident_id}: disposal certified by {status.disposal_certified_by}. "
        + (
            "Closed."
            if status.closed_at
            else f"{status.notices - status.notices_sent:,} notice(s) still to send."
        )
    )


@incidents_app.command("list")
def incidents_list(
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
    database_url: str = DATABASE,
) -> None:
    """Every incident and how far it is from closed."""
    import json
    from dataclasses import asdict

    from taxgate.remediation import list_incidents

    incidents = list_incidents(store_at(database_url))
    if as_json:
        for i in incidents:
            print(json.dumps(asdict(i), default=str))
        return
    table = Table(title="Incidents")
    for column in (
        "id",
        "audit",
        "agency",
        "opened",
        "notices sent",
        "disposal certified",
        "state",
    ):
        table.add_column(column)
    for i in incidents:
        table.add_row(
            str(i.id),
            str(i.audit_id),
            i.agency,
            i.opened_at.date().isoformat(),
            f"{i.notices_sent}/{i.notices}",
            i.disposal_certified_by or "no",
            "closed" if i.closed_at else "open",
        )
    console.print(table)
