"""The console's pages: templates, the one way a page is rendered, and what an action says once it
is done. Every page names the roles that may see it (`access.page`); every form carries the
session's CSRF token."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlencode

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from taxgate.accounts import Principal
from taxgate.service.deps import state_of

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
LOGIN_COOKIE = (
    "taxgate_login"  # double-submit token for the sign-in form, before there is a session
)
FLASH_COOKIE = "taxgate_flash"  # what the last action did, shown once on the page it leads to
Page = tuple[Principal, str]


def render(
    request: Request, name: str, who: Page | None, status_code: int = 200, **context
) -> HTMLResponse:
    """A page. The status line of the action that led here comes from this server's own cookie,
    never from the query string: nobody can make the console say what it did not do."""
    user, csrf = who if who else (None, "")
    flashed = request.cookies.get(FLASH_COOKIE)
    if flashed and "message" not in context:
        context["message"] = unquote(flashed)[:300]
    page = templates.TemplateResponse(
        request, name, {"user": user, "csrf": csrf, **context}, status_code=status_code
    )
    if flashed:
        page.delete_cookie(FLASH_COOKIE)
    return page


PAGE_SIZE = 100


@dataclass(frozen=True)
class Paging:
    """One page of a list: which rows, how many in all, and the links to the pages either side,
    keeping the list's filters (`query`)."""

    total: int
    offset: int
    limit: int
    query: dict

    def link(self, offset: int) -> str:
        return "?" + urlencode(
            {**{k: v for k, v in self.query.items() if v not in ("", None)}, "offset": offset}
        )

    @property
    def previous(self) -> str | None:
        return self.link(max(0, self.offset - self.limit)) if self.offset > 0 else None

    @property
    def next(self) -> str | None:
        return (
            self.link(self.offset + self.limit) if self.offset + self.limit < self.total else None
        )

    @property
    def shown(self) -> str:
        if not self.total:
            return ""
        if self.offset >= self.total:
            return f"past the end: {self.total:,} in all"
        return (
            f"{self.offset + 1:,}-{min(self.total, self.offset + self.limit):,} of {self.total:,}"
        )

    def export(self, path: str) -> str:
        """The same list, every page of it, as CSV."""
        return path + "?" + urlencode({k: v for k, v in self.query.items() if v not in ("", None)})


def csv_download(columns: tuple[str, ...], rows, filename: str) -> Response:
    """Rows as a spreadsheet-safe CSV file to download."""
    from taxgate.response import SafeCSV

    out = io.StringIO()
    writer = SafeCSV(out)
    writer.writerow(columns)
    writer.writerows([row.get(c, "") for c in columns] for row in rows)
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def done(request: Request, url: str, message: str) -> RedirectResponse:
    """After an action: to `url`, which says `message` once."""
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        FLASH_COOKIE,
        quote(message[:300]),
        max_age=60,
        httponly=True,
        samesite="strict",
        secure=state_of(request).settings.secure_cookies,
    )
    return response


def safe_next(target: str) -> str:
    """Only a path on this site: never an open redirect."""
    return (
        target
        if target.startswith("/") and not target.startswith("//") and "\\" not in target
        else "/"
    )


class PasswordGate:
    """argon2 on two cores: one check at a time, and at most `queue` waiting (waiting holds no
    thread); more than that is told to come back, so a flood of sign-ins cannot slow every other
    request down."""

    def __init__(self, at_once: int = 1, queue: int = 16):
        self.slots, self.queue, self.waiting = asyncio.Semaphore(at_once), queue, 0

    async def run(self, check, *args):
        if self.waiting >= self.queue:
            raise HTTPException(
                503,
                "the service is busy signing people in: try again in a few seconds",
                headers={"Retry-After": "5"},
            )
        self.waiting += 1
        try:
            async with self.slots:
                return await run_in_threadpool(check, *args)
        finally:
            self.waiting -= 1


gate = PasswordGate()
