"""Batches: a requester submits one (streamed, checked, queued) and reads its progress, its
response and what was released after it; the other readers see every batch. A requester sees only
its own agency's, and is told 404 for another's (logged as refused)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    StreamingResponse,
)
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from taxgate.accounts import Principal
from taxgate.ledger import Ledger
from taxgate.response import legend
from taxgate.response.current import (
    NOW,
    REQUESTER_CODES,
    as_csv,
    as_jsonl,
    checkpoint_size,
    current_outcomes,
    current_rows,
    later_answers,
    standing,
)
from taxgate.rules import REPLAYED_VERSIONS
from taxgate.service.access import allow, page, reading, refuse
from taxgate.service.deps import ERRORS, READERS, Id, State, iso, state_of
from taxgate.service.pages import PAGE_SIZE, Page, Paging, render
from taxgate.service.uploads import UploadError, receive
from taxgate.store.models import Batch, DecisionRecord, Disclosure, Review, Submission

api = APIRouter(prefix="/api", responses=ERRORS)
pages = APIRouter(include_in_schema=False)


def batch_views(store, submissions: list[Submission]) -> list[dict]:
    """Each submission with its batch's progress (rows decided and ledgered so far) and outcomes."""
    if not submissions:
        return []
    keys = {(s.agency, s.batch_ref, s.rows_sha256) for s in submissions}
    with store.session() as session:
        batches = {
            (b.agency, b.batch_ref, b.rows_sha256): b
            for b in session.execute(
                select(Batch).where(
                    Batch.agency.in_({k[0] for k in keys}),
                    Batch.batch_ref.in_({k[1] for k in keys}),
                )
            ).scalars()
        }
        ids = [b.id for k, b in batches.items() if k in keys]
        size = Ledger(store).size(session)
    # as the requests stand now: a review decided, or a hold released, moves a request on
    outcomes = current_outcomes(store, ids, size) if ids else {}
    later = later_answers(store, ids, size) if ids else {}
    views = []
    for s in submissions:
        batch = batches.get((s.agency, s.batch_ref, s.rows_sha256))
        views.append(
            {
                "id": s.id,
                "agency": s.agency,
                "batch_ref": s.batch_ref,
                "status": s.status,
                "error": s.error,
                "rows_sha256": s.rows_sha256,
                "rows_bytes": s.rows_bytes,
                "submitted": iso(s.created_at),
                "started": iso(s.started_at),
                "finished": iso(s.finished_at),
                "batch": batch.id if batch else None,
                "rows": batch.rows if batch else None,
                "decided": batch.committed_rows if batch else 0,
                "outcomes": dict(sorted(outcomes.get(batch.id, {}).items())) if batch else {},
                "answered_later": later.get(batch.id, 0) if batch else 0,
            }
        )
    return views


def visible_submission(request: Request, user: Principal, submission_id: int) -> Submission:
    """The submission, if this user may see it: a requester only its own agency's (404 otherwise)."""
    with state_of(request).store.session() as session:
        found = session.get(Submission, submission_id)
    if found is None:
        raise HTTPException(404, f"no batch {submission_id}")
    if user.role == "requester" and found.agency != user.agency:
        raise refuse(
            request,
            404,
            f"batch {submission_id} belongs to another agency",
            user,
            detail=f"no batch {submission_id}",
        )
    return found


@api.post(
    "/batches",
    status_code=202,
    summary="Submit a batch (manifest + rows file)",
    responses={
        413: {"description": "Too large"},
        415: {"description": "Not the type it says"},
        422: {"description": "Refused, with the reason"},
        429: {"description": "Too many uploads"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["manifest", "rows"],
                        "properties": {
                            "manifest": {"type": "string", "format": "binary"},
                            "rows": {"type": "string", "format": "binary"},
                        },
                    }
                }
            },
        }
    },
)
async def submit_batch(
    request: Request, state: State, user: Principal = allow("requester")
) -> JSONResponse:
    ok, retry = await run_in_threadpool(state.limiter.admit, f"upload:{user.username}")
    if not ok:
        raise await run_in_threadpool(
            refuse,
            request,
            429,
            "upload rate limit",
            user,
            f"too many uploads: try again in {retry} s",
            {"Retry-After": str(retry)},
        )
    try:
        accepted = await receive(request, user, state.settings, state.store, state.wake)
    except UploadError as exc:
        if exc.status == 403:
            raise await run_in_threadpool(refuse, request, 403, exc.reason, user) from None
        raise HTTPException(exc.status, exc.reason) from None
    return JSONResponse(
        accepted, status_code=202, headers={"Location": f"/api/batches/{accepted['id']}"}
    )


@api.get(
    "/batches", summary="Batches: a requester's own agency's; every batch for the other readers"
)
def list_batches(
    request: Request,
    state: State,
    user: Principal = allow(*READERS),
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> dict:
    store = state.store
    query = select(Submission).order_by(Submission.id.desc())
    if user.role == "requester":
        query = query.where(Submission.agency == user.agency)
    with store.session() as session:
        total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
        page = session.execute(query.limit(limit).offset(offset)).scalars().all()
    return {"total": total, "batches": batch_views(store, page)}


@api.get(
    "/batches/{batch_id}",
    summary="One batch: status, progress, outcomes",
    responses={404: {"description": "No such batch (or another agency's)"}},
)
def get_batch(
    request: Request, state: State, batch_id: Id, user: Principal = allow(*READERS)
) -> dict:
    return batch_views(state.store, [visible_submission(request, user, batch_id)])[0]


@api.get(
    "/batches/{batch_id}/response",
    summary="The response as it stands at the latest checkpoint, reviews and "
    "released holds included (CSV, spreadsheet-safe; or JSON Lines)",
    responses={404: {"description": "No such batch"}, 409: {"description": "Not decided yet"}},
)
def get_response(
    request: Request,
    batch_id: Id,
    user: Principal = allow("requester"),
    format: Literal["csv", "jsonl"] = "csv",
) -> FileResponse:
    with reading(request, user, "response", f"batch {batch_id}"):
        return current_response(
            state_of(request).store, visible_submission(request, user, batch_id), format
        )


@api.get(
    "/batches/{batch_id}/reasons",
    summary="The response's legend: each reason code, its citation, what it "
    "means, how many requests carry it (CSV)",
    responses={404: {"description": "No such batch"}, 409: {"description": "Not decided yet"}},
)
def get_legend(
    request: Request, batch_id: Id, user: Principal = allow("requester")
) -> FileResponse:
    return response_file(visible_submission(request, user, batch_id), "csv", "reasons")


@api.get("/reasons", summary="Every reason code: its level, the statute it applies, what it means")
def list_reasons(user: Principal = allow(*READERS, "admin")) -> dict:
    return {"reasons": legend(requester=user.role == "requester")}


_MEDIA = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


def response_file(found: Submission, format: str, name: str = "response") -> FileResponse:
    """A file the pipeline wrote for a submission (CSV already spreadsheet-safe): its legend (`reasons`)."""
    path = Path(found.folder) / "out" / f"{name}.{format}"
    if found.status != "done" or not path.is_file():
        raise HTTPException(409, f"batch {found.id} is {found.status}: the response is not ready")
    return FileResponse(
        path, media_type=_MEDIA[format], filename=f"{name}-{found.batch_ref}.{format}"
    )


def current_response(store, found: Submission, format: str) -> StreamingResponse:
    """The response as it stands at the latest signed checkpoint (reviews decided and holds
    released since are in their rows), streamed from the store; the checkpoint's size is in every
    row and in the X-Taxgate-Checkpoint-Size header."""
    if found.status != "done" or found.batch_id is None:
        raise HTTPException(409, f"batch {found.id} is {found.status}: the response is not ready")
    size = checkpoint_size(store)
    rows = current_rows(store, found.batch_id, size)
    body = as_csv(rows) if format == "csv" else as_jsonl(rows)
    return StreamingResponse(
        body,
        media_type=_MEDIA[format],
        headers={
            "Content-Disposition": f'attachment; filename="response-{found.batch_ref}-at-{size}.{format}"',
            "X-Taxgate-Checkpoint-Size": str(size),
        },
    )


@api.get(
    "/batches/{batch_id}/releases",
    summary="Addresses released after the response: held items, reviews",
    responses={404: {"description": "No such batch"}},
)
def get_releases(
    request: Request, state: State, batch_id: Id, user: Principal = allow("requester")
) -> dict:
    with reading(request, user, "releases", f"batch {batch_id}"):
        return {"releases": releases(state.store, visible_submission(request, user, batch_id))}


def releases(store, found: Submission) -> list[dict]:
    """What was released for a submission's batch after its response was written (held items
    released, reviews disclosed), oldest first."""
    if found.batch_id is None:
        return []
    with store.session() as session:
        batch = session.get(Batch, found.batch_id)
        rows = session.execute(
            select(
                DecisionRecord.request_id,
                Disclosure.value,
                Disclosure.disclosed_at,
                Disclosure.ledger_index,
            )
            .join(DecisionRecord, DecisionRecord.id == Disclosure.decision_id)
            .where(
                DecisionRecord.batch_id == batch.id,
                Disclosure.ledger_index > (batch.completed_index or 0),
            )
            .order_by(Disclosure.ledger_index)
        ).all()
    return [
        {
            "request_id": r.request_id,
            "outcome": "DISCLOSED",
            "disclosed": iso(r.disclosed_at),
            "ledger_index": r.ledger_index,
            **{f"address_{k}": v for k, v in json.loads(r.value).items()},
        }
        for r in rows
    ]


BATCH_STATES = ("queued", "running", "done", "failed")


def _batches(
    request: Request, user: Principal, status: str = "", offset: int = 0
) -> tuple[list[dict], Paging]:
    query = select(Submission)
    if user.role == "requester":
        query = query.where(Submission.agency == user.agency)
    if status:
        query = query.where(Submission.status == status)
    with state_of(request).store.session() as session:
        total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
        found = (
            session.execute(query.order_by(Submission.id.desc()).limit(PAGE_SIZE).offset(offset))
            .scalars()
            .all()
        )
    return batch_views(state_of(request).store, found), Paging(
        total, offset, PAGE_SIZE, {"status": status}
    )


@pages.get("/batches")
def batches(
    request: Request,
    who: Page = page(*READERS),
    status: Annotated[str, Query(max_length=12)] = "",
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> HTMLResponse:
    name = "batch_rows.html" if request.headers.get("hx-request") else "batches.html"
    views, paging = _batches(request, who[0], status if status in BATCH_STATES else "", offset)
    return render(
        request,
        name,
        who,
        batches=views,
        paging=paging,
        status=status,
        states=BATCH_STATES,
        host=_host_batches(request, who[0]) if not request.headers.get("hx-request") else [],
    )


def _host_batches(request: Request, user: Principal) -> list[dict]:
    """Batches recorded on the host (`taxgate process`, `replay`, the demo) rather than uploaded here:
    the store holds their decisions, the host their response files."""
    store = state_of(request).store
    query = (
        select(Batch)
        .where(~select(Submission.id).where(Submission.batch_id == Batch.id).exists())
        .order_by(Batch.id.desc())
        .limit(PAGE_SIZE)
    )
    if user.role == "requester":
        query = query.where(Batch.agency == user.agency)
    with store.session() as session:
        found = session.execute(query).scalars().all()
        size = Ledger(store).size(session)
    counts = current_outcomes(store, [b.id for b in found], size) if found else {}
    return [
        {
            "id": b.id,
            "agency": b.agency,
            "batch_ref": b.batch_ref,
            "received": iso(b.received_at),
            "rows": b.rows,
            "practice": "as practised in 2025 (replay)"
            if b.rule_set_version in REPLAYED_VERSIONS
            else "statute",
            "outcomes": dict(sorted(counts.get(b.id, {}).items())),
        }
        for b in found
    ]


@pages.get("/requests")
def find_request(
    request: Request,
    state: State,
    who: Page = page(*READERS),
    id: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    """A request by its id, in every batch the reader may see: where it stands now, and where to go."""
    user, found = who[0], []
    if id.strip():
        with state.store.session() as session:
            size = Ledger(state.store).size(session)
        query = (
            standing(
                (
                    DecisionRecord.id,
                    DecisionRecord.batch_id,
                    DecisionRecord.row_number,
                    DecisionRecord.request_id,
                    NOW,
                    DecisionRecord.reasons,
                    DecisionRecord.ledger_index,
                    Batch.agency,
                    Batch.batch_ref,
                    Batch.rule_set_version,
                    Submission.id.label("submission"),
                    Review.id.label("reviewed"),
                ),
                size,
            )
            .join(Batch, Batch.id == DecisionRecord.batch_id)
            .outerjoin(Submission, Submission.batch_id == Batch.id)
            .where(DecisionRecord.request_id == id.strip())
            .order_by(DecisionRecord.ledger_index)
            .limit(PAGE_SIZE)
        )
        if user.role == "requester":
            query = query.where(Batch.agency == user.agency)
        with reading(request, user, "request_lookup", f"request {id.strip()[:60]}"):
            with state.store.session() as session:
                rows = session.execute(query).all()
        found = [
            {
                "decision": r.id,
                "batch_ref": r.batch_ref,
                "agency": r.agency,
                "row": r.row_number,
                "submission": r.submission,
                "outcome": r.now,
                "ledger_index": r.ledger_index,
                "reviewable": r.now == "REVIEW"
                and r.reviewed is None
                and r.rule_set_version not in REPLAYED_VERSIONS,
                "replayed": r.rule_set_version in REPLAYED_VERSIONS,
                "reasons": ";".join(
                    c
                    for c in r.reasons.split(";")
                    if c and (user.role != "requester" or c in REQUESTER_CODES)
                ),
            }
            for r in rows
        ]
    return render(request, "requests.html", who, id=id[:200], found=found)


@pages.post("/batches")
async def upload(request: Request, state: State, who: Page = page("requester", streamed=True)):
    user = who[0]
    ok, retry = await run_in_threadpool(state.limiter.admit, f"upload:{user.username}")
    if not ok:
        await run_in_threadpool(refuse, request, 429, "upload rate limit", user)
        return render(
            request,
            "batches.html",
            who,
            429,
            batches=_batches(request, user),
            error=f"Too many uploads: try again in {retry} s.",
        )
    try:
        accepted = await receive(
            request,
            user,
            state.settings,
            state.store,
            state.wake,
            csrf=getattr(request.state, "csrf", None),
        )
    except UploadError as exc:
        if exc.status == 403:
            await run_in_threadpool(refuse, request, 403, exc.reason, user)
        return render(
            request,
            "batches.html",
            who,
            exc.status,
            batches=_batches(request, user),
            error=f"Upload refused: {exc.reason}.",
        )
    return RedirectResponse(f"/batches/{accepted['id']}", status_code=303)


@pages.get("/batches/{batch_id}")
def batch(request: Request, state: State, batch_id: Id, who: Page = page(*READERS)) -> HTMLResponse:
    found = visible_submission(request, who[0], batch_id)
    view = batch_views(state.store, [found])[0]
    name = "batch_status.html" if request.headers.get("hx-request") else "batch.html"
    return render(request, name, who, b=view)


@pages.get("/batches/{batch_id}/malformed_rows.csv")
def batch_malformed(request: Request, batch_id: Id, who: Page = page("requester")) -> FileResponse:
    """The rows that could not be read, and why: what the requester sends again."""
    with reading(request, who[0], "malformed_rows", f"batch {batch_id}"):
        return response_file(visible_submission(request, who[0], batch_id), "csv", "malformed_rows")


@pages.get("/batches/{batch_id}/reasons.csv")
def batch_legend(request: Request, batch_id: Id, who: Page = page("requester")) -> FileResponse:
    return response_file(visible_submission(request, who[0], batch_id), "csv", "reasons")


@pages.get("/batches/{batch_id}/response.{fmt}")
def batch_response(
    request: Request, batch_id: Id, fmt: str, who: Page = page("requester")
) -> FileResponse:
    if fmt not in ("csv", "jsonl"):
        raise HTTPException(404)
    with reading(request, who[0], "response", f"batch {batch_id}"):
        return current_response(
            state_of(request).store, visible_submission(request, who[0], batch_id), fmt
        )
