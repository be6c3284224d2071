"""The review queue and the officer's decision on a request in REVIEW (ledgered). The case (the
request beside the master's records) is open to an officer only while the request is in review;
an auditor may read any. Every read is an audit record."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from taxgate.accounts import Principal
from taxgate.identify.evidence import FIELD_NAMES, PRIOR, level_meaning, top_level
from taxgate.identify.features import FEATURE_COLUMNS, address_features, person_features
from taxgate.review import (
    ACTIONS,
    QUEUE_ORDERS,
    ReviewError,
    decide_review,
    queue_batches,
    review_case,
    review_queue,
)
from taxgate.service.access import allow, page, reading
from taxgate.service.deps import ERRORS, Id, State
from taxgate.service.pages import PAGE_SIZE, Page, Paging, csv_download, done, render

api = APIRouter(prefix="/api", responses=ERRORS)
pages = APIRouter(include_in_schema=False)


# the identification codes a request in review can carry (the queue's filter)
REVIEW_CODES = ("ID_WEAK", "ID_ADDRESS_NOT_ON_RECORD")


class ReviewIn(BaseModel):
    decision: int = Field(
        ge=1, le=2**31 - 1, description="The decision in REVIEW (from GET /api/reviews)"
    )
    action: Literal["disclose", "decline"] = Field(
        description="; ".join(f"{k}: {v}" for k, v in ACTIONS.items())
    )
    note: str = Field(min_length=10, max_length=4000, description="Why, in the officer's words")


@api.get("/reviews", summary="The review queue: requests near the line, oldest first")
def get_reviews(
    request: Request,
    state: State,
    user: Principal = allow("officer"),
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> dict:
    with reading(request, user, "review_queue", f"queue from {offset}"):
        total, items = review_queue(state.store, limit, offset)
    return {"total": total, "reviews": items}


@api.get(
    "/reviews/{decision_id}",
    summary="One request in REVIEW beside the candidates' records, with the "
    "evidence (an officer: only while it is in review; an auditor: any decision)",
    responses={404: {"description": "No such decision"}, 409: {"description": "Not in review"}},
)
def get_review(
    request: Request, state: State, decision_id: Id, user: Principal = allow("officer", "auditor")
) -> dict:
    with reading(request, user, "review_case", f"decision {decision_id}"):
        try:
            return review_case(
                state.store,
                decision_id,
                state.settings.master,
                open_only=user.role == "officer",
                policies=state.policies(),
            )
        except ReviewError as exc:
            raise HTTPException(exc.status, str(exc)) from None


@api.post(
    "/reviews",
    status_code=201,
    summary="Decide a request in REVIEW (ledgered)",
    responses={
        404: {"description": "No such decision"},
        409: {"description": "Not in review, or decided"},
    },
)
def post_review(
    request: Request, state: State, body: ReviewIn, user: Principal = allow("officer")
) -> dict:
    try:
        return decide_review(
            state.store,
            body.decision,
            user.username,
            body.action,
            body.note,
            state.settings.master,
            state.policies(),
        )
    except ReviewError as exc:
        raise HTTPException(exc.status, str(exc)) from None


QUEUE_COLUMNS = (
    "request_id",
    "agency",
    "batch_ref",
    "row",
    "received",
    "reasons",
    "weight",
    "runner_up_weight",
)


@pages.get("/reviews")
def reviews(
    request: Request,
    state: State,
    who: Page = page("officer"),
    batch: Annotated[str, Query(max_length=200)] = "",
    code: Annotated[str, Query(max_length=40)] = "",
    order: Annotated[str, Query(max_length=12)] = "oldest",
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> HTMLResponse:
    with reading(request, who[0], "review_queue", f"queue from {offset}"):
        total, items = review_queue(
            state.store, PAGE_SIZE, offset, batch_ref=batch, code=code, order=order
        )
    paging = Paging(total, offset, PAGE_SIZE, {"batch": batch, "code": code, "order": order})
    return render(
        request,
        "reviews.html",
        who,
        total=total,
        items=items,
        paging=paging,
        batch=batch,
        code=code,
        order=order,
        batches=queue_batches(state.store),
        orders=QUEUE_ORDERS,
        codes=REVIEW_CODES,
    )


@pages.get("/reviews.csv")
def reviews_csv(
    request: Request,
    state: State,
    who: Page = page("officer"),
    batch: Annotated[str, Query(max_length=200)] = "",
    code: Annotated[str, Query(max_length=40)] = "",
    order: Annotated[str, Query(max_length=12)] = "oldest",
):
    with reading(request, who[0], "review_queue", "export"):
        _, items = review_queue(state.store, 2**31 - 1, 0, batch_ref=batch, code=code, order=order)
    rounded = [
        {**i, **{k: f"{i[k]:.3f}" for k in ("weight", "runner_up_weight") if i[k] is not None}}
        for i in items
    ]
    return csv_download(QUEUE_COLUMNS, rounded, "review-queue.csv")


@pages.get("/reviews/{decision_id}")
def review(
    request: Request, state: State, decision_id: Id, who: Page = page("officer", "auditor")
) -> HTMLResponse:
    with reading(request, who[0], "review_case", f"decision {decision_id}"):
        try:
            found = review_case(
                state.store,
                decision_id,
                state.settings.master,
                open_only=who[0].role == "officer",
                policies=state.policies(),
            )
        except ReviewError as exc:
            raise HTTPException(exc.status, str(exc)) from None
    return render(
        request,
        "review.html",
        who,
        c=found,
        actions=ACTIONS,
        fields=_side_by_side(found),
        prior=PRIOR,
    )


# (label, the request's and the master's columns, the model's comparisons that read them)
SIDE_BY_SIDE = (
    ("First name", ("first_name",), ("given",)),
    ("Middle name", ("middle_name",), ("middle_initial",)),
    ("Last name", ("last_name",), ("surname",)),
    ("Suffix", ("suffix",), ("suffix",)),
    ("Date of birth", ("date_of_birth",), ("dob",)),
    ("TIN", ("tin",), ("tin",)),
    ("Street", ("street",), ("house_number", "street_name")),
    ("Unit", ("unit",), ("unit",)),
    ("City, state", ("city", "state"), ("city_state",)),
    ("ZIP", ("zip",), ("zip5",)),
)


def _side_by_side(found: dict) -> list[dict]:
    """One row per field: the request's value, the candidate's and the runner-up's latest records,
    whether each differs from the request, and the evidence in words (each comparison's level, what
    it means in the model, and its match weight)."""
    asked = found["request"]
    candidate = (found["candidate"]["records"] or [{}])[0]
    runner = (found["runner_up"]["records"] or [{}])[0]
    rows = []
    for label, columns, comparisons in SIDE_BY_SIDE:
        evidence = [(name, found["fields"].get(name) or {}) for name in comparisons]
        weight = sum(float(e.get("weight") or 0) + float(e.get("tf") or 0) for _, e in evidence)
        said = " ".join(str(asked.get(c) or "") for c in columns).strip()
        filed = " ".join(str(candidate.get(c) or "") for c in columns).strip()
        other = " ".join(str(runner.get(c) or "") for c in columns).strip()
        compared = [
            c
            for name in comparisons
            for c in (("city", "state") if name == "city_state" else (name,))
        ]
        rows.append(
            {
                "label": label,
                "asked": said,
                "filed": filed,
                "runner": other,
                "filed_differs": _differs(asked, candidate, compared),
                "runner_differs": _differs(asked, runner, compared),
                "evidence": [
                    f"{FIELD_NAMES.get(name, name)}: {level_meaning(name, e['level'])} (level {e['level']} of "
                    f"{top_level(name)}), weight {float(e.get('weight') or 0) + float(e.get('tf') or 0):+.1f}"
                    for name, e in evidence
                    if e
                ],
                "weight": weight,
                "missing": all(e.get("level") == -1 for _, e in evidence if e),
            }
        )
    return rows


def _features(person: dict) -> dict:
    """The model's compared columns for a request or a record, as identification builds them."""

    def g(key: str) -> str:
        return str(person.get(key) or "")

    values = (
        *person_features(
            g("first_name"),
            g("middle_name"),
            g("last_name"),
            g("suffix"),
            g("date_of_birth"),
            g("tin"),
        ),
        *address_features(g("street"), g("unit"), g("city"), g("state"), g("zip")),
    )
    return dict(zip(FEATURE_COLUMNS, values, strict=True))


def _differs(asked: dict, filed: dict, columns: list[str]) -> bool:
    """Both sides say something and, compared as identification compares them (standardised:
    "#108" is "APT 108"), it is not the same."""
    if not filed:
        return False
    a, b = _features(asked), _features(filed)
    return any(a[c] and b[c] and a[c] != b[c] for c in columns)


@pages.post("/reviews/{decision_id}")
def decide(
    request: Request,
    state: State,
    decision_id: Id,
    action: Annotated[str, Form(max_length=16)],
    note: Annotated[str, Form(max_length=4000)],
    who: Page = page("officer"),
):
    try:
        decided = decide_review(
            state.store,
            decision_id,
            who[0].username,
            action,
            note,
            state.settings.master,
            state.policies(),
        )
    except ReviewError as exc:
        try:  # the case again, with the reason beside the form (if it is still open): a read, logged
            with reading(request, who[0], "review_case", f"decision {decision_id}"):
                found = review_case(
                    state.store, decision_id, state.settings.master, policies=state.policies()
                )
        except ReviewError:
            raise HTTPException(exc.status, str(exc)) from None
        return render(
            request,
            "review.html",
            who,
            exc.status,
            c=found,
            actions=ACTIONS,
            fields=_side_by_side(found),
            prior=PRIOR,
            error=str(exc),
            note=note,
        )
    return done(
        request,
        "/reviews",
        f"Request {decided.get('request_id') or decision_id}: {decided['outcome']} "
        f"(ledger entry {decided['ledger_index']}).",
    )
