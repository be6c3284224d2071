"""The JSON API under /api (DESIGN.md "HTTP API"). Thin: check who asks, call a stage, answer.
Each route names the roles that may use it (`allow`); a requester sees only its own agency's
batches, and is told 404 for another's (logged as refused)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Body, HTTPException, Path as PathParam, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from taxgate import accounts
from taxgate.accounts import AccountError, Principal
from taxgate.ledger import Ledger, LedgerError, inclusion_proof
from taxgate.notices import add_order_with_notices, list_notices
from taxgate.orders import OrderError, lift_order, list_orders
from taxgate.release import release_held
from taxgate.normalize.text import digits
from taxgate.reports import accounting
from taxgate.review import ACTIONS, ReviewError, case, decide_review, queue
from taxgate.service.access import EVERYONE, allow, reading, refuse
from taxgate.service.uploads import UploadError, receive
from taxgate.store.models import Batch, Decision, Disclosure, Submission

ERRORS = {
    401: {"description": "No valid API token"},
    403: {"description": "The token's role may not use this route"},
}
router = APIRouter(prefix="/api", responses=ERRORS)
READERS = ("requester", "officer", "court", "auditor")
Id = Annotated[int, PathParam(ge=1, le=2**31 - 1)]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


# -- batches -------------------------------------------------------------------------------------

def batch_views(store, submissions: list[Submission]) -> list[dict]:
    """Each submission with its batch's progress (rows decided and ledgered so far) and outcomes."""
    if not submissions:
        return []
    keys = {(s.agency, s.batch_ref, s.rows_sha256) for s in submissions}
    with store.session() as session:
        batches = {(b.agency, b.batch_ref, b.rows_sha256): b for b in session.execute(
            select(Batch).where(Batch.agency.in_({k[0] for k in keys}), Batch.batch_ref.in_({k[1] for k in keys})))
            .scalars()}
        ids = [b.id for k, b in batches.items() if k in keys]
        outcomes: dict[int, dict] = {}
        for batch_id, outcome, count in session.execute(
                select(Decision.batch_id, Decision.outcome, func.count()).where(Decision.batch_id.in_(ids))
                .group_by(Decision.batch_id, Decision.outcome)):
            outcomes.setdefault(batch_id, {})[outcome] = count
    views = []
    for s in submissions:
        batch = batches.get((s.agency, s.batch_ref, s.rows_sha256))
        views.append({
            "id": s.id, "agency": s.agency, "batch_ref": s.batch_ref, "status": s.status, "error": s.error,
            "rows_sha256": s.rows_sha256, "rows_bytes": s.rows_bytes, "submitted": _iso(s.created_at),
            "started": _iso(s.started_at), "finished": _iso(s.finished_at),
            "batch": batch.id if batch else None, "rows": batch.rows if batch else None,
            "decided": batch.committed_rows if batch else 0,
            "outcomes": dict(sorted(outcomes.get(batch.id, {}).items())) if batch else {},
        })
    return views


def visible_submission(request: Request, user: Principal, submission_id: int) -> Submission:
    """The submission, if this user may see it: a requester only its own agency's (404 otherwise)."""
    with request.app.state.store.session() as session:
        found = session.get(Submission, submission_id)
    if found is None:
        raise HTTPException(404, f"no batch {submission_id}")
    if user.role == "requester" and found.agency != user.agency:
        raise refuse(request, 404, f"batch {submission_id} belongs to another agency", user,
                     detail=f"no batch {submission_id}")
    return found


@router.post("/batches", status_code=202, summary="Submit a batch (manifest + rows file)",
             responses={413: {"description": "Too large"}, 415: {"description": "Not the type it says"},
                        422: {"description": "Refused, with the reason"}, 429: {"description": "Too many uploads"}},
             openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                 "type": "object", "required": ["manifest", "rows"],
                 "properties": {"manifest": {"type": "string", "format": "binary"},
                                "rows": {"type": "string", "format": "binary"}}}}}}})
async def submit_batch(request: Request, user: Principal = allow("requester")) -> JSONResponse:
    app = request.app.state
    ok, retry = await run_in_threadpool(app.limiter.admit, f"upload:{user.username}")
    if not ok:
        raise await run_in_threadpool(refuse, request, 429, "upload rate limit", user,
                                      f"too many uploads: try again in {retry} s", {"Retry-After": str(retry)})
    try:
        accepted = await receive(request, user, app.settings, app.store, app.wake)
    except UploadError as exc:
        if exc.status == 403:
            raise await run_in_threadpool(refuse, request, 403, exc.reason, user) from None
        raise HTTPException(exc.status, exc.reason) from None
    return JSONResponse(accepted, status_code=202, headers={"Location": f"/api/batches/{accepted['id']}"})


@router.get("/batches", summary="Batches: a requester's own agency's; every batch for the other readers")
def list_batches(request: Request, user: Principal = allow(*READERS),
                 limit: Annotated[int, Query(ge=1, le=500)] = 100,
                 offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0) -> dict:
    store = request.app.state.store
    query = select(Submission).order_by(Submission.id.desc())
    if user.role == "requester":
        query = query.where(Submission.agency == user.agency)
    with store.session() as session:
        total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
        page = session.execute(query.limit(limit).offset(offset)).scalars().all()
    return {"total": total, "batches": batch_views(store, page)}


@router.get("/batches/{batch_id}", summary="One batch: status, progress, outcomes",
            responses={404: {"description": "No such batch (or another agency's)"}})
def get_batch(request: Request, batch_id: Id, user: Principal = allow(*READERS)) -> dict:
    return batch_views(request.app.state.store, [visible_submission(request, user, batch_id)])[0]


@router.get("/batches/{batch_id}/response", summary="The response file (CSV, spreadsheet-safe; or JSON Lines)",
            responses={404: {"description": "No such batch"}, 409: {"description": "Not decided yet"}})
def get_response(request: Request, batch_id: Id, user: Principal = allow("requester"),
                 format: Literal["csv", "jsonl"] = "csv") -> FileResponse:
    with reading(request, user, "response", f"batch {batch_id}"):
        return response_file(visible_submission(request, user, batch_id), format)


def response_file(found: Submission, format: str) -> FileResponse:
    """The response file the pipeline wrote for a submission (CSV already spreadsheet-safe)."""
    path = Path(found.folder) / "out" / f"response.{format}"
    if found.status != "done" or not path.is_file():
        raise HTTPException(409, f"batch {found.id} is {found.status}: the response is not ready")
    media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    return FileResponse(path, media_type=media, filename=f"response-{found.batch_ref}.{format}")


@router.get("/batches/{batch_id}/releases", summary="Addresses released after the response: held items, reviews",
            responses={404: {"description": "No such batch"}})
def get_releases(request: Request, batch_id: Id, user: Principal = allow("requester")) -> dict:
    with reading(request, user, "releases", f"batch {batch_id}"):
        return {"releases": releases(request.app.state.store, visible_submission(request, user, batch_id))}


def releases(store, found: Submission) -> list[dict]:
    """What was released for a submission's batch after its response was written (held items
    released, reviews disclosed), oldest first."""
    if found.batch_id is None:
        return []
    with store.session() as session:
        batch = session.get(Batch, found.batch_id)
        rows = session.execute(
            select(Decision.request_id, Disclosure.value, Disclosure.disclosed_at, Disclosure.ledger_index)
            .join(Decision, Decision.id == Disclosure.decision_id)
            .where(Decision.batch_id == batch.id, Disclosure.ledger_index > (batch.completed_index or 0))
            .order_by(Disclosure.ledger_index)).all()
    return [{"request_id": r.request_id, "outcome": "DISCLOSED", "disclosed": _iso(r.disclosed_at),
             "ledger_index": r.ledger_index, **{f"address_{k}": v for k, v in json.loads(r.value).items()}}
            for r in rows]


# -- reviews -------------------------------------------------------------------------------------

class ReviewIn(BaseModel):
    decision: int = Field(ge=1, le=2**31 - 1, description="The decision in REVIEW (from GET /api/reviews)")
    action: Literal["disclose", "decline"] = Field(description="; ".join(f"{k}: {v}" for k, v in ACTIONS.items()))
    note: str = Field(min_length=10, max_length=4000, description="Why, in the officer's words")


@router.get("/reviews", summary="The review queue: requests near the line, oldest first")
def get_reviews(request: Request, user: Principal = allow("officer"),
                limit: Annotated[int, Query(ge=1, le=500)] = 100,
                offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0) -> dict:
    with reading(request, user, "review_queue", f"queue from {offset}"):
        total, items = queue(request.app.state.store, limit, offset)
    return {"total": total, "reviews": items}


@router.get("/reviews/{decision_id}", summary="One request in REVIEW beside the candidates' records, with the "
            "evidence (an officer: only while it is in review; an auditor: any decision)",
            responses={404: {"description": "No such decision"}, 409: {"description": "Not in review"}})
def get_review(request: Request, decision_id: Id, user: Principal = allow("officer", "auditor")) -> dict:
    with reading(request, user, "review_case", f"decision {decision_id}"):
        try:
            return case(request.app.state.store, decision_id, request.app.state.settings.master,
                        open_only=user.role == "officer")
        except ReviewError as exc:
            raise HTTPException(exc.status, str(exc)) from None


@router.post("/reviews", status_code=201, summary="Decide a request in REVIEW (ledgered)",
             responses={404: {"description": "No such decision"}, 409: {"description": "Not in review, or decided"}})
def post_review(request: Request, body: ReviewIn, user: Principal = allow("officer")) -> dict:
    state = request.app.state
    try:
        return decide_review(state.store, body.decision, user.username, body.action, body.note, state.settings.master,
                             state.policies())
    except ReviewError as exc:
        raise HTTPException(exc.status, str(exc)) from None


# -- orders and notices ----------------------------------------------------------------------------

def order_view(order) -> dict:
    return {"id": order.id, "kind": order.kind, "court": order.court, "docket": order.docket,
            "effective_from": order.effective_from.isoformat(),
            "effective_to": order.effective_to.isoformat() if order.effective_to else None, "hours": order.hours,
            "agency": order.agency, "statutes": list(order.statutes), "notify": list(order.notify),
            "lifted": _iso(order.lifted_at), "ledger_index": order.ledger_index}


@router.get("/orders", summary="Court orders, in force or not")
def get_orders(request: Request, user: Principal = allow("officer", "court", "auditor")) -> dict:
    return {"orders": [order_view(o) for o in list_orders(request.app.state.store)]}


@router.post("/orders", status_code=201, summary="Record a court order (ledgered; its notices are owed at once)",
             responses={422: {"description": "Not a valid order"}})
def post_order(request: Request, order: Annotated[dict, Body(examples=[{
        "kind": "stay", "court": "D.D.C.", "docket": "1:25-cv-00457", "issued": "2025-11-21",
        "effective_from": "2025-11-21", "effective_to": None, "hours": None,
        "scope": {"agency": "DHS-ICE", "statutes": []}, "notify": ["court", "plaintiffs"]}])],
        user: Principal = allow("officer")) -> dict:
    try:
        return order_view(add_order_with_notices(request.app.state.store, order))
    except OrderError as exc:
        raise HTTPException(422, str(exc)) from None


@router.post("/orders/{order_id}/lift", summary="Lift an order (ledgered); release what it alone held",
             responses={404: {"description": "No such order"}, 409: {"description": "Already lifted"}})
def post_lift(request: Request, order_id: Id, user: Principal = allow("officer")) -> dict:
    try:
        order, released = lift_and_release(request, order_id)
    except OrderError as exc:
        raise HTTPException(404 if "no order" in str(exc) else 409, str(exc)) from None
    return {"order": order_view(order), "released": released}


def lift_and_release(request: Request, order_id: int) -> tuple:
    """Lift an order (ledgered), then release, once, what no other order holds: (order, how many)."""
    store = request.app.state.store
    order = lift_order(store, order_id)
    return order, len(release_held(store, policies=request.app.state.policies()))


@router.get("/notices", summary="Notices owed and sent")
def get_notices(request: Request, user: Principal = allow("officer", "court", "auditor"),
                unsent: bool = False, limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> dict:
    with reading(request, user, "notices", "unsent" if unsent else "all"):
        notices = list_notices(request.app.state.store, unsent_only=unsent)
    return {"total": len(notices), "notices": [
        {"id": n.id, "kind": n.kind, "recipient": n.recipient, "batch": n.batch_id, "order": n.order_id,
         "incident": n.incident_id, "due": _iso(n.due_at), "sent": _iso(n.sent_at), "ledger_index": n.ledger_index}
        for n in notices[:limit]]}


# -- ledger and accounting -----------------------------------------------------------------------

@router.get("/ledger/checkpoint", summary="The latest signed checkpoint (C2SP signed note) and the ledger's size",
            responses={404: {"description": "No checkpoint yet"}})
def get_checkpoint(request: Request, user: Principal = allow(*EVERYONE)) -> dict:
    store = request.app.state.store
    ledger = Ledger(store)
    with store.session() as session:
        note, size = ledger.latest_checkpoint(session), ledger.size(session)
    if note is None:
        raise HTTPException(404, "no checkpoint yet")
    return {"checkpoint": note, "ledger_size": size, "verifier_key": request.app.state.verifier_key}


@router.get("/ledger/proof/{index}", summary="An inclusion proof for one entry against the latest checkpoint",
            responses={404: {"description": "No such entry in the checkpointed tree"}})
def get_proof(request: Request, index: Annotated[int, PathParam(ge=0, le=2**62)],
              user: Principal = allow("auditor")) -> dict:
    with reading(request, user, "ledger_entry", f"entry {index}"):
        try:
            return inclusion_proof(request.app.state.store, index)
        except LedgerError as exc:
            raise HTTPException(404, str(exc)) from None


@router.get("/accounting/{tin}", summary="§ 6103(p)(3)(A) accounting: every request about one taxpayer",
            responses={422: {"description": "Not a TIN"}})
def get_accounting(request: Request, tin: Annotated[str, PathParam(pattern=r"^\d{3}-?\d{2}-?\d{4}$")],
                   user: Principal = allow("auditor")) -> dict:
    with reading(request, user, "accounting", f"tin {digits(tin)}"):
        return {"tin": digits(tin), "requests": accounting(request.app.state.store, tin)}


@router.get("/refusals", summary="Accesses refused, newest first")
def get_refusals(request: Request, user: Principal = allow("auditor"),
                 limit: Annotated[int, Query(ge=1, le=5000)] = 200) -> dict:
    return {"refusals": accounts.refusals(request.app.state.store, limit)}


@router.get("/reads", summary="Reads of taxpayer information (IRS Pub. 1075 audit records), newest first")
def get_reads(request: Request, user: Principal = allow("auditor"),
              limit: Annotated[int, Query(ge=1, le=5000)] = 200,
              username: Annotated[str, Query(max_length=64)] = "", event: Annotated[str, Query(max_length=32)] = "",
              object: Annotated[str, Query(max_length=200)] = "") -> dict:
    return {"reads": accounts.reads(request.app.state.store, limit, username, event, object)}


@router.get("/accounts/events", summary="Changes of access (users, passwords, tokens), ledgered, newest first")
def get_account_events(request: Request, user: Principal = allow("admin", "auditor"),
                       limit: Annotated[int, Query(ge=1, le=5000)] = 200) -> dict:
    return {"events": accounts.account_events(request.app.state.store, limit)}


# -- administration ------------------------------------------------------------------------------

class UserIn(BaseModel):
    username: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$")
    role: Literal["requester", "officer", "court", "auditor", "admin"]
    agency: str = Field(default="", max_length=64)
    password: str | None = Field(default=None, min_length=accounts.MIN_PASSWORD, max_length=1024)


@router.get("/whoami", summary="The token's user and role")
def whoami(user: Principal = allow(*EVERYONE)) -> dict:
    return {"username": user.username, "role": user.role, "agency": user.agency}


@router.get("/users", summary="Users and their roles")
def get_users(request: Request, user: Principal = allow("admin")) -> dict:
    return {"users": accounts.list_users(request.app.state.store)}


@router.post("/users", status_code=201, summary="Add a user", responses={409: {"description": "Exists or invalid"}})
def post_user(request: Request, body: UserIn, user: Principal = allow("admin")) -> dict:
    try:
        added = accounts.add_user(request.app.state.store, body.username, body.role, body.agency, body.password,
                                  by=user.username, via="api")
    except AccountError as exc:
        raise HTTPException(409, str(exc)) from None
    return {"username": added.username, "role": added.role, "agency": added.agency}


def account_failure(exc: AccountError) -> HTTPException:
    return HTTPException(404 if str(exc).startswith(("no user", "no token")) else 409, str(exc))


UserName = Annotated[str, PathParam(pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$")]


@router.post("/users/{username}/disable", summary="Disable a user: tokens and sessions stop at once (ledgered)",
             responses={404: {"description": "No such user"}, 409: {"description": "Already, or the last admin"}})
def post_disable(request: Request, username: UserName, user: Principal = allow("admin")) -> dict:
    try:
        accounts.disable_user(request.app.state.store, username, by=user.username, via="api")
    except AccountError as exc:
        raise account_failure(exc) from None
    return {"username": username, "disabled": True}


@router.post("/users/{username}/enable", summary="Enable a disabled user again (ledgered; old tokens stay revoked)",
             responses={404: {"description": "No such user"}, 409: {"description": "Not disabled"}})
def post_enable(request: Request, username: UserName, user: Principal = allow("admin")) -> dict:
    try:
        accounts.enable_user(request.app.state.store, username, by=user.username, via="api")
    except AccountError as exc:
        raise account_failure(exc) from None
    return {"username": username, "disabled": False}


@router.get("/tokens", summary="The caller's own API tokens (ids and labels, never the tokens)")
def get_tokens(request: Request, user: Principal = allow(*EVERYONE)) -> dict:
    return {"tokens": accounts.list_tokens(request.app.state.store, user.username)}


@router.delete("/tokens/{token_id}", summary="Revoke a token: one's own, or (an admin) anyone's (ledgered)",
               responses={404: {"description": "No such token of yours"}, 409: {"description": "Already revoked"}})
def delete_token(request: Request, token_id: Id, user: Principal = allow(*EVERYONE)) -> dict:
    try:
        owner = accounts.revoke_token(request.app.state.store, token_id, by=user.username, via="api",
                                      owner=None if user.role == "admin" else user.username)
    except AccountError as exc:
        raise account_failure(exc) from None
    return {"token": token_id, "username": owner, "revoked": True}


@router.get("/policy", summary="The policy versions in force and their agencies")
def get_policy(request: Request, user: Principal = allow("admin")) -> dict:
    return {"versions": [policy_view(p) for p in request.app.state.policies()]}


def policy_view(p) -> dict:
    period = lambda x: {"from": x.effective_from.isoformat(),  # noqa: E731
                        "to": x.effective_to.isoformat() if x.effective_to else None}
    return {"name": p.name, "version": p.version, "in_force": period(p.period),
            "agencies": [{"code": a.code, "name": a.name, "safeguards_deficient": a.safeguards_deficient,
                          "signers": [s.name for s in a.signers]} for a in p.agencies.values()],
            "agreements": [{"agency": a.agency, "name": a.name, **period(a.period)} for a in p.agreements],
            "disclosable_items": sorted(p.disclosable_items)}
