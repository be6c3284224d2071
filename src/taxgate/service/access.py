"""Who may call what. API calls carry a bearer token; console pages a session cookie, and every
console form a CSRF token. Each refusal (401, 403, another agency's batch) is logged in the store
(`accounts.log_refusal`) before it is answered, and each read of taxpayer information is logged
(`reading`). Roles per route are declared where the route is, with `allow(...)` (API) or
`page(...)` (console); the tests walk every route with every role."""

from __future__ import annotations

import hmac
from contextlib import contextmanager

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from taxgate import accounts
from taxgate.accounts import Principal
from taxgate.service.deps import state_of

SESSION_COOKIE = "taxgate_session"
bearer = HTTPBearer(auto_error=False, description="An API token: `taxgate users token NAME`.")
EVERYONE = tuple(accounts.ROLES)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def origin(request: Request) -> str:
    """The client's address as the connection says (a proxy's X-Forwarded-For counts only when
    `taxgate serve --forwarded-allow-ips` names that proxy)."""
    return request.client.host if request.client else ""


def refuse(
    request: Request,
    status: int,
    reason: str,
    user: Principal | None = None,
    detail: str | None = None,
    headers: dict | None = None,
) -> HTTPException:
    """Log the refusal, and return the exception that answers it (detail: what the caller is told)."""
    accounts.log_refusal(
        state_of(request).store,
        request.method,
        request.url.path,
        status,
        reason,
        user,
        client=origin(request),
    )
    return HTTPException(status, detail or reason, headers=headers)


@contextmanager
def reading(request: Request, user: Principal, event: str, about: str):
    """Log a read of taxpayer information (IRS Pub. 1075 audit record): success when the block
    ends, failure (with the status) when it raises."""
    store = state_of(request).store
    try:
        yield
    except Exception as exc:
        why = (
            f"{exc.status_code}: {exc.detail}"
            if isinstance(exc, HTTPException)
            else type(exc).__name__
        )
        accounts.log_read(store, user, event, about, "failure", origin(request), why)
        raise
    accounts.log_read(store, user, event, about, "success", origin(request))


def api_user(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> Principal:
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise refuse(
            request,
            401,
            "no bearer token",
            detail="an API token is needed (Authorization: Bearer ...)",
            headers=challenge,
        )
    user = accounts.by_token(state_of(request).store, credentials.credentials)
    if user is None:
        raise refuse(
            request,
            401,
            "token not valid, revoked, or its user disabled",
            detail="the token is not valid",
            headers=challenge,
        )
    return user


def allow(*roles: str):
    """An API route's guard: a valid token whose user has one of `roles`."""

    def guard(request: Request, user: Principal = Depends(api_user)) -> Principal:
        if user.role not in roles:
            raise refuse(request, 403, f"role {user.role} may not use this route", user)
        return user

    return Depends(guard)


class LoginNeeded(Exception):
    """A console page without a session: answered by a redirect to the sign-in page."""


def session_of(request: Request) -> tuple[Principal, str] | None:
    cookie = request.cookies.get(SESSION_COOKIE, "")
    return accounts.by_session(state_of(request).store, cookie) if cookie else None


def page(*roles: str, streamed: bool = False):
    """A console page's guard: a live session whose user has one of `roles`. Returns (user, csrf).
    A `streamed` upload is not read here: its handler checks the form's `csrf` field once the
    stream is parsed, before anything is kept (`request.state.csrf`)."""

    async def guard(request: Request) -> tuple[Principal, str]:
        found = await run_in_threadpool(session_of, request)
        if found is None:
            await run_in_threadpool(refuse, request, 401, "no console session")
            raise LoginNeeded()
        user, csrf = found
        if user.role not in roles:
            raise await run_in_threadpool(
                refuse, request, 403, f"role {user.role} may not use this page", user
            )
        if request.method not in ("GET", "HEAD"):
            sent = request.headers.get("x-csrf-token", "")
            if (
                not sent
                and streamed
                and request.headers.get("content-type", "").startswith("multipart/form-data")
            ):
                request.state.csrf = csrf
                return user, csrf
            if not sent and request.headers.get("content-type", "").startswith(FORM_TYPES):
                sent = str(
                    (await request.form()).get("csrf", "")
                )  # cached: the page reads the same form
            if not sent or not hmac.compare_digest(sent.encode(), csrf.encode()):
                raise await run_in_threadpool(
                    refuse,
                    request,
                    403,
                    "CSRF token missing or wrong",
                    user,
                    "the form has expired: reload the page",
                )
        return user, csrf

    return Depends(guard)
