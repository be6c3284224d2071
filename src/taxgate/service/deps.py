"""What every route module shares: the service's state as a typed dependency (no route reaches
into `app.state`), the path parameters, and the roles that read batches."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi import Path as PathParam

from taxgate.accounts.limits import Limiter
from taxgate.service.settings import Settings
from taxgate.store import Store

ERRORS = {
    401: {"description": "No valid API token"},
    403: {"description": "The token's role may not use this route"},
}
READERS = (
    "requester",
    "officer",
    "court",
    "auditor",
)  # who may read batches (a requester: its own agency's)
Id = Annotated[int, PathParam(ge=1, le=2**31 - 1)]
UserName = Annotated[str, PathParam(pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$")]


@dataclass
class ServiceState:
    """What the routes work with: the store, the settings, the policy versions, the limits kept in
    the store, and the events that wake and stop the workers."""

    store: Store
    settings: Settings
    policies: Callable[[], list]  # the policy versions, read when asked (a file may be replaced)
    limiter: Limiter  # uploads per requester
    sign_ins: Limiter  # sign-ins per client address
    failures: (
        Limiter  # sign-in attempts per user name and client address; password changes per user
    )
    wake: Any
    stop: Any
    verifier_key: str
    supervisor: Any = None


def state_of(request: Request) -> ServiceState:
    return request.app.state.service


State = Annotated[ServiceState, Depends(state_of)]


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None
