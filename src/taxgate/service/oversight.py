"""What oversight reads: the dashboard, the oversight report (drawn once per ledger size) and the
§ 6103(p)(3)(A) accounting for one taxpayer."""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from taxgate.accounts import Principal
from taxgate.ledger import Ledger
from taxgate.normalize.text import digits
from taxgate.render import policy, to_pdf
from taxgate.reports import ACCOUNTING_COLUMNS, accounting, accounting_letter
from taxgate.review import review_queue
from taxgate.service.access import EVERYONE, allow, page, reading
from taxgate.service.batches import batch_views
from taxgate.service.deps import ERRORS, READERS, State, state_of
from taxgate.service.pages import Page, csv_download, render
from taxgate.store.models import Submission

api = APIRouter(prefix="/api", responses=ERRORS)
pages = APIRouter(include_in_schema=False)


class AccountingIn(BaseModel):
    tin: str = Field(
        pattern=r"^\d{3}-?\d{2}-?\d{4}$",
        description="The taxpayer's TIN (in the body: a TIN is "
        "never put in a URL, where logs and browser histories keep it)",
    )


@api.post(
    "/accounting",
    summary="§ 6103(p)(3)(A) accounting: every request about one taxpayer, who asked and why, "
    "what left",
    responses={422: {"description": "Not a TIN"}},
)
def post_accounting(
    request: Request, state: State, body: AccountingIn, user: Principal = allow("auditor")
) -> dict:
    with reading(request, user, "accounting", f"tin {digits(body.tin)}"):
        return {"tin": digits(body.tin), "requests": accounting(state.store, body.tin)}


_figures_cache: dict = {}


_drawing = (
    threading.Lock()
)  # one report drawn at a time: twelve readers at once wait for one drawing


def _ledger_size(store) -> int:
    with store.session() as session:
        return Ledger(store).size(session)


def _oversight_figures(request: Request) -> tuple:
    """The oversight report's facts and charts, drawn once per ledger size (every event that
    changes a figure is an entry)."""
    from taxgate.reports.oversight import document

    store = state_of(request).store
    key = (id(store), _ledger_size(store))
    with _drawing:
        if key not in _figures_cache:
            doc = document(store, state_of(request).settings.policy)
            figures = [f for section in doc.sections for f in section.figures]
            _figures_cache.clear()
            _figures_cache[key] = (doc.facts, figures)
        return _figures_cache[key]


@pages.get("/")
def dashboard(request: Request, state: State, who: Page = page(*EVERYONE)) -> HTMLResponse:
    user = who[0]
    context: dict = {}
    if user.role in ("officer", "court", "auditor"):
        context["facts"], context["figures"] = _oversight_figures(request)
    if user.role in READERS:
        query = select(Submission).order_by(Submission.id.desc()).limit(10)
        if user.role == "requester":
            query = query.where(Submission.agency == user.agency)
        with state.store.session() as session:
            recent = session.execute(query).scalars().all()
        context["batches"] = batch_views(state.store, recent)
    if user.role == "officer":
        context["waiting"] = review_queue(state.store, limit=1)[0]
    return render(request, "dashboard.html", who, **context)


@pages.get("/accounting")
def accounting_page(request: Request, who: Page = page("auditor")) -> HTMLResponse:
    return render(request, "accounting.html", who, tin="", rows=None, error="")


@pages.post("/accounting")
def accounting_lookup(
    request: Request,
    state: State,
    tin: Annotated[str, Form(max_length=20)],
    fmt: Annotated[str, Form(max_length=8)] = "html",
    who: Page = page("auditor"),
) -> Response:
    """The lookup is a POST, so the TIN stays out of URLs, logs and browser histories; `fmt` gives the
    table (html), its CSV, or the letter to the taxpayer (pdf)."""
    if len(digits(tin)) != 9 or fmt not in ("html", "csv", "pdf"):
        return render(
            request,
            "accounting.html",
            who,
            422,
            tin=tin[:20],
            rows=None,
            error="A TIN has nine digits.",
        )
    with reading(request, who[0], "accounting", f"tin {digits(tin)}"):
        rows = accounting(state.store, tin)
    if fmt == "csv":
        return csv_download(ACCOUNTING_COLUMNS, rows, f"accounting-{digits(tin)[-4:]}.csv")
    if fmt == "pdf":
        return Response(
            to_pdf(accounting_letter(rows, tin)),
            media_type="application/pdf",
            headers={
                "Content-Disposition": f'attachment; filename="accounting-letter-{digits(tin)[-4:]}.pdf"'
            },
        )
    return render(request, "accounting.html", who, tin=tin[:20], rows=rows, error="")


@pages.get("/reports/oversight.{fmt}")
def oversight_report(
    request: Request, state: State, fmt: str, who: Page = page("court", "auditor")
) -> Response:
    from taxgate.reports.oversight import oversight

    if fmt not in ("html", "pdf"):
        raise HTTPException(404)
    store, settings = state.store, state.settings
    folder = settings.data_dir / "reports"
    out = (
        folder / f"oversight-{_ledger_size(store)}"
    )  # drawn once per ledger size, then served as drawn
    html, pdf = out.with_suffix(".html"), out.with_suffix(".pdf")
    with _drawing:
        if not (html.is_file() and pdf.is_file()):
            folder.mkdir(parents=True, exist_ok=True)
            for old in folder.glob("oversight-*"):
                old.unlink(missing_ok=True)
            html, pdf = oversight(store, out, settings.policy)
    return FileResponse(
        html if fmt == "html" else pdf,
        filename=f"oversight.{fmt}",  # opened in the browser
        media_type="text/html; charset=utf-8" if fmt == "html" else "application/pdf",
        content_disposition_type="inline",
        headers={"Content-Security-Policy": policy()} if fmt == "html" else None,
    )
