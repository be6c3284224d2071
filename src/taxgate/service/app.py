"""The service: the JSON API, the console, and the background work, in one FastAPI app."""

from __future__ import annotations

import json
import logging
import multiprocessing
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote_plus

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from taxgate.accounts.limits import Limiter
from taxgate.domain import unstorable_text
from taxgate.ledger import TamperedError, load_signer
from taxgate.policy import load_policies
from taxgate.service import accounts, batches, jobs, ledger, orders, oversight, reviews, tlog
from taxgate.service.access import LoginNeeded, refuse, session_of
from taxgate.service.deps import ServiceState
from taxgate.service.pages import render
from taxgate.service.settings import Settings
from taxgate.store import Store, open_store

log = logging.getLogger("taxgate.service")
STATIC = Path(__file__).parent / "static"
# The console needs nothing from elsewhere: scripts, styles and images from this origin only; no frames.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


SIGN_INS_PER_MINUTE = 30  # per client address, right or wrong
FAILURES_PER_MINUTE = (
    10  # attempts per user name and client address: nobody elsewhere can lock a user out
)
STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")


def same_origin(request: Request) -> bool:
    """No Origin header (not a browser, or a same-origin GET), or this server's own origin."""
    sent = request.headers.get("origin")
    if sent is None:
        return True
    host = request.headers.get("host", "")
    return sent in (f"http://{host}", f"https://{host}")


def secure(response, path: str, tls: bool) -> None:
    """The headers every answer carries, pages and errors alike."""
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on its own forms
    response.headers["Referrer-Policy"] = "same-origin"
    if tls:
        response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    if not path.startswith("/static/"):
        response.headers.setdefault(
            "Cache-Control", "no-store"
        )  # taxpayer information is never cached


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    store = store or open_store(settings.database_url)
    signer = load_signer()  # made on first use; its verifier key is published with each checkpoint

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        supervisor, timer = None, None
        if settings.workers > 0:
            supervisor = jobs.Supervisor(
                store, settings, state.wake, state.stop, multiprocessing.get_context("spawn")
            )
            supervisor.start()
            state.supervisor = supervisor
        if settings.release_every > 0:
            timer = jobs.Timer(store, settings)
            timer.start()
        try:
            yield
        finally:
            state.stop.set()
            state.wake.set()
            if timer is not None:
                timer.stopped.set()
            if supervisor is not None:
                supervisor.shutdown()

    app = FastAPI(
        title="taxgate",
        version="1",
        summary="A disclosure gateway for confidential taxpayer information (26 U.S.C. § 6103(i)(2)).",
        description="Bearer tokens for /api (`taxgate users token NAME`); the console at / signs in with a password.",
        lifespan=lifespan,
    )
    context = multiprocessing.get_context("spawn") if settings.workers > 0 else None
    state = ServiceState(
        store=store,
        settings=settings,
        policies=lambda: load_policies(settings.policy),
        limiter=Limiter(store, settings.uploads_per_minute),
        sign_ins=Limiter(store, SIGN_INS_PER_MINUTE),
        failures=Limiter(store, FAILURES_PER_MINUTE),
        wake=context.Event() if context else threading.Event(),
        stop=context.Event() if context else threading.Event(),
        verifier_key=signer.verifier_key(),
    )
    app.state.service = (
        state  # the one thing on app.state: routes take it as a typed dependency (deps.State)
    )

    @app.middleware("http")
    async def headers(request: Request, call_next):
        if "\x00" in request.url.path or "\x00" in unquote_plus(request.url.query):
            # No text the service keeps can hold a NUL (PostgreSQL's text refuses it): a URL with
            # one names nothing, and is answered so on either store, not as a fault of ours.
            response = JSONResponse({"detail": "a URL may not contain a NUL character"}, 400)
        elif request.method in STATE_CHANGING and not same_origin(request):
            # A browser names the page a form or script came from; another site's is refused.
            await run_in_threadpool(
                refuse, request, 403, f"cross-site request from {request.headers['origin'][:100]}"
            )
            response = JSONResponse({"detail": "cross-site requests are refused"}, status_code=403)
        elif (
            text_body_too_large(request) or (wrong := await unstorable_body(request)) == "too large"
        ):
            response = JSONResponse(
                {"detail": f"a JSON or form body is limited to {TEXT_BODY_LIMIT // 1024} KiB"}, 413
            )
        elif wrong:
            response = JSONResponse({"detail": f"a field may not contain {wrong}"}, 400)
        else:
            try:
                response = await call_next(request)
            except (
                Exception
            ):  # a fault of ours: logged here, answered with the same headers as any page
                log.exception("%s %s failed", request.method, request.url.path)
                response = JSONResponse(
                    {"detail": "internal error; the service's log has the details"}, 500
                )
        secure(response, request.url.path, settings.secure_cookies)
        return response

    @app.exception_handler(LoginNeeded)
    async def login_needed(request: Request, exc: LoginNeeded):
        if request.headers.get("hx-request"):  # htmx: send the whole page to the sign-in form
            return RedirectResponse("/login", status_code=200, headers={"HX-Redirect": "/login"})
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        """The API answers JSON; the console answers a page (a refusal says no more than the API's)."""
        path = request.url.path
        if path.startswith(
            ("/api", "/log/", "/static", "/openapi.json", "/docs", "/redoc")
        ) or request.headers.get("hx-request"):
            return await http_exception_handler(request, exc)
        found = await run_in_threadpool(session_of, request)
        user, csrf = found if found else (None, "")
        page = render(
            request,
            "error.html",
            (user, csrf) if user else None,
            exc.status_code,
            status=exc.status_code,
            detail=exc.detail,
        )
        for name, value in (getattr(exc, "headers", None) or {}).items():
            page.headers[name] = value
        return page

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        """A console page asked with a value it cannot take (`?incident=abc`) says so in a page, in
        words; the API keeps FastAPI's 422 detail."""
        path = request.url.path
        if path.startswith(("/api", "/log/")) or request.headers.get("hx-request"):
            return await request_validation_exception_handler(request, exc)
        said = "; ".join(
            f"{'.'.join(str(x) for x in e.get('loc', ())[1:]) or 'the form'}: {e.get('msg', '')}"
            for e in exc.errors()[:3]
        )
        return await http_error(
            request, StarletteHTTPException(422, f"The page cannot take that: {said}.")
        )

    @app.exception_handler(TamperedError)
    async def tampered(request: Request, exc: TamperedError):
        """The store disagrees with its ledger where an action would rely on it: 409, nothing done."""
        log.error("refused: %s", exc)
        return await http_error(request, StarletteHTTPException(409, str(exc)))

    for domain in (
        batches,
        reviews,
        orders,
        ledger,
        oversight,
        accounts,
    ):  # each: its API routes and its pages
        app.include_router(domain.api)
        app.include_router(domain.pages)
    app.include_router(tlog.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


# The routes that stream a batch's files (multipart, any bytes in them, their own limits); every
# other body is the fields of a JSON document or a form, read whole and checked here.
STREAMED = {("POST", "/api/batches"), ("POST", "/batches")}
TEXT_BODY_LIMIT = 1024 * 1024  # the largest a route takes is a proof of 200,000 characters


def _media_type(request: Request) -> str:
    """'json', 'form', 'multipart' or '' for a body a route would parse, as FastAPI decides: JSON
    for application/json and any application/*+json."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    main, _, sub = kind.partition("/")
    if main == "application" and (sub == "json" or sub.endswith("+json")):
        return "json"
    if kind == "application/x-www-form-urlencoded":
        return "form"
    if kind == "multipart/form-data":
        return "multipart"
    return ""


def _checked(request: Request) -> str:
    if (request.method, request.url.path) in STREAMED or request.method in ("GET", "HEAD"):
        return ""
    return _media_type(request)


def text_body_too_large(request: Request) -> bool:
    """A JSON or form body declared larger than any route takes (it is read whole, below)."""
    declared = request.headers.get("content-length", "")
    return bool(_checked(request)) and declared.isdigit() and int(declared) > TEXT_BODY_LIMIT


async def unstorable_body(request: Request) -> str | None:
    """What in a JSON or form body no store can keep as text (a NUL, a lone surrogate), or None;
    a body past the limit sent without a length is 'too large'. The body read here is the one the
    route reads (Starlette replays it)."""
    kind = _checked(request)
    if not kind:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > TEXT_BODY_LIMIT:
            return "too large"
    request._body = bytes(body)  # what Request.body() keeps, for the route to read again
    if kind == "multipart":  # no file reaches these routes: any NUL is in a field
        return "a NUL character" if b"\x00" in body else None
    if b"\x00" in body:
        return "a NUL character"
    if kind == "form":
        fields = parse_qsl(body.decode("utf-8", "surrogateescape"), keep_blank_values=True)
        return unstorable_text([text for field in fields for text in field])
    if b"\\u" not in body:  # a NUL or a surrogate inside a JSON string is spelled \u....
        return None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None  # not JSON: the route's validation answers it
    return unstorable_text(document)
