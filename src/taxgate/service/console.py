"""The web console: server-rendered pages (Jinja2) with htmx for the parts that refresh. Signed in
with a password; each page names the roles that may see it (`page`), and each form carries the
session's CSRF token. Pages call the same stages as the API."""

from __future__ import annotations

import asyncio
import hmac
import threading
import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, unquote

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from taxgate import accounts
from taxgate.accounts import AccountError, Principal
from taxgate.ledger import Ledger, LedgerError, check_proof, inclusion_proof, read_proof
from taxgate.witness.client import cosigned_note
from taxgate.notices import add_order_with_notices, list_notices
from taxgate.orders import OrderError, list_orders
from taxgate.reports import accounting
from taxgate.review import ACTIONS, ReviewError, case, decide_review, queue
from taxgate.service.access import EVERYONE, SESSION_COOKIE, origin, page, reading, refuse
from taxgate.service.api import (READERS, Id, UserName, batch_views, lift_and_release, order_view, response_file,
                                 visible_submission)
from taxgate.service.uploads import UploadError, receive
from taxgate.store.models import Submission

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
LOGIN_COOKIE = "taxgate_login"  # double-submit token for the sign-in form, before there is a session
FLASH_COOKIE = "taxgate_flash"  # what the last action did, shown once on the page it leads to
Page = tuple[Principal, str]


def _render(request: Request, name: str, who: Page | None, status: int = 200, **context) -> HTMLResponse:
    """A page. The status line of the action that led here comes from this server's own cookie,
    never from the query string: nobody can make the console say what it did not do."""
    user, csrf = who if who else (None, "")
    flashed = request.cookies.get(FLASH_COOKIE)
    if flashed and "message" not in context:
        context["message"] = unquote(flashed)[:300]
    page = templates.TemplateResponse(request, name, {"user": user, "csrf": csrf, **context}, status_code=status)
    if flashed:
        page.delete_cookie(FLASH_COOKIE)
    return page


def _done(request: Request, url: str, message: str) -> RedirectResponse:
    """After an action: to `url`, which says `message` once."""
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(FLASH_COOKIE, quote(message[:300]), max_age=60, httponly=True, samesite="strict",
                        secure=request.app.state.settings.secure_cookies)
    return response


class PasswordGate:
    """argon2 on two cores: one check at a time, and at most `queue` waiting (waiting holds no
    thread); more than that is told to come back, so a flood of sign-ins cannot slow every other
    request down."""

    def __init__(self, at_once: int = 1, queue: int = 16):
        self.slots, self.queue, self.waiting = asyncio.Semaphore(at_once), queue, 0

    async def run(self, check, *args):
        if self.waiting >= self.queue:
            raise HTTPException(503, "the service is busy signing people in: try again in a few seconds",
                                headers={"Retry-After": "5"})
        self.waiting += 1
        try:
            async with self.slots:
                return await run_in_threadpool(check, *args)
        finally:
            self.waiting -= 1


gate = PasswordGate()


def _safe_next(target: str) -> str:
    """Only a path on this site: never an open redirect."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


# -- signing in ----------------------------------------------------------------------------------

@router.get("/login")
def login_form(request: Request, next: str = "/", failed: bool = False) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = _render(request, "login.html", None, next=_safe_next(next), login_token=token, failed=failed)
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict",
                        secure=request.app.state.settings.secure_cookies, max_age=1800)
    return response


@router.post("/login")
async def login(request: Request, username: Annotated[str, Form(max_length=64)],
                password: Annotated[str, Form(max_length=1024)], login_token: Annotated[str, Form(max_length=100)] = "",
                next: Annotated[str, Form(max_length=2000)] = "/"):
    """Sign in. Throttled per client address (every attempt) and per user name at that address
    (failures): a guesser is slowed, and nobody elsewhere can lock the user out."""
    state = request.app.state
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), login_token.encode()):
        raise await run_in_threadpool(refuse, request, 403, "sign-in form without its token",
                                      None, "the sign-in form has expired: reload it")
    client, name = origin(request), username.strip().lower()[:64]
    ok, retry = await run_in_threadpool(state.sign_ins.admit, f"sign-in:{client}")
    if ok:
        over, retry = await run_in_threadpool(state.failures.over, f"failed:{name}:{client}")
        ok = not over
    if not ok:
        raise await run_in_threadpool(refuse, request, 429, f"too many sign-ins for {name!r} from {client}", None,
                                      f"too many attempts: try again in {retry} s", {"Retry-After": str(retry)})
    user = await gate.run(accounts.by_password, state.store, name, password)
    if user is None:
        await run_in_threadpool(state.failures.admit, f"failed:{name}:{client}")
        await run_in_threadpool(refuse, request, 401, f"wrong user name or password for {name!r}")
        return RedirectResponse(f"/login?failed=1&next={quote(_safe_next(next))}", status_code=303)
    session, _csrf = await run_in_threadpool(accounts.open_session, state.store, user)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="strict",
                        secure=state.settings.secure_cookies, max_age=accounts.SESSION_HOURS * 3600)
    response.delete_cookie(LOGIN_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, who: Page = page(*EVERYONE)) -> RedirectResponse:
    accounts.close_session(request.app.state.store, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


# -- dashboard -----------------------------------------------------------------------------------

_figures_cache: dict = {}
_drawing = threading.Lock()  # one report drawn at a time: twelve readers at once wait for one drawing


def _ledger_size(store) -> int:
    with store.session() as session:
        return Ledger(store).size(session)


def _oversight_figures(request: Request) -> tuple:
    """The oversight report's facts and charts, drawn once per ledger size (every event that
    changes a figure is an entry)."""
    from taxgate.reports.oversight import document

    store = request.app.state.store
    key = (id(store), _ledger_size(store))
    with _drawing:
        if key not in _figures_cache:
            doc = document(store, request.app.state.settings.policy)
            figures = [f for section in doc.sections for f in section.figures]
            _figures_cache.clear()
            _figures_cache[key] = (doc.facts, figures)
        return _figures_cache[key]


@router.get("/")
def dashboard(request: Request, who: Page = page(*EVERYONE)) -> HTMLResponse:
    user = who[0]
    context: dict = {}
    if user.role in ("officer", "court", "auditor"):
        context["facts"], context["figures"] = _oversight_figures(request)
    if user.role in READERS:
        query = select(Submission).order_by(Submission.id.desc()).limit(10)
        if user.role == "requester":
            query = query.where(Submission.agency == user.agency)
        with request.app.state.store.session() as session:
            recent = session.execute(query).scalars().all()
        context["batches"] = batch_views(request.app.state.store, recent)
    if user.role == "officer":
        context["waiting"] = queue(request.app.state.store, limit=1)[0]
    return _render(request, "dashboard.html", who, **context)


# -- batches -------------------------------------------------------------------------------------

def _batches(request: Request, user: Principal) -> list[dict]:
    query = select(Submission).order_by(Submission.id.desc()).limit(200)
    if user.role == "requester":
        query = query.where(Submission.agency == user.agency)
    with request.app.state.store.session() as session:
        found = session.execute(query).scalars().all()
    return batch_views(request.app.state.store, found)


@router.get("/batches")
def batches(request: Request, who: Page = page(*READERS)) -> HTMLResponse:
    name = "batch_rows.html" if request.headers.get("hx-request") else "batches.html"
    return _render(request, name, who, batches=_batches(request, who[0]))


@router.post("/batches")
async def upload(request: Request, who: Page = page("requester", streamed=True)):
    state = request.app.state
    user = who[0]
    ok, retry = await run_in_threadpool(state.limiter.admit, f"upload:{user.username}")
    if not ok:
        await run_in_threadpool(refuse, request, 429, "upload rate limit", user)
        return _render(request, "batches.html", who, 429, batches=_batches(request, user),
                       error=f"Too many uploads: try again in {retry} s.")
    try:
        accepted = await receive(request, user, state.settings, state.store, state.wake,
                                 csrf=getattr(request.state, "csrf", None))
    except UploadError as exc:
        if exc.status == 403:
            await run_in_threadpool(refuse, request, 403, exc.reason, user)
        return _render(request, "batches.html", who, exc.status, batches=_batches(request, user),
                       error=f"Upload refused: {exc.reason}.")
    return RedirectResponse(f"/batches/{accepted['id']}", status_code=303)


@router.get("/batches/{batch_id}")
def batch(request: Request, batch_id: Id, who: Page = page(*READERS)) -> HTMLResponse:
    found = visible_submission(request, who[0], batch_id)
    view = batch_views(request.app.state.store, [found])[0]
    name = "batch_status.html" if request.headers.get("hx-request") else "batch.html"
    return _render(request, name, who, b=view)


@router.get("/batches/{batch_id}/response.{fmt}")
def batch_response(request: Request, batch_id: Id, fmt: str, who: Page = page("requester")) -> FileResponse:
    if fmt not in ("csv", "jsonl"):
        raise HTTPException(404)
    with reading(request, who[0], "response", f"batch {batch_id}"):
        return response_file(visible_submission(request, who[0], batch_id), fmt)


# -- reviews -------------------------------------------------------------------------------------

@router.get("/reviews")
def reviews(request: Request, who: Page = page("officer")) -> HTMLResponse:
    with reading(request, who[0], "review_queue", "queue from 0"):
        total, items = queue(request.app.state.store, limit=200)
    return _render(request, "reviews.html", who, total=total, items=items)


@router.get("/reviews/{decision_id}")
def review(request: Request, decision_id: Id, who: Page = page("officer", "auditor")) -> HTMLResponse:
    with reading(request, who[0], "review_case", f"decision {decision_id}"):
        try:
            found = case(request.app.state.store, decision_id, request.app.state.settings.master,
                         open_only=who[0].role == "officer")
        except ReviewError as exc:
            raise HTTPException(exc.status, str(exc)) from None
    return _render(request, "review.html", who, c=found, actions=ACTIONS, fields=_side_by_side(found))


# (label, the request's and the master's columns, the model's comparisons that read them)
SIDE_BY_SIDE = (
    ("First name", ("first_name",), ("given",)), ("Middle name", ("middle_name",), ("middle_initial",)),
    ("Last name", ("last_name",), ("surname",)), ("Suffix", ("suffix",), ("suffix",)),
    ("Date of birth", ("date_of_birth",), ("dob",)), ("TIN", ("tin",), ("tin",)),
    ("Street", ("street",), ("house_number", "street_name")), ("Unit", ("unit",), ("unit",)),
    ("City, state", ("city", "state"), ("city_state",)), ("ZIP", ("zip",), ("zip5",)),
)


def _side_by_side(found: dict) -> list[dict]:
    """One row per field: the request's value, the candidate's latest record's, and the evidence
    (each comparison's level and match weight; level -1: missing on a side, 0: different)."""
    asked = found["request"]
    record = (found["candidate"]["records"] or [{}])[0]
    rows = []
    for label, columns, comparisons in SIDE_BY_SIDE:
        evidence = [(name, found["fields"].get(name) or {}) for name in comparisons]
        weight = sum(float(e.get("weight") or 0) for _, e in evidence)
        rows.append({
            "label": label, "asked": " ".join(str(asked.get(c) or "") for c in columns).strip(),
            "filed": " ".join(str(record.get(c) or "") for c in columns).strip(),
            "evidence": [f"{name}: level {e.get('level', '?')}, weight {float(e.get('weight') or 0):+.2f}"
                         for name, e in evidence if e],
            "weight": weight, "missing": all(e.get("level") == -1 for _, e in evidence if e),
        })
    return rows


@router.post("/reviews/{decision_id}")
def decide(request: Request, decision_id: Id, action: Annotated[str, Form(max_length=16)],
           note: Annotated[str, Form(max_length=4000)], who: Page = page("officer")):
    state = request.app.state
    try:
        done = decide_review(state.store, decision_id, who[0].username, action, note, state.settings.master,
                             state.policies())
    except ReviewError as exc:
        try:  # the case again, with the reason beside the form (if it is still open)
            found = case(state.store, decision_id, state.settings.master)
        except ReviewError:
            raise HTTPException(exc.status, str(exc)) from None
        return _render(request, "review.html", who, exc.status, c=found, actions=ACTIONS,
                       fields=_side_by_side(found), error=str(exc), note=note)
    return _done(request, "/reviews", f"Request {done.get('request_id') or decision_id}: {done['outcome']} "
                                      f"(ledger entry {done['ledger_index']}).")


# -- orders and notices --------------------------------------------------------------------------

@router.get("/orders")
def orders(request: Request, who: Page = page("officer", "court", "auditor")) -> HTMLResponse:
    return _render(request, "orders.html", who, orders=[order_view(o) for o in list_orders(request.app.state.store)])


@router.post("/orders")
def add_order(request: Request, kind: Annotated[str, Form(max_length=32)], court: Annotated[str, Form(max_length=200)],
              docket: Annotated[str, Form(max_length=200)], effective_from: Annotated[str, Form(max_length=10)],
              issued: Annotated[str, Form(max_length=10)] = "", effective_to: Annotated[str, Form(max_length=10)] = "",
              hours: Annotated[str, Form(max_length=6)] = "", agency: Annotated[str, Form(max_length=64)] = "",
              statutes: Annotated[str, Form(max_length=2000)] = "", notify: Annotated[str, Form(max_length=2000)] = "",
              who: Page = page("officer")):
    raw = {"kind": kind, "court": court, "docket": docket, "issued": issued or effective_from,
           "effective_from": effective_from, "effective_to": effective_to or None,
           "hours": int(hours) if hours.strip().isdigit() else (hours.strip() or None),
           "scope": {"agency": agency.strip(), "statutes": [s.strip() for s in statutes.split(";") if s.strip()]},
           "notify": [n.strip() for n in notify.split(",") if n.strip()]}
    try:
        added = add_order_with_notices(request.app.state.store, raw)
    except OrderError as exc:
        return _render(request, "orders.html", who, 422, orders=[order_view(o) for o in list_orders(request.app.state.store)],
                       error=str(exc), form=raw)
    return _done(request, "/orders", f"Order {added.id} recorded (ledger entry {added.ledger_index}).")


@router.post("/orders/{order_id}/lift")
def lift(request: Request, order_id: Id, who: Page = page("officer")):
    try:
        _, released = lift_and_release(request, order_id)
    except OrderError as exc:
        return _done(request, "/orders", str(exc))
    return _done(request, "/orders", f"Order {order_id} lifted; {released} held item(s) released.")


@router.get("/notices")
def notices(request: Request, who: Page = page("officer", "court", "auditor")) -> HTMLResponse:
    with reading(request, who[0], "notices", "all"):
        found = list_notices(request.app.state.store)[:1000]
    return _render(request, "notices.html", who, notices=found, now=datetime.now(UTC))


# -- ledger, accounting, reports -----------------------------------------------------------------

def _ledger_head(request: Request) -> dict:
    """What the ledger page always shows: the latest checkpoint, the size, the verifier key."""
    store = request.app.state.store
    with store.session() as session:
        led = Ledger(store)
        note, size = led.latest_checkpoint(session), led.size(session)
        cosigned = cosigned_note(session, note) if note else None
    witnesses = [line.split(" ")[1] for line in (cosigned or "")[len(note or ""):].splitlines() if line.strip()]
    return {"note": cosigned, "size": size, "key": request.app.state.verifier_key, "witnesses": witnesses}


@router.get("/ledger")
def ledger(request: Request, who: Page = page(*EVERYONE),
           index: Annotated[int | None, Query(ge=0, le=2**62)] = None) -> HTMLResponse:
    store = request.app.state.store
    context = _ledger_head(request)
    if index is not None:
        if who[0].role != "auditor":
            raise refuse(request, 403, f"role {who[0].role} may not read ledger entries", who[0])
        try:
            with reading(request, who[0], "ledger_entry", f"entry {index}"):
                proof = inclusion_proof(store, index)
            trusted = check_proof(proof, request.app.state.verifier_key)
            context.update(proof=proof, entry=json.dumps(json.loads(proof["entry"]), indent=2, ensure_ascii=False),
                           verified=f"entry {index} is in the ledger of {trusted.size:,} entries signed by {trusted.origin}")
        except (LedgerError, ValueError) as exc:
            context["error"] = str(exc)
        context["index"] = index
    return _render(request, "ledger.html", who, **context)


@router.post("/ledger/check")
def ledger_check(request: Request, proof: Annotated[str, Form(max_length=200_000)],
                 checkpoint: Annotated[str, Form(max_length=10_000)] = "", who: Page = page(*EVERYONE)) -> HTMLResponse:
    """Check a proof someone holds (from `taxgate ledger prove` or the API) against a checkpoint."""
    context = {**_ledger_head(request), "pasted": proof}
    try:
        given = read_proof(proof)
        trusted = check_proof(given, request.app.state.verifier_key, checkpoint.strip() + "\n" if checkpoint.strip() else None)
        context["checked"] = f"Proof checked: entry {given['index']} is in the ledger of {trusted.size:,} entries."
    except ValueError as exc:  # a proof that cannot be read, a bad signature, a path that does not lead to the root
        context["check_error"] = f"Proof REJECTED: {exc}"
    page = _render(request, "ledger.html", who, **context)
    if "check_error" in context:
        page.status_code = 422  # the page says why, in one line
    return page


@router.get("/accounting")
def accounting_page(request: Request, who: Page = page("auditor"), tin: str = "") -> HTMLResponse:
    rows, error = None, ""
    if tin:
        from taxgate.normalize.text import digits

        if len(digits(tin)) != 9:
            error = "A TIN has nine digits."
        else:
            with reading(request, who[0], "accounting", f"tin {digits(tin)}"):
                rows = accounting(request.app.state.store, tin)
    return _render(request, "accounting.html", who, tin=tin[:20], rows=rows, error=error)


@router.get("/refusals")
def refusals(request: Request, who: Page = page("auditor")) -> HTMLResponse:
    return _render(request, "refusals.html", who, refusals=accounts.refusals(request.app.state.store, 500))


@router.get("/reports/oversight.{fmt}")
def oversight_report(request: Request, fmt: str, who: Page = page("court", "auditor")) -> Response:
    from taxgate.reports.oversight import oversight

    if fmt not in ("html", "pdf"):
        raise HTTPException(404)
    store, settings = request.app.state.store, request.app.state.settings
    folder = settings.data_dir / "reports"
    out = folder / f"oversight-{_ledger_size(store)}"  # drawn once per ledger size, then served as drawn
    html, pdf = out.with_suffix(".html"), out.with_suffix(".pdf")
    with _drawing:
        if not (html.is_file() and pdf.is_file()):
            folder.mkdir(parents=True, exist_ok=True)
            for old in folder.glob("oversight-*"):
                old.unlink(missing_ok=True)
            html, pdf = oversight(store, out, settings.policy)
    return FileResponse(html if fmt == "html" else pdf, filename=f"oversight.{fmt}",
                        media_type="text/html; charset=utf-8" if fmt == "html" else "application/pdf")


# -- administration and one's own account -----------------------------------------------------

def _users_page(request: Request, who: Page, status: int = 200, **context) -> HTMLResponse:
    store = request.app.state.store
    return _render(request, "users.html", who, status, users=accounts.list_users(store), roles=accounts.ROLES,
                   events=accounts.account_events(store, 50), **context)


@router.get("/users")
def users(request: Request, who: Page = page("admin")) -> HTMLResponse:
    return _users_page(request, who)


@router.post("/users")
def add_user(request: Request, username: Annotated[str, Form(max_length=64)], role: Annotated[str, Form(max_length=16)],
             password: Annotated[str, Form(max_length=1024)], agency: Annotated[str, Form(max_length=64)] = "",
             who: Page = page("admin")):
    try:
        accounts.add_user(request.app.state.store, username, role, agency, password, by=who[0].username, via="console")
    except AccountError as exc:
        return _users_page(request, who, 422, error=str(exc))
    return _done(request, "/users", f"User {username} added.")


@router.post("/users/{username}/disable")
def disable(request: Request, username: UserName, who: Page = page("admin")):
    try:
        accounts.disable_user(request.app.state.store, username, by=who[0].username, via="console")
    except AccountError as exc:
        return _users_page(request, who, 404 if str(exc).startswith("no user") else 409, error=str(exc))
    return _done(request, "/users", f"User {username} disabled: their sessions ended and tokens were revoked.")


@router.post("/users/{username}/enable")
def enable(request: Request, username: UserName, who: Page = page("admin")):
    try:
        accounts.enable_user(request.app.state.store, username, by=who[0].username, via="console")
    except AccountError as exc:
        return _users_page(request, who, 404 if str(exc).startswith("no user") else 409, error=str(exc))
    return _done(request, "/users", f"User {username} enabled (their old tokens stay revoked).")


def _account_page(request: Request, who: Page, status: int = 200, **context) -> HTMLResponse:
    return _render(request, "account.html", who, status, tokens=accounts.list_tokens(request.app.state.store,
                                                                                      who[0].username), **context)


@router.get("/account")
def account(request: Request, who: Page = page(*EVERYONE)) -> HTMLResponse:
    return _account_page(request, who)


@router.post("/account/tokens")
def issue_own_token(request: Request, label: Annotated[str, Form(max_length=200)] = "", who: Page = page(*EVERYONE)):
    """A token for the signed-in user itself: nobody issues a token for someone else."""
    user = who[0]
    try:
        issued = accounts.issue_token(request.app.state.store, user.username, label, by=user.username, via="console")
    except AccountError as exc:
        return _account_page(request, who, 409, error=str(exc))
    return _account_page(request, who, 201, issued=issued)


@router.post("/account/tokens/{token_id}/revoke")
def revoke_own_token(request: Request, token_id: Id, who: Page = page(*EVERYONE)):
    try:
        accounts.revoke_token(request.app.state.store, token_id, by=who[0].username, via="console",
                              owner=who[0].username)
    except AccountError as exc:
        return _account_page(request, who, 404 if str(exc).startswith("no token") else 409, error=str(exc))
    return _done(request, "/account", f"Token {token_id} revoked.")


@router.post("/account/password")
async def change_password(request: Request, current: Annotated[str, Form(max_length=1024)],
                          new: Annotated[str, Form(max_length=1024)], who: Page = page(*EVERYONE)):
    """A new password, given the current one. Every session and token of the user ends (whoever
    knew the old password may hold one); the user signs in again."""
    state, user = request.app.state, who[0]
    if await gate.run(accounts.by_password, state.store, user.username, current) is None:
        await run_in_threadpool(refuse, request, 403, "password change with a wrong current password", user)
        return await run_in_threadpool(lambda: _account_page(request, who, 403, error="The current password is wrong."))
    try:
        await run_in_threadpool(lambda: accounts.set_password(state.store, user.username, new, by=user.username,
                                                               via="console"))
    except AccountError as exc:
        refused = str(exc)
        return await run_in_threadpool(lambda: _account_page(request, who, 422, error=refused))
    response = _done(request, "/login", "Password changed: every session and token of yours has ended. Sign in again.")
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/reads")
def reads_page(request: Request, who: Page = page("auditor"),
               username: Annotated[str, Query(max_length=64)] = "", event: Annotated[str, Query(max_length=32)] = "",
               object: Annotated[str, Query(max_length=200)] = "") -> HTMLResponse:
    found = accounts.reads(request.app.state.store, 500, username, event, object)
    return _render(request, "reads.html", who, reads=found, query={"username": username, "event": event,
                                                                    "object": object})
