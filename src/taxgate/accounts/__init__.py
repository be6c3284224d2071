"""Who may use the service, and as what (DESIGN.md "HTTP API"): users in one role each, argon2id
password hashes, API tokens kept only as SHA-256, console sessions with a CSRF token, and a log of
every access refused.

Roles, least privilege first (the routes that each may use are listed in `service.access`):
- requester: one agency's batches only (submit, status, the response);
- officer: a disclosure officer: the review queue and its decisions, court orders as received;
- court: a court monitor: orders, notices and the oversight report, read-only;
- auditor: the ledger, proofs and the § 6103(p)(3)(A) accounting, read-only;
- admin: users and the policy; no taxpayer information.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from taxgate.store import Store
from taxgate.store.models import AccessRefusal, ApiToken, ConsoleSession, User

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
_DUMMY = _hasher.hash("a password nobody has")  # checked when the user is unknown, so timing says nothing


class AccountError(ValueError):
    """A user cannot be added or changed as asked; the message says why."""


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


def add_user(store: Store, username: str, role: str, agency: str = "", password: str | None = None) -> Principal:
    """Add a user. A requester belongs to one agency; no other role has one. Without a password the
    user can only use API tokens."""
    if not _USERNAME.fullmatch(username):
        raise AccountError(f"user name {username!r}: 2-64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit")
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    agency = agency.strip()
    if (role == "requester") != bool(agency):
        raise AccountError("a requester needs --agency; other roles have none")
    if password is not None:
        check_password(password)
    try:
        with store.session.begin() as session:
            user = User(username=username, role=role, agency=agency, created_at=datetime.now(UTC),
                        password_hash=_hasher.hash(password) if password else "", disabled=False)
            session.add(user)
            session.flush()
            return _principal(user)
    except IntegrityError:
        raise AccountError(f"user {username!r} exists") from None


def _user(session, username: str) -> User:
    user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    if user is None:
        raise AccountError(f"no user {username!r}")
    return user


def set_password(store: Store, username: str, password: str) -> None:
    check_password(password)
    with store.session.begin() as session:
        _user(session, username).password_hash = _hasher.hash(password)


def disable_user(store: Store, username: str) -> None:
    """Disable a user: their tokens and sessions stop working at once."""
    with store.session.begin() as session:
        user = _user(session, username)
        user.disabled = True
        session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user.id))


def list_users(store: Store) -> list[dict]:
    with store.session() as session:
        users = session.execute(select(User).order_by(User.username)).scalars().all()
        tokens = {}
        for user_id, revoked in session.execute(select(ApiToken.user_id, ApiToken.revoked_at)):
            tokens[user_id] = tokens.get(user_id, 0) + (revoked is None)
    return [{"username": u.username, "role": u.role, "agency": u.agency, "disabled": u.disabled,
             "password": bool(u.password_hash), "tokens": tokens.get(u.id, 0),
             "created": u.created_at.isoformat(timespec="seconds")} for u in users]


def issue_token(store: Store, username: str, label: str = "") -> str:
    """A new API token for the user. Returned once; only its SHA-256 is kept."""
    token = "tg_" + secrets.token_urlsafe(32)
    with store.session.begin() as session:
        user = _user(session, username)
        if user.disabled:
            raise AccountError(f"user {username!r} is disabled")
        session.add(ApiToken(user_id=user.id, token_sha256=_sha256(token), label=label, created_at=datetime.now(UTC)))
    return token


def by_token(store: Store, token: str) -> Principal | None:
    """The user a bearer token belongs to, if it is live (not revoked, user not disabled)."""
    if not token.startswith("tg_") or len(token) > 200:
        return None
    with store.session() as session:
        user = session.execute(
            select(User).join(ApiToken, ApiToken.user_id == User.id)
            .where(ApiToken.token_sha256 == _sha256(token), ApiToken.revoked_at.is_(None), User.disabled.is_(False))
        ).scalar_one_or_none()
        return _principal(user) if user else None


def by_password(store: Store, username: str, password: str) -> Principal | None:
    with store.session() as session:
        user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    stored = user.password_hash if user is not None and user.password_hash and not user.disabled else None
    try:
        _hasher.verify(stored or _DUMMY, password)
    except (VerificationError, InvalidHashError):
        return None
    if stored is None:
        return None
    if _hasher.check_needs_rehash(stored):
        set_password(store, username, password)
    return _principal(user)


def open_session(store: Store, user: Principal) -> tuple[str, str]:
    """A console session for the user: (cookie value, CSRF token). Only the cookie's SHA-256 is kept."""
    cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with store.session.begin() as session:
        session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
        session.add(ConsoleSession(id_sha256=_sha256(cookie), user_id=user.id, csrf=csrf, created_at=now,
                                   expires_at=now + timedelta(hours=SESSION_HOURS)))
    return cookie, csrf


def by_session(store: Store, cookie: str) -> tuple[Principal, str] | None:
    """The user and CSRF token of a live console session."""
    if not cookie or len(cookie) > 200:
        return None
    with store.session() as session:
        found = session.execute(
            select(User, ConsoleSession.csrf).join(ConsoleSession, ConsoleSession.user_id == User.id)
            .where(ConsoleSession.id_sha256 == _sha256(cookie), ConsoleSession.expires_at > datetime.now(UTC),
                   User.disabled.is_(False))
        ).first()
    return (_principal(found[0]), found[1]) if found else None


def close_session(store: Store, cookie: str) -> None:
    with store.session.begin() as session:
        session.execute(delete(ConsoleSession).where(ConsoleSession.id_sha256 == _sha256(cookie)))


def refuse(store: Store, method: str, path: str, status: int, reason: str, user: Principal | None = None,
           client: str = "") -> None:
    """Log an access refused: every 401, 403 and CSRF failure is kept for the auditors."""
    with store.session.begin() as session:
        session.add(AccessRefusal(at=datetime.now(UTC), username=user.username if user else "",
                                  role=user.role if user else "", method=method[:8], path=path[:2000],
                                  status=status, reason=reason[:2000], client=client[:64]))


def refusals(store: Store, limit: int = 200) -> list[dict]:
    with store.session() as session:
        rows = session.execute(select(AccessRefusal).order_by(AccessRefusal.id.desc()).limit(limit)).scalars().all()
    return [{"at": r.at.isoformat(timespec="seconds"), "username": r.username, "role": r.role, "method": r.method,
             "path": r.path, "status": r.status, "reason": r.reason, "client": r.client} for r in rows]
