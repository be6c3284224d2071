"""The service's audit trail beside the ledger: every access refused, and every read of taxpayer
information (IRS Publication 1075, "Auditing": the date and time, the user, the event, the
object, success or failure, and the origin). Auditors read both; nobody edits them through the
service."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from taxgate.store import Store
from taxgate.store.models import AccessRefusal, DataRead

FOLD_SECONDS = 60  # the same refusal from the same client within this is counted on the first


def _shape(path: str) -> str:
    """A path with its ids set aside: /api/batches/7 and /api/batches/8 are one kind of request."""
    return re.sub(r"\d+", "#", path)


def log_refusal(
    store: Store, method: str, path: str, status: int, reason: str, user=None, client: str = ""
) -> None:
    """Log an access refused (every 401, 403, 429 and CSRF failure). The same refusal again from the
    same client, of the same kind of request (method, and the path with its numbers set aside), within
    a minute adds to the first one's count instead of a row: 250 anonymous requests for batches 1 to
    250 are one line with a count, not 250 lines that push everything else out of view; a refusal of
    another page is a line of its own, so an auditor sees every kind of resource that was tried."""
    now = datetime.now(UTC)
    username, role = (user.username, user.role) if user else ("", "")
    with store.session.begin() as session:
        recent = session.execute(
            select(AccessRefusal.id, AccessRefusal.path)
            .where(
                AccessRefusal.at >= now - timedelta(seconds=FOLD_SECONDS),
                AccessRefusal.client == client[:64],
                AccessRefusal.username == username,
                AccessRefusal.status == status,
                AccessRefusal.reason == reason[:2000],
                AccessRefusal.method == method[:8],
            )
            .order_by(AccessRefusal.id.desc())
            .limit(20)
        ).all()
        same = next(
            (row_id for row_id, seen in recent if _shape(seen) == _shape(path[:2000])), None
        )
        if same is not None:
            session.execute(
                update(AccessRefusal)
                .where(AccessRefusal.id == same)
                .values(repeats=AccessRefusal.repeats + 1, last_at=now)
            )
            return
        session.add(
            AccessRefusal(
                at=now,
                username=username,
                role=role,
                method=method[:8],
                path=path[:2000],
                status=status,
                reason=reason[:2000],
                client=client[:64],
                repeats=1,
            )
        )


def refusals(
    store: Store,
    limit: int = 200,
    offset: int = 0,
    username: str = "",
    status: int | None = None,
    counted: list | None = None,
) -> list[dict]:
    """The newest refusals first, narrowed by user or HTTP status (exact); `counted`, when given,
    receives how many match in all."""
    query = select(AccessRefusal)
    if username:
        query = query.where(AccessRefusal.username == username)
    if status is not None:
        query = query.where(AccessRefusal.status == status)
    with store.session() as session:
        if counted is not None:
            counted.append(
                session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
            )
        rows = (
            session.execute(query.order_by(AccessRefusal.id.desc()).limit(limit).offset(offset))
            .scalars()
            .all()
        )
    return [
        {
            "at": r.at.isoformat(timespec="seconds"),
            "username": r.username,
            "role": r.role,
            "method": r.method,
            "path": r.path,
            "status": r.status,
            "reason": r.reason,
            "client": r.client,
            "repeats": r.repeats,
            "last": r.last_at.isoformat(timespec="seconds") if r.last_at else None,
        }
        for r in rows
    ]


def log_read(
    store: Store, user, event: str, object: str, outcome: str, origin: str, detail: str = ""
) -> None:
    """One read of taxpayer information, kept whether it succeeded or not."""
    with store.session.begin() as session:
        session.add(
            DataRead(
                at=datetime.now(UTC),
                username=user.username,
                role=user.role,
                event=event[:32],
                object=object[:200],
                outcome=outcome,
                origin=origin[:64],
                detail=detail[:2000],
            )
        )


def reads(
    store: Store, limit: int = 200, username: str = "", event: str = "", object: str = ""
) -> list[dict]:
    """The newest reads first, narrowed by user, event or object (exact)."""
    query = select(DataRead).order_by(DataRead.id.desc()).limit(limit)
    for column, value in (
        (DataRead.username, username),
        (DataRead.event, event),
        (DataRead.object, object),
    ):
        if value:
            query = query.where(column == value)
    with store.session() as session:
        rows = session.execute(query).scalars().all()
    return [
        {
            "at": r.at.isoformat(timespec="seconds"),
            "username": r.username,
            "role": r.role,
            "event": r.event,
            "object": r.object,
            "outcome": r.outcome,
            "origin": r.origin,
            "detail": r.detail,
        }
        for r in rows
    ]
