"""The ledger served as transparency logs are served (C2SP tlog-tiles), under /log.

- `GET /log/checkpoint`: the latest signed checkpoint, with the witnesses' cosignatures; anyone.
- `GET /log/tile/<L>/<N>[.p/<W>]`: hash tiles, exactly as the store keeps them; anyone (they hold
  hashes only, nothing about a taxpayer).
- `GET /log/tile/entries/<N>[.p/<W>]`: entry bundles (uint16-length-prefixed entries); auditors
  only, with their API token: entries carry TINs.
So anyone can check that each checkpoint extends the last, and an auditor can check any entry, with
any C2SP client and without trusting this server.
"""

from __future__ import annotations

import re
import struct

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import select

from taxgate.accounts import Principal
from taxgate.ledger import Ledger
from taxgate.ledger.log import TILE, raw
from taxgate.service.access import allow, reading
from taxgate.service.deps import state_of
from taxgate.store.models import LedgerEntry, LedgerTile
from taxgate.witness.client import cosigned_note

router = APIRouter(prefix="/log", tags=["transparency log (C2SP tlog-tiles)"])
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
_PATH = re.compile(r"^((?:x\d{3}/)*)(\d{3})(?:\.p/([1-9]\d{0,2}))?$")


def tile_index(path: str) -> tuple[int, int | None]:
    """(N, W or None) of a tile path's tail `x001/x234/067[.p/W]`; 404 for anything else."""
    found = _PATH.match(path)
    if not found:
        raise HTTPException(404, "not a tile path")
    digits = found.group(1).replace("x", "").replace("/", "") + found.group(2)
    n = int(digits)
    width = int(found.group(3)) if found.group(3) else None
    if encode_index(n) != path.split(".p/")[0] or (width is not None and width >= TILE):
        raise HTTPException(404, "not a canonical tile path")
    return n, width


def encode_index(n: int) -> str:
    text = f"{n:03d}"
    text = "0" * (-len(text) % 3) + text
    groups = [text[i : i + 3] for i in range(0, len(text), 3)]
    return "/".join([*("x" + g for g in groups[:-1]), groups[-1]])


@router.get("/checkpoint", summary="The latest checkpoint (C2SP signed note), with cosignatures")
def get_checkpoint(request: Request) -> Response:
    store = state_of(request).store
    with store.session() as session:
        note = Ledger(store).latest_checkpoint(session)
        if note is None:
            raise HTTPException(404, "no checkpoint has been signed yet")
        note = cosigned_note(session, note)
    return Response(
        note, media_type="text/plain; charset=utf-8", headers={"Cache-Control": "max-age=5"}
    )


@router.get("/tile/{level:int}/{path:path}", summary="A hash tile (C2SP tlog-tiles)")
def get_tile(request: Request, level: int, path: str) -> Response:
    if not 0 <= level <= 63:
        raise HTTPException(404, "no such tile level")
    n, width = tile_index(path)
    with state_of(request).store.session() as session:
        hashes = session.execute(
            select(raw(LedgerTile.hashes)).where(LedgerTile.level == level, LedgerTile.n == n)
        ).scalar_one_or_none()
    wanted = (width or TILE) * 32
    if type(hashes) is not bytes or len(hashes) < wanted:
        raise HTTPException(404, "no such tile")
    return Response(hashes[:wanted], media_type="application/octet-stream", headers=IMMUTABLE)


@router.get(
    "/tile/entries/{path:path}",
    summary="An entry bundle (C2SP tlog-tiles); auditors only",
    responses={401: {"description": "No valid API token"}, 403: {"description": "Not an auditor"}},
)
def get_entries(request: Request, path: str, user: Principal = allow("auditor")) -> Response:
    n, width = tile_index(path)
    first, count = n * TILE, width or TILE
    with reading(
        request, user, "ledger_entries", f"entries {first} to {first + count - 1}"
    ):  # they carry TINs
        with state_of(request).store.session() as session:
            rows = session.execute(
                select(raw(LedgerEntry.idx), raw(LedgerEntry.entry))
                .where(LedgerEntry.idx >= first, LedgerEntry.idx < first + count)
                .order_by(LedgerEntry.idx)
            ).all()
        if len(rows) != count or any(type(e) is not bytes for _, e in rows):
            raise HTTPException(404, "no such entry bundle")
    bundle = b"".join(struct.pack(">H", len(entry)) + entry for _, entry in rows)
    return Response(bundle, media_type="application/octet-stream", headers=IMMUTABLE)
