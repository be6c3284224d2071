"""Court orders as received (recorded and lifted by an officer, ledgered) and the notices they
make owed; read by officers, court monitors and auditors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from taxgate.accounts import Principal
from taxgate.notices import NOTICE_KINDS, add_order_with_notices, documents, list_notices
from taxgate.orders import OrderError, lift_order, list_orders
from taxgate.policy import known_agencies
from taxgate.release import lift_preview, release_held
from taxgate.render import policy, to_html, to_pdf
from taxgate.service.access import allow, page, reading
from taxgate.service.deps import ERRORS, Id, State, iso, state_of
from taxgate.service.pages import PAGE_SIZE, Page, Paging, csv_download, done, render

api = APIRouter(prefix="/api", responses=ERRORS)
pages = APIRouter(include_in_schema=False)


def order_view(order) -> dict:
    return {
        "id": order.id,
        "kind": order.kind,
        "court": order.court,
        "docket": order.docket,
        "effective_from": order.effective_from.isoformat(),
        "effective_to": order.effective_to.isoformat() if order.effective_to else None,
        "hours": order.hours,
        "agency": order.agency,
        "statutes": list(order.statutes),
        "notify": list(order.notify),
        "lifted": iso(order.lifted_at),
        "ledger_index": order.ledger_index,
        "recorded": iso(order.added_at),
    }


@api.get("/orders", summary="Court orders, in force or not")
def get_orders(
    request: Request, state: State, user: Principal = allow("officer", "court", "auditor")
) -> dict:
    return {"orders": [order_view(o) for o in list_orders(state.store)]}


@api.post(
    "/orders",
    status_code=201,
    summary="Record a court order (ledgered; its notices are owed at once)",
    responses={422: {"description": "Not a valid order"}},
)
def post_order(
    request: Request,
    state: State,
    order: Annotated[
        dict,
        Body(
            examples=[
                {
                    "kind": "stay",
                    "court": "D.D.C.",
                    "docket": "1:25-cv-00457",
                    "issued": "2025-11-21",
                    "effective_from": "2025-11-21",
                    "effective_to": None,
                    "hours": None,
                    "scope": {"agency": "DHS-ICE", "statutes": []},
                    "notify": ["court", "plaintiffs"],
                }
            ]
        ),
    ],
    user: Principal = allow("officer"),
) -> dict:
    try:
        return order_view(
            add_order_with_notices(state.store, order, known_agencies(state.policies()))
        )
    except OrderError as exc:
        raise HTTPException(422, str(exc)) from None


class LiftIn(BaseModel):
    authority: str = Field(
        min_length=1,
        max_length=200,
        description="The court's order that ends it (docket entry, date)",
    )
    reason: str = Field(min_length=10, max_length=4000, description="Why, in the officer's words")


@api.post(
    "/orders/{order_id}/lift",
    summary="Lift an order (ledgered, with who, on what authority and why); "
    "release, for good, what it alone held",
    responses={404: {"description": "No such order"}, 409: {"description": "Already lifted"}},
)
def post_lift(
    request: Request, order_id: Id, body: LiftIn, user: Principal = allow("officer")
) -> dict:
    try:
        order, released = lift_and_release(
            request, order_id, user.username, body.authority, body.reason
        )
    except OrderError as exc:
        status = 404 if "no order" in str(exc) else 409 if "was lifted" in str(exc) else 422
        raise HTTPException(status, str(exc)) from None
    return {"order": order_view(order), "released": released}


def lift_and_release(
    request: Request, order_id: int, by: str, authority: str, reason: str
) -> tuple:
    """Lift an order (ledgered), then release, once, what no other order holds: (order, how many)."""
    store = state_of(request).store
    order = lift_order(store, order_id, by=by, authority=authority, reason=reason)
    return order, len(release_held(store, policies=state_of(request).policies()))


@api.get("/notices", summary="Notices owed and sent")
def get_notices(
    request: Request,
    state: State,
    user: Principal = allow("officer", "court", "auditor"),
    unsent: bool = False,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> dict:
    with reading(request, user, "notices", "unsent" if unsent else "all"):
        notices = list_notices(state.store, unsent_only=unsent)
    return {
        "total": len(notices),
        "notices": [
            {
                "id": n.id,
                "kind": n.kind,
                "recipient": n.recipient,
                "batch": n.batch_id,
                "order": n.order_id,
                "incident": n.incident_id,
                "due": iso(n.due_at),
                "sent": iso(n.sent_at),
                "ledger_index": n.ledger_index,
            }
            for n in notices[:limit]
        ],
    }


@pages.get("/orders")
def orders(
    request: Request, state: State, who: Page = page("officer", "court", "auditor")
) -> HTMLResponse:
    return render(
        request,
        "orders.html",
        who,
        orders=[order_view(o) for o in list_orders(state.store)],
        agencies=sorted(known_agencies(state.policies())),
    )


@pages.post("/orders")
def add_order(
    request: Request,
    state: State,
    kind: Annotated[str, Form(max_length=32)],
    court: Annotated[str, Form(max_length=200)],
    docket: Annotated[str, Form(max_length=200)],
    effective_from: Annotated[str, Form(max_length=10)],
    issued: Annotated[str, Form(max_length=10)] = "",
    effective_to: Annotated[str, Form(max_length=10)] = "",
    hours: Annotated[str, Form(max_length=6)] = "",
    agency: Annotated[str, Form(max_length=64)] = "",
    statutes: Annotated[str, Form(max_length=2000)] = "",
    notify: Annotated[str, Form(max_length=2000)] = "",
    who: Page = page("officer"),
):
    raw = {
        "kind": kind,
        "court": court,
        "docket": docket,
        "issued": issued or effective_from,
        "effective_from": effective_from,
        "effective_to": effective_to or None,
        "hours": int(hours) if hours.strip().isdigit() else (hours.strip() or None),
        "scope": {
            "agency": agency.strip(),
            "statutes": [s.strip() for s in statutes.split(";") if s.strip()],
        },
        "notify": [n.strip() for n in notify.split(",") if n.strip()],
    }
    try:
        added = add_order_with_notices(state.store, raw, known_agencies(state.policies()))
    except OrderError as exc:
        return render(
            request,
            "orders.html",
            who,
            422,
            orders=[order_view(o) for o in list_orders(state.store)],
            agencies=sorted(known_agencies(state.policies())),
            error=str(exc),
            form=raw,
        )
    return done(
        request, "/orders", f"Order {added.id} recorded (ledger entry {added.ledger_index})."
    )


@pages.get("/orders/{order_id}/lift")
def lift_form(
    request: Request, state: State, order_id: Id, who: Page = page("officer")
) -> HTMLResponse:
    """Lifting is final: the officer sees what it will release, and says on what authority and why."""
    found = next((o for o in list_orders(state.store) if o.id == order_id), None)
    if found is None:
        raise HTTPException(404, f"no order {order_id}")
    covered, released = lift_preview(state.store, order_id)
    return render(
        request, "order_lift.html", who, o=order_view(found), covered=covered, released=released
    )


@pages.post("/orders/{order_id}/lift")
def lift(
    request: Request,
    state: State,
    order_id: Id,
    authority: Annotated[str, Form(max_length=200)] = "",
    reason: Annotated[str, Form(max_length=4000)] = "",
    confirm: Annotated[str, Form(max_length=8)] = "",
    who: Page = page("officer"),
):
    found = next((o for o in list_orders(state.store) if o.id == order_id), None)
    if found is None:
        raise HTTPException(404, f"no order {order_id}")
    try:
        if confirm != "yes":
            raise OrderError("confirm that lifting is final: tick the box")
        _, released = lift_and_release(request, order_id, who[0].username, authority, reason)
    except OrderError as exc:
        covered, releasing = lift_preview(state.store, order_id)
        return render(
            request,
            "order_lift.html",
            who,
            422,
            o=order_view(found),
            covered=covered,
            released=releasing,
            error=str(exc),
            authority=authority,
            reason=reason,
        )
    return done(
        request,
        "/orders",
        f"Order {order_id} lifted on {authority.strip()}; {released} held item(s) released.",
    )


NOTICE_COLUMNS = (
    "id",
    "kind",
    "recipient",
    "batch",
    "order",
    "incident",
    "due",
    "sent",
    "state",
    "ledger_index",
)
NOTICE_STATES = ("unsent", "overdue", "sent")


def _notices(state, kind: str, status: str, incident: int | None) -> list[dict]:
    now = datetime.now(UTC)
    found = list_notices(
        state.store,
        unsent_only=status in ("unsent", "overdue"),
        incident_id=incident,
        kind=kind or None,
    )
    rows = [
        {
            "id": n.id,
            "kind": n.kind,
            "recipient": n.recipient,
            "batch": n.batch_id or "",
            "order": n.order_id or "",
            "incident": n.incident_id or "",
            "due": n.due_at.isoformat(timespec="minutes"),
            "sent": n.sent_at.isoformat(timespec="minutes") if n.sent_at else "",
            "state": "sent" if n.sent_at else ("overdue" if n.overdue(now) else "not yet due"),
            "ledger_index": n.ledger_index,
        }
        for n in found
    ]
    return [r for r in rows if status in ("", "unsent") or r["state"] == status]


@pages.get("/notices")
def notices(
    request: Request,
    state: State,
    who: Page = page("officer", "court", "auditor"),
    kind: Annotated[str, Query(max_length=32)] = "",
    status: Annotated[str, Query(max_length=12)] = "",
    incident: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> HTMLResponse:
    with reading(request, who[0], "notices", f"kind {kind or 'any'}, {status or 'all'}"):
        rows = _notices(state, kind, status, incident)
    paging = Paging(
        len(rows), offset, PAGE_SIZE, {"kind": kind, "status": status, "incident": incident}
    )
    return render(
        request,
        "notices.html",
        who,
        notices=rows[offset : offset + PAGE_SIZE],
        paging=paging,
        kind=kind,
        status=status,
        incident=incident,
        kinds=NOTICE_KINDS,
        states=NOTICE_STATES,
    )


@pages.get("/notices/{notice_id}.{fmt}")
def notice_document(
    request: Request,
    state: State,
    notice_id: Id,
    fmt: str,
    who: Page = page("officer", "court", "auditor"),
) -> Response:
    """A notice as its recipient reads it: the same document as HTML or its PDF."""
    if fmt not in ("html", "pdf"):
        raise HTTPException(404)
    with reading(request, who[0], "notice", f"notice {notice_id}"):
        found = list_notices(state.store, ids=[notice_id])
    if not found:
        raise HTTPException(404, f"no notice {notice_id}")
    doc = documents.document(found[0])
    if fmt == "pdf":
        return Response(
            to_pdf(doc),
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="notice-{notice_id}.pdf"'},
        )
    return HTMLResponse(
        to_html(doc), headers={"Content-Security-Policy": policy()}
    )  # its own style block


@pages.get("/notices.csv")
def notices_csv(
    request: Request,
    state: State,
    who: Page = page("officer", "court", "auditor"),
    kind: Annotated[str, Query(max_length=32)] = "",
    status: Annotated[str, Query(max_length=12)] = "",
    incident: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
):
    with reading(request, who[0], "notices", "export"):
        return csv_download(NOTICE_COLUMNS, _notices(state, kind, status, incident), "notices.csv")
