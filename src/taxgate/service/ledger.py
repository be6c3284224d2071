"""The ledger as people read it: the latest checkpoint for anyone signed in, an entry with its
inclusion proof for an auditor, and a proof someone holds checked against a checkpoint. (The log
as C2SP clients read it is `tlog`.)"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from taxgate.accounts import Principal
from taxgate.ledger import Ledger, LedgerError, check_proof, inclusion_proof, read_proof
from taxgate.service.access import EVERYONE, allow, page, reading, refuse
from taxgate.service.deps import ERRORS, State, state_of
from taxgate.service.pages import PAGE_SIZE, Page, render
from taxgate.store.models import LedgerEntry
from taxgate.witness.client import cosigned_note

api = APIRouter(prefix="/api", responses=ERRORS)
pages = APIRouter(include_in_schema=False)


@api.get(
    "/ledger/checkpoint",
    summary="The latest signed checkpoint (C2SP signed note) and the ledger's size",
    responses={404: {"description": "No checkpoint yet"}},
)
def get_checkpoint(request: Request, state: State, user: Principal = allow(*EVERYONE)) -> dict:
    store = state.store
    ledger = Ledger(store)
    with store.session() as session:
        note, size = ledger.latest_checkpoint(session), ledger.size(session)
    if note is None:
        raise HTTPException(404, "no checkpoint yet")
    return {"checkpoint": note, "ledger_size": size, "verifier_key": state.verifier_key}


@api.get(
    "/ledger/proof/{index}",
    summary="An inclusion proof for one entry against the latest checkpoint",
    responses={404: {"description": "No such entry in the checkpointed tree"}},
)
def get_proof(
    request: Request,
    state: State,
    index: Annotated[int, PathParam(ge=0, le=2**62)],
    user: Principal = allow("auditor"),
) -> dict:
    with reading(request, user, "ledger_entry", f"entry {index}"):
        try:
            return inclusion_proof(state.store, index)
        except LedgerError as exc:
            raise HTTPException(404, str(exc)) from None


def _ledger_head(request: Request) -> dict:
    """What the ledger page always shows: the latest checkpoint, the size, the verifier key."""
    store = state_of(request).store
    with store.session() as session:
        led = Ledger(store)
        note, size = led.latest_checkpoint(session), led.size(session)
        cosigned = cosigned_note(session, note) if note else None
    witnesses = [
        line.split(" ")[1]
        for line in (cosigned or "")[len(note or "") :].splitlines()
        if line.strip()
    ]
    return {
        "note": cosigned,
        "size": size,
        "key": state_of(request).verifier_key,
        "witnesses": witnesses,
    }


def _browse(store, start: int, size: int) -> list[dict]:
    """Entries [start, start + PAGE_SIZE), each with its kind and what it is about, in one line."""
    with store.session() as session:
        rows = session.execute(
            select(LedgerEntry.idx, LedgerEntry.entry)
            .where(LedgerEntry.idx >= start, LedgerEntry.idx < min(size, start + PAGE_SIZE))
            .order_by(LedgerEntry.idx)
        ).all()
    out = []
    for idx, raw in rows:
        try:
            entry = json.loads(raw)
        except ValueError:
            entry = {"kind": "unreadable"}
        about = ", ".join(
            f"{k} {entry[k]}"
            for k in (
                "batch",
                "row",
                "request_id",
                "order_id",
                "outcome",
                "officer",
                "action",
                "agency",
                "batch_ref",
            )
            if entry.get(k) not in (None, "")
        )
        out.append({"index": idx, "kind": entry.get("kind", "?"), "about": about})
    return out


@pages.get("/ledger")
def ledger(
    request: Request,
    state: State,
    who: Page = page(*EVERYONE),
    index: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    start: Annotated[int | None, Query(ge=0, le=2**62)] = None,
) -> HTMLResponse:
    store = state.store
    context = _ledger_head(request)
    if start is not None and who[0].role == "auditor":  # entries carry TINs: auditors browse them
        with reading(request, who[0], "ledger_entries", f"entries from {start}"):
            context["browsed"] = _browse(store, start, context["size"])
        context["start"] = start
        context["paging_links"] = {
            "previous": f"?start={max(0, start - PAGE_SIZE)}" if start > 0 else None,
            "next": f"?start={start + PAGE_SIZE}" if start + PAGE_SIZE < context["size"] else None,
        }
    if index is not None:
        if who[0].role != "auditor":
            raise refuse(request, 403, f"role {who[0].role} may not read ledger entries", who[0])
        try:
            with reading(request, who[0], "ledger_entry", f"entry {index}"):
                proof = inclusion_proof(store, index)
            trusted = check_proof(proof, state.verifier_key)
            context.update(
                proof=proof,
                entry=json.dumps(json.loads(proof["entry"]), indent=2, ensure_ascii=False),
                verified=f"entry {index} is in the ledger of {trusted.size:,} entries signed by {trusted.origin}",
            )
        except (LedgerError, ValueError) as exc:
            context["error"] = str(exc)
        context["index"] = index
    return render(request, "ledger.html", who, **context)


@pages.post("/ledger/check")
def ledger_check(
    request: Request,
    state: State,
    proof: Annotated[str, Form(max_length=200_000)],
    checkpoint: Annotated[str, Form(max_length=10_000)] = "",
    who: Page = page(*EVERYONE),
) -> HTMLResponse:
    """Check a proof someone holds (from `taxgate ledger prove` or the API) against a checkpoint."""
    context = {**_ledger_head(request), "pasted": proof}
    try:
        given = read_proof(proof)
        trusted = check_proof(
            given, state.verifier_key, checkpoint.strip() + "\n" if checkpoint.strip() else None
        )
        context["checked"] = (
            f"Proof checked: entry {given['index']} is in the ledger of {trusted.size:,} entries."
        )
    except (
        ValueError
    ) as exc:  # a proof that cannot be read, a bad signature, a path that does not lead to the root
        context["check_error"] = f"Proof REJECTED: {exc}"
    page = render(request, "ledger.html", who, **context)
    if "check_error" in context:
        page.status_code = 422  # the page says why, in one line
    return page
