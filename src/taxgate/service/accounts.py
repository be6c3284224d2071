"""Signing in and out, one's own account (password, API tokens), the users an administrator
manages, and the audit trail auditors read (refused access, reads of taxpayer data, changes of
access). No route issues a token for anyone but the caller."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from taxgate import accounts
from taxgate.accounts import AccountError, Principal
from taxgate.service.access import EVERYONE, SESSION_COOKIE, allow, origin, page, refuse
from taxgate.service.deps import ERRORS, Id, State, UserName, state_of
from taxgate.service.pages import (
    LOGIN_COOKIE,
    PAGE_SIZE,
    Page,
    Paging,
    csv_download,
    done,
    gate,
    render,
    safe_next,
)

api = APIRouter(prefix="/api", responses=ERRORS)
pages = APIRouter(include_in_schema=False)


@api.get("/refusals", summary="Accesses refused, newest first")
def get_refusals(
    request: Request,
    state: State,
    user: Principal = allow("auditor"),
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> dict:
    return {"refusals": accounts.refusals(state.store, limit)}


@api.get(
    "/reads", summary="Reads of taxpayer information (IRS Pub. 1075 audit records), newest first"
)
def get_reads(
    request: Request,
    state: State,
    user: Principal = allow("auditor"),
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
    username: Annotated[str, Query(max_length=64)] = "",
    event: Annotated[str, Query(max_length=32)] = "",
    object: Annotated[str, Query(max_length=200)] = "",
) -> dict:
    return {"reads": accounts.reads(state.store, limit, username, event, object)}


@api.get(
    "/accounts/events",
    summary="Changes of access (users, passwords, tokens), ledgered, newest first",
)
def get_account_events(
    request: Request,
    state: State,
    user: Principal = allow("admin", "auditor"),
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> dict:
    return {"events": accounts.account_events(state.store, limit)}


class UserIn(BaseModel):
    """A user an administrator adds: without a password or a token (an administrator who could set
    them could act as the user). The operator sets the first one on the host."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$")
    role: Literal["requester", "officer", "court", "auditor", "admin"]
    agency: str = Field(default="", max_length=64)


@api.get("/whoami", summary="The token's user and role")
def whoami(user: Principal = allow(*EVERYONE)) -> dict:
    return {"username": user.username, "role": user.role, "agency": user.agency}


@api.get("/users", summary="Users and their roles")
def get_users(request: Request, state: State, user: Principal = allow("admin")) -> dict:
    return {"users": accounts.list_users(state.store)}


@api.post(
    "/users",
    status_code=201,
    summary="Add a user",
    responses={409: {"description": "Exists or invalid"}},
)
def post_user(
    request: Request, state: State, body: UserIn, user: Principal = allow("admin")
) -> dict:
    try:
        added = accounts.add_user(
            state.store, body.username, body.role, body.agency, None, by=user.username, via="api"
        )
    except AccountError as exc:
        raise HTTPException(409, str(exc)) from None
    return {"username": added.username, "role": added.role, "agency": added.agency}


def account_failure(exc: AccountError) -> HTTPException:
    return HTTPException(404 if str(exc).startswith(("no user", "no token")) else 409, str(exc))


# What an administrator may do to a user (API and console), and what the console says after it.
USER_CHANGES = {
    "disable": (accounts.disable_user, "disabled: their sessions ended and tokens were revoked"),
    "enable": (accounts.enable_user, "enabled (their old tokens stay revoked)"),
}


def _change_user(state: State, user: Principal, username: str, change: str) -> dict:
    try:
        USER_CHANGES[change][0](state.store, username, by=user.username, via="api")
    except AccountError as exc:
        raise account_failure(exc) from None
    return {"username": username, "disabled": change == "disable"}


@api.post(
    "/users/{username}/disable",
    summary="Disable a user: tokens and sessions stop at once (ledgered)",
    responses={
        404: {"description": "No such user"},
        409: {"description": "Already, or the last admin"},
    },
)
def post_disable(
    request: Request, state: State, username: UserName, user: Principal = allow("admin")
) -> dict:
    return _change_user(state, user, username, "disable")


@api.post(
    "/users/{username}/enable",
    summary="Enable a disabled user again (ledgered; old tokens stay revoked)",
    responses={404: {"description": "No such user"}, 409: {"description": "Not disabled"}},
)
def post_enable(
    request: Request, state: State, username: UserName, user: Principal = allow("admin")
) -> dict:
    return _change_user(state, user, username, "enable")


@api.get("/tokens", summary="The caller's own API tokens (ids and labels, never the tokens)")
def get_tokens(request: Request, state: State, user: Principal = allow(*EVERYONE)) -> dict:
    return {"tokens": accounts.list_tokens(state.store, user.username)}


@api.delete(
    "/tokens/{token_id}",
    summary="Revoke a token: one's own, or (an admin) anyone's (ledgered)",
    responses={
        404: {"description": "No such token of yours"},
        409: {"description": "Already revoked"},
    },
)
def delete_token(
    request: Request, state: State, token_id: Id, user: Principal = allow(*EVERYONE)
) -> dict:
    try:
        owner = accounts.revoke_token(
            state.store,
            token_id,
            by=user.username,
            via="api",
            owner=None if user.role == "admin" else user.username,
        )
    except AccountError as exc:
        raise account_failure(exc) from None
    return {"token": token_id, "username": owner, "revoked": True}


@api.get("/policy", summary="The policy versions in force and their agencies")
def get_policy(request: Request, state: State, user: Principal = allow("admin")) -> dict:
    return {"versions": [policy_view(p) for p in state.policies()]}


def policy_view(p) -> dict:
    def period(x) -> dict:
        return {
            "from": x.effective_from.isoformat(),
            "to": x.effective_to.isoformat() if x.effective_to else None,
        }

    return {
        "name": p.name,
        "version": p.version,
        "in_force": period(p.period),
        "agencies": [
            {
                "code": a.code,
                "name": a.name,
                "safeguards_deficient": a.safeguards_deficient,
                "signers": [s.name for s in a.signers],
            }
            for a in p.agencies.values()
        ],
        "agreements": [
            {"agency": a.agency, "name": a.name, **period(a.period)} for a in p.agreements
        ],
        "disclosable_items": sorted(p.disclosable_items),
    }


@pages.get("/login")
def login_form(
    request: Request, state: State, next: str = "/", failed: bool = False
) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = render(
        request, "login.html", None, next=safe_next(next), login_token=token, failed=failed
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=state.settings.secure_cookies,
        max_age=1800,
    )
    return response


@pages.post("/login")
async def login(
    request: Request,
    state: State,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    login_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
):
    """Sign in. Throttled per client address and per user name at that address (every attempt):
    a guesser is slowed, and nobody at another address can lock the user out. (Behind a proxy,
    name it with --forwarded-allow-ips, or every client is the proxy.)"""
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), login_token.encode()):
        raise await run_in_threadpool(
            refuse,
            request,
            403,
            "sign-in form without its token",
            None,
            "the sign-in form has expired: reload it",
        )
    client, name = origin(request), username.strip().lower()[:64]
    ok, retry = await run_in_threadpool(state.sign_ins.admit, f"sign-in:{client}")
    if ok:  # every attempt on a name counts before the password is checked: concurrent guesses cannot overrun it
        ok, retry = await run_in_threadpool(state.failures.admit, f"attempt:{name}:{client}")
    if not ok:
        raise await run_in_threadpool(
            refuse,
            request,
            429,
            f"too many sign-ins for {name!r} from {client}",
            None,
            f"too many attempts: try again in {retry} s",
            {"Retry-After": str(retry)},
        )
    user = await gate.run(accounts.by_password, state.store, name, password)
    if user is None:
        await run_in_threadpool(refuse, request, 401, f"wrong user name or password for {name!r}")
        return RedirectResponse(f"/login?failed=1&next={quote(safe_next(next))}", status_code=303)
    session, _csrf = await run_in_threadpool(accounts.open_session, state.store, user)
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session,
        httponly=True,
        samesite="strict",
        secure=state.settings.secure_cookies,
        max_age=accounts.SESSION_HOURS * 3600,
    )
    response.delete_cookie(LOGIN_COOKIE)
    return response


@pages.post("/logout")
def logout(request: Request, state: State, who: Page = page(*EVERYONE)) -> RedirectResponse:
    accounts.close_session(state.store, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


REFUSAL_COLUMNS = (
    "at",
    "username",
    "role",
    "method",
    "path",
    "status",
    "reason",
    "client",
    "repeats",
    "last",
)


@pages.get("/refusals")
def refusals(
    request: Request,
    state: State,
    who: Page = page("auditor"),
    username: Annotated[str, Query(max_length=64)] = "",
    status: Annotated[int | None, Query(ge=100, le=599)] = None,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> HTMLResponse:
    counted: list[int] = []
    rows = accounts.refusals(state.store, PAGE_SIZE, offset, username, status, counted)
    paging = Paging(counted[0], offset, PAGE_SIZE, {"username": username, "status": status})
    return render(
        request,
        "refusals.html",
        who,
        refusals=rows,
        paging=paging,
        username=username,
        status=status,
    )


@pages.get("/refusals.csv")
def refusals_csv(
    request: Request,
    state: State,
    who: Page = page("auditor"),
    username: Annotated[str, Query(max_length=64)] = "",
    status: Annotated[int | None, Query(ge=100, le=599)] = None,
):
    return csv_download(
        REFUSAL_COLUMNS,
        accounts.refusals(state.store, 2**31 - 1, 0, username, status),
        "refused-access.csv",
    )


def _users_page(request: Request, who: Page, status: int = 200, **context) -> HTMLResponse:
    store = state_of(request).store
    return render(
        request,
        "users.html",
        who,
        status,
        users=accounts.list_users(store),
        roles=accounts.ROLES,
        events=accounts.account_events(store, 50),
        **context,
    )


@pages.get("/users")
def users(request: Request, who: Page = page("admin")) -> HTMLResponse:
    return _users_page(request, who)


@pages.post("/users")
def add_user(
    request: Request,
    state: State,
    username: Annotated[str, Form(max_length=64)],
    role: Annotated[str, Form(max_length=16)],
    agency: Annotated[str, Form(max_length=64)] = "",
    who: Page = page("admin"),
):
    try:
        accounts.add_user(
            state.store, username, role, agency, None, by=who[0].username, via="console"
        )
    except AccountError as exc:
        return _users_page(request, who, 422, error=str(exc))
    return done(
        request,
        "/users",
        f"User {username} added, without a password: the operator sets it on the host "
        f"(taxgate users password {username}).",
    )


def _user_change(change: str):
    apply, said = USER_CHANGES[change]

    def handler(request: Request, state: State, username: UserName, who: Page = page("admin")):
        try:
            apply(state.store, username, by=who[0].username, via="console")
        except AccountError as exc:
            return _users_page(request, who, account_failure(exc).status_code, error=str(exc))
        return done(request, "/users", f"User {username} {said}.")

    handler.__name__ = f"{change}_user"
    return handler


for _change in USER_CHANGES:  # POST /users/{username}/disable, /users/{username}/enable
    pages.post(f"/users/{{username}}/{_change}")(_user_change(_change))


def _account_page(request: Request, who: Page, status: int = 200, **context) -> HTMLResponse:
    return render(
        request,
        "account.html",
        who,
        status,
        tokens=accounts.list_tokens(state_of(request).store, who[0].username),
        **context,
    )


@pages.get("/account")
def account(request: Request, who: Page = page(*EVERYONE)) -> HTMLResponse:
    return _account_page(request, who)


@pages.post("/account/tokens")
def issue_own_token(
    request: Request,
    state: State,
    label: Annotated[str, Form(max_length=200)] = "",
    who: Page = page(*EVERYONE),
):
    """A token for the signed-in user itself: nobody issues a token for someone else."""
    user = who[0]
    try:
        issued = accounts.issue_token(
            state.store, user.username, label, by=user.username, via="console"
        )
    except AccountError as exc:
        return _account_page(request, who, 409, error=str(exc))
    return _account_page(request, who, 201, issued=issued)


@pages.post("/account/tokens/{token_id}/revoke")
def revoke_own_token(request: Request, state: State, token_id: Id, who: Page = page(*EVERYONE)):
    try:
        accounts.revoke_token(
            state.store, token_id, by=who[0].username, via="console", owner=who[0].username
        )
    except AccountError as exc:
        return _account_page(
            request, who, 404 if str(exc).startswith("no token") else 409, error=str(exc)
        )
    return done(request, "/account", f"Token {token_id} revoked.")


@pages.post("/account/password")
async def change_password(
    request: Request,
    state: State,
    current: Annotated[str, Form(max_length=1024)],
    new: Annotated[str, Form(max_length=1024)],
    who: Page = page(*EVERYONE),
):
    """A new password, given the current one. Every session and token of the user ends (whoever
    knew the old password may hold one); the user signs in again."""
    user = who[0]
    ok, retry = await run_in_threadpool(state.failures.admit, f"password-change:{user.username}")
    if not ok:  # a stolen session must not become a way to guess the password
        raise await run_in_threadpool(
            refuse,
            request,
            429,
            "too many password changes",
            user,
            f"too many attempts: try again in {retry} s",
            {"Retry-After": str(retry)},
        )
    if await gate.run(accounts.by_password, state.store, user.username, current) is None:
        await run_in_threadpool(
            refuse, request, 403, "password change with a wrong current password", user
        )
        return await run_in_threadpool(
            lambda: _account_page(request, who, 403, error="The current password is wrong.")
        )
    try:
        await run_in_threadpool(
            lambda: accounts.set_password(
                state.store, user.username, new, by=user.username, via="console"
            )
        )
    except AccountError as exc:
        refused = str(exc)
        return await run_in_threadpool(lambda: _account_page(request, who, 422, error=refused))
    response = done(
        request,
        "/login",
        "Password changed: every session and token of yours has ended. Sign in again.",
    )
    response.delete_cookie(SESSION_COOKIE)
    return response


@pages.get("/reads")
def reads_page(
    request: Request,
    state: State,
    who: Page = page("auditor"),
    username: Annotated[str, Query(max_length=64)] = "",
    event: Annotated[str, Query(max_length=32)] = "",
    object: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    found = accounts.reads(state.store, 500, username, event, object)
    return render(
        request,
        "reads.html",
        who,
        reads=found,
        query={"username": username, "event": event, "object": object},
    )
