"""The service: the JSON API, the console, and the background work, in one FastAPI app."""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.exception_handlers import http_exception_handler
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from taxgate.ledger import TamperedError, load_signer
from taxgate.policy import load_policies
from taxgate.service import api, console, jobs, tlog
from taxgate.service.access import LoginNeeded, session_of
from taxgate.service.settings import Settings
from taxgate.store import Store, open_store

log = logging.getLogger("taxgate.service")
STATIC = Path(__file__).parent / "static"
# The console needs nothing from elsewhere: scripts, styles and images from this origin only; no frames.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


SIGN_INS_PER_MINUTE = 10  # per user name, right or wrong


class Limiter:
    """So many per minute per key (uploads per requester, sign-ins per user name), in a moving
    window, in this process's memory."""

    def __init__(self, per_minute: int):
        self.item = RateLimitItemPerMinute(per_minute)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def admit(self, key: str) -> tuple[bool, int]:
        if self.limiter.hit(self.item, key):
            return True, 0
        reset = self.limiter.get_window_stats(self.item, key).reset_time
        return False, max(1, int(reset - time.time()) + 1)


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    store = store or open_store(settings.database_url)
    signer = load_signer()  # made on first use; its verifier key is published with each checkpoint

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        workers, timer = [], None
        stop = app.state.stop
        if settings.workers > 0:
            requeued = jobs.requeue_interrupted(store)
            if requeued:
                log.info("queued %d interrupted submission(s) again; they resume from their mark", requeued)
            context = multiprocessing.get_context("spawn")
            for n in range(settings.workers):
                worker = context.Process(target=jobs.work, args=(settings, app.state.wake, stop),
                                         name=f"taxgate-worker-{n}", daemon=True)
                worker.start()
                workers.append(worker)
        if settings.release_every > 0:
            timer = jobs.Timer(store, settings)
            timer.start()
        try:
            yield
        finally:
            stop.set()
            app.state.wake.set()
            if timer is not None:
                timer.stopped.set()
            for worker in workers:
                worker.join(timeout=10)
                if worker.is_alive():  # mid-batch: stopped; the batch resumes from its mark next start
                    worker.kill()

    app = FastAPI(
        title="taxgate", version="1",
        summary="A disclosure gateway for confidential taxpayer information (26 U.S.C. § 6103(i)(2)).",
        description="Bearer tokens for /api (`taxgate users token NAME`); the console at / signs in with a password.",
        lifespan=lifespan,
    )
    context = multiprocessing.get_context("spawn") if settings.workers > 0 else None
    app.state.settings, app.state.store = settings, store
    app.state.limiter = Limiter(settings.uploads_per_minute)
    app.state.sign_ins = Limiter(SIGN_INS_PER_MINUTE)
    app.state.wake = context.Event() if context else threading.Event()
    app.state.stop = context.Event() if context else threading.Event()
    app.state.policies = lambda: load_policies(settings.policy)
    app.state.verifier_key = signer.verifier_key()

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")  # taxpayer information is never cached
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
        if path.startswith(("/api", "/log/", "/static", "/openapi.json", "/docs", "/redoc")) or request.headers.get("hx-request"):
            return await http_exception_handler(request, exc)
        found = await run_in_threadpool(session_of, request)
        user, csrf = found if found else (None, "")
        return console.templates.TemplateResponse(
            request, "error.html", {"user": user, "csrf": csrf, "status": exc.status_code, "detail": exc.detail},
            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(TamperedError)
    async def tampered(request: Request, exc: TamperedError):
        """The store disagrees with its ledger where an action would rely on it: 409, nothing done."""
        log.error("refused: %s", exc)
        return await http_error(request, StarletteHTTPException(409, str(exc)))

    app.include_router(api.router)
    app.include_router(tlog.router)
    app.include_router(console.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
