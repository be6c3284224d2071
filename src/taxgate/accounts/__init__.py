"""Who may use the service, and as what (docs/DESIGN.md "HTTP API"): users in one role each, argon2id
password hashes, API tokens kept only as SHA-256, console sessions with a CSRF token, and a log of
every access refused (`refusals`) and of every read of taxpayer data (`reads`).

No role obtains another's power: a token is issued only to its own user (signed in to the
console) or by the operator on the host (`taxgate users token`), never by an administrator for
someone else. Every change of access (a user added, disabled, enabled; a password set; a token
issued or revoked) is ledgered with who made it and through what (`account` entries).

Roles, least privilege first (the routes that each may use are listed in `service.access`):
- requester: one agency's batches only (submit, status, the response);
- officer: a disclosure officer: the review queue and its decisions, court orders as received;
- court: a court monitor: orders, notices and the oversight report, read-only;
- auditor: the ledger, proofs and the § 6103(p)(3)(A) accounting, read-only;
- admin: users and the policy; no taxpayer information.
"""

from __future__ import annotations

import getpass
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from taxgate.accounts.audit import log_read, log_refusal, reads, refusals  # noqa: F401  (re-exported)
from taxgate.ledger import Binding, Field, Ledger, at, sign_checkpoint
from taxgate.store import Store
from taxgate.store.models import AccountEvent, ApiToken, ConsoleSession, User

ROLES = {
    "requester": "an agency's requester: submits batches and reads its own agency's answers",
    "officer": "a disclosure officer: works the review queue and records court orders",
    "court": "a court monitor: orders, notices and reports, read-only",
    "auditor": "an auditor or privacy officer: ledger, proofs and accounting, read-only",
    "admin": "an administrator: users and the policy, no taxpayer information",
}
MIN_PASSWORD = 12
SESSION_HOURS = 8
_USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,63}")
_hasher = PasswordHasher()  # argon2id with the library's current (RFC 9106 low-memory) parameters


@cache
def _dummy() -> str:
    """The hash checked when the user is unknown, so that timing says nothing; made on first use,
    not on import (every command and verifying process would pay for an argon2 hash)."""
    return _hasher.hash("a password nobody has")


VIA = ("console", "api", "host")  # how a change of access was made


class AccountError(ValueError):
    """A user cannot be added or changed as asked; the message says why."""


def on_host() -> str:
    """Who acts when the operator runs `taxgate users ...` on the host: the login name."""
    try:
        return f"host:{getpass.getuser()}"
    except (KeyError, OSError):
        return "host:unknown"


def account_entry(row: dict) -> dict:
    """The ledger entry of a change of access."""
    return {
        "kind": "account",
        "event": row["event"],
        "user": row["username"],
        "role": row["role"],
        "token": row["token_id"],
        "by": row["actor"],
        "via": row["via"],
        "at": at(row["at"]),
    }


ACCOUNT = Binding(
    kind="account",
    table="account_events",
    index=AccountEvent.ledger_index,
    key=AccountEvent.id,
    fields=(
        Field("event", AccountEvent.event),
        Field("username", AccountEvent.username),
        Field("role", AccountEvent.role),
        Field("token_id", AccountEvent.token_id, "int?"),
        Field("actor", AccountEvent.actor),
        Field("via", AccountEvent.via),
        Field("at", AccountEvent.at, "moment"),
    ),
    entry=lambda row, _: account_entry(row),
    describe=lambda row: f"{row['event']} {row['username']} by {row['actor']}",
)
BINDINGS = (ACCOUNT,)


def _ledgered(
    store: Store,
    session: Session,
    event: str,
    user: User,
    by: str | None,
    via: str,
    token_id: int | None = None,
) -> None:
    """Record and ledger one change of access, in the caller's transaction."""
    if via not in VIA:
        raise ValueError(f"via must be one of {VIA}")
    row = {
        "event": event,
        "username": user.username,
        "role": user.role,
        "token_id": token_id,
        "actor": (by or on_host())[:200],
        "via": via,
        "at": datetime.now(UTC).replace(microsecond=0),
    }
    (index,) = Ledger(store).append(session, [account_entry(row)])
    session.add(AccountEvent(**row, ledger_index=index))


@dataclass(frozen=True)
class Principal:
    """Who is asking: detached from the store, safe to hand to templates."""

    id: int
    username: str
    role: str
    agency: str


def _principal(user: User) -> Principal:
    return Principal(user.id, user.username, user.role, user.agency)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")


def add_user(
    store: Store,
    username: str,
    role: str,
    agency: str = "",
    password: str | None = None,
    by: str | None = None,
    via: str = "host",
) -> Principal:
    """Add a user. A requester belongs to one agency; no other role has one. Without a password the
    user can only use API tokens. `by`: who adds it (default: the operator on the host)."""
    if not _USERNAME.fullmatch(username):
        raise AccountError(
            f"user name {username!r}: 2-64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit"
        )
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    agency = agency.strip()
    if (role == "requester") != bool(agency):
        raise AccountError("a requester needs --agency; other roles have none")
    if len(agency) > 64:
        raise AccountError("an agency's code has at most 64 characters")
    if password is not None:
        if via != "host":  # whoever sets a user's password can act as that user
            raise AccountError(
                "an administrator does not set another's password: the operator sets it on the host"
            )
        check_password(password)
    try:
        with store.session.begin() as session:
            user = User(
                username=username,
                role=role,
                agency=agency,
                created_at=datetime.now(UTC),
                password_hash=_hasher.hash(password) if password else "",
                disabled=False,
            )
            session.add(user)
            session.flush()
            _ledgered(store, session, "user_added", user, by, via)
            added = _principal(user)
    except IntegrityError:
        raise AccountError(f"user {username!r} exists") from None
    sign_checkpoint(
        store
    )  # a change of access is in a signed tree at once, before anyone relies on it
    return added


def _user(session, username: str, lock: bool = False) -> User:
    query = select(User).where(User.username == username)
    user = session.execute(query.with_for_update() if lock else query).scalar_one_or_none()
    if user is None:
        raise AccountError(f"no user {username!r}")
    return user


def _end_access(session: Session, user: User, now: datetime) -> int:
    """End every console session of the user and revoke every live token; returns the tokens revoked."""
    session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user.id))
    return session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    ).rowcount


def set_password(
    store: Store, username: str, password: str, by: str | None = None, via: str = "host"
) -> int:
    """Set a user's password. Whoever knew the old one may hold a session or a token made with it:
    every session ends and every token is revoked (the user signs in again and makes new ones).
    Returns how many tokens were revoked."""
    check_password(password)
    with store.session.begin() as session:
        user = _user(session, username, lock=True)
        user.password_hash = _hasher.hash(password)
        revoked = _end_access(session, user, datetime.now(UTC))
        _ledgered(store, session, "password_set", user, by, via)
    sign_checkpoint(store)
    return revoked


def _rehash(store: Store, user_id: int, stored: str, password: str) -> None:
    """The same password under the hasher's current parameters: not a change of access."""
    with store.session.begin() as session:
        session.execute(
            update(User)
            .where(User.id == user_id, User.password_hash == stored)
            .values(password_hash=_hasher.hash(password))
        )


def disable_user(store: Store, username: str, by: str | None = None, via: str = "host") -> None:
    """Disable a user: their tokens and sessions stop working at once. The last enabled
    administrator cannot be disabled: nobody could then manage users except from the host."""
    with store.session.begin() as session:
        user = _user(session, username, lock=True)
        if user.disabled:
            raise AccountError(f"user {username!r} is already disabled")
        if (
            user.role == "admin"
        ):  # every enabled admin locked: two disabling each other at once wait in turn
            admins = len(
                session.execute(
                    select(User.id)
                    .where(User.role == "admin", User.disabled.is_(False))
                    .with_for_update()
                ).all()
            )
            if admins <= 1:
                raise AccountError(
                    f"{username!r} is the last enabled administrator: add another first"
                )
        user.disabled = True
        _end_access(session, user, datetime.now(UTC))
        _ledgered(store, session, "user_disabled", user, by, via)
    sign_checkpoint(store)


def enable_user(store: Store, username: str, by: str | None = None, via: str = "host") -> None:
    """Enable a disabled user again. Their old tokens stay revoked; they sign in with their password."""
    with store.session.begin() as session:
        user = _user(session, username, lock=True)
        if not user.disabled:
            raise AccountError(f"user {username!r} is not disabled")
        user.disabled = False
        _ledgered(store, session, "user_enabled", user, by, via)
    sign_checkpoint(store)


def list_users(store: Store) -> list[dict]:
    with store.session() as session:
        users = session.execute(select(User).order_by(User.username)).scalars().all()
        tokens = {}
        for user_id, revoked in session.execute(select(ApiToken.user_id, ApiToken.revoked_at)):
            tokens[user_id] = tokens.get(user_id, 0) + (revoked is None)
    return [
        {
            "username": u.username,
            "role": u.role,
            "agency": u.agency,
            "disabled": u.disabled,
            "password": bool(u.password_hash),
            "tokens": tokens.get(u.id, 0),
            "created": u.created_at.isoformat(timespec="seconds"),
        }
        for u in users
    ]


def issue_token(
    store: Store, username: str, label: str = "", by: str | None = None, via: str = "host"
) -> str:
    """A new API token for the user. Returned once; only its SHA-256 is kept. Only the user itself
    (`by` == `username`, signed in) or the operator on the host (`via` "host") may issue one."""
    if via != "host" and by != username:
        raise AccountError("a token is issued only to its own user, or by the operator on the host")
    token = "tg_" + secrets.token_urlsafe(32)
    with store.session.begin() as session:
        user = _user(session, username)
        if user.disabled:
            raise AccountError(f"user {username!r} is disabled")
        row = ApiToken(
            user_id=user.id,
            token_sha256=_sha256(token),
            label=label.strip()[:200],
            created_at=datetime.now(UTC),
        )
        session.add(row)
        session.flush()
        _ledgered(store, session, "token_issued", user, by, via, row.id)
    sign_checkpoint(store)
    return token


def list_tokens(store: Store, username: str) -> list[dict]:
    """A user's tokens (never the tokens themselves: their id, label, when made and revoked)."""
    with store.session() as session:
        user = _user(session, username)
        rows = session.execute(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
        ).scalars()
        return [
            {
                "id": t.id,
                "label": t.label,
                "created": t.created_at.isoformat(timespec="seconds"),
                "revoked": t.revoked_at.isoformat(timespec="seconds") if t.revoked_at else None,
            }
            for t in rows
        ]


def revoke_token(
    store: Store, token_id: int, by: str | None = None, via: str = "host", owner: str | None = None
) -> str:
    """Revoke one token (ledgered). `owner`: the token must be this user's (a user revoking its
    own); None for an administrator or the host. Returns the token's user."""
    with store.session.begin() as session:
        found = session.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.id == token_id)
            .with_for_update()
        ).first()
        if found is None or (owner is not None and found[1].username != owner):
            raise AccountError(f"no token {token_id}")
        token, user = found
        if token.revoked_at is not None:
            raise AccountError(
                f"token {token_id} was revoked at {token.revoked_at.isoformat(timespec='seconds')}"
            )
        token.revoked_at = datetime.now(UTC)
        _ledgered(store, session, "token_revoked", user, by, via, token.id)
        owner = user.username
    sign_checkpoint(store)
    return owner


def account_events(store: Store, limit: int = 200) -> list[dict]:
    with store.session() as session:
        rows = session.execute(
            select(AccountEvent).order_by(AccountEvent.id.desc()).limit(limit)
        ).scalars()
        return [
            {
                "at": r.at.isoformat(timespec="seconds"),
                "event": r.event,
                "username": r.username,
                "role": r.role,
                "token": r.token_id,
                "by": r.actor,
                "via": r.via,
                "ledger_index": r.ledger_index,
            }
            for r in rows
        ]


def by_token(store: Store, token: str) -> Principal | None:
    """The user a bearer token belongs to, if it is live (not revoked, user not disabled)."""
    if not token.startswith("tg_") or len(token) > 200:
        return None
    with store.session() as session:
        user = session.execute(
            select(User)
            .join(ApiToken, ApiToken.user_id == User.id)
            .where(
                ApiToken.token_sha256 == _sha256(token),
                ApiToken.revoked_at.is_(None),
                User.disabled.is_(False),
            )
        ).scalar_one_or_none()
        return _principal(user) if user else None


def by_password(store: Store, username: str, password: str) -> Principal | None:
    with store.session() as session:
        user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    stored = (
        user.password_hash
        if user is not None and user.password_hash and not user.disabled
        else None
    )
    dummy = _dummy()  # made before the branch: the first attempt of either kind pays for it
    try:
        _hasher.verify(stored or dummy, password)
    except (VerificationError, InvalidHashError):
        return None
    if stored is None:
        return None
    if _hasher.check_needs_rehash(stored):
        _rehash(store, user.id, stored, password)
    return _principal(user)


def open_session(store: Store, user: Principal) -> tuple[str, str]:
    """A console session for the user: (cookie value, CSRF token). Only the cookie's SHA-256 is kept."""
    cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with store.session.begin() as session:
        session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
        session.add(
            ConsoleSession(
                id_sha256=_sha256(cookie),
                user_id=user.id,
                csrf=csrf,
                created_at=now,
                expires_at=now + timedelta(hours=SESSION_HOURS),
            )
        )
    return cookie, csrf


def by_session(store: Store, cookie: str) -> tuple[Principal, str] | None:
    """The user and CSRF token of a live console session."""
    if not cookie or len(cookie) > 200:
        return None
    with store.session() as session:
        found = session.execute(
            select(User, ConsoleSession.csrf)
            .join(ConsoleSession, ConsoleSession.user_id == User.id)
            .where(
                ConsoleSession.id_sha256 == _sha256(cookie),
                ConsoleSession.expires_at > datetime.now(UTC),
                User.disabled.is_(False),
            )
        ).first()
    return (_principal(found[0]), found[1]) if found else None


def close_session(store: Store, cookie: str) -> None:
    with store.session.begin() as session:
        session.execute(delete(ConsoleSession).where(ConsoleSession.id_sha256 == _sha256(cookie)))
