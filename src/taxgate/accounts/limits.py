"""Rate limits kept in the store: so many hits per key in any 60 seconds, counted in the store, so
that every server on one store (and every worker thread) counts the same hits. Hits are counted
per second (one row per key per second that had any), so the window slides exactly, to the
second, and a key's rows are at most 60."""

from __future__ import annotations

import math
import time

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from taxgate.store import Store
from taxgate.store.models import RateCount

WINDOW = 60  # seconds


class Limiter:
    """`per_minute` hits per key in any 60 seconds; `admit` counts a hit and says whether it is
    allowed, and if not, how many seconds until one would be."""

    def __init__(self, store: Store, per_minute: int, clock=time.time):
        if per_minute < 1:
            raise ValueError("a rate limit is at least 1 a minute")
        self.store, self.per_minute, self.clock = store, per_minute, clock

    def _window(self, session, key: str, now: float) -> list[tuple[int, int]]:
        return session.execute(
            select(RateCount.second, RateCount.hits)
            .where(RateCount.key == key, RateCount.second > int(now) - WINDOW)
            .order_by(RateCount.second)
        ).all()

    def _wait(self, hits: list[tuple[int, int]], now: float, allowed: int) -> int:
        """Seconds until the window holds at most `allowed` hits."""
        total = sum(n for _, n in hits)
        for second, n in hits:
            total -= n
            if total <= allowed:
                return max(1, math.ceil(second + WINDOW - now))
        return WINDOW

    def admit(self, key: str) -> tuple[bool, int]:
        """Count a hit on `key`, refused or not (a flood stays refused while it goes on), and say
        whether it is within the limit. The hit is added in one statement, so two servers cannot
        both take the last one."""
        now, key = self.clock(), key[:200]
        insert = pg_insert if self.store.dialect == "postgresql" else sqlite_insert
        statement = (
            insert(RateCount)
            .values(key=key, second=int(now), hits=1)
            .on_conflict_do_update(
                index_elements=[RateCount.key, RateCount.second], set_={"hits": RateCount.hits + 1}
            )
        )
        with self.store.session.begin() as session:
            session.execute(statement)
            hits = self._window(session, key, now)
            if int(now) % 60 == 0:  # now and then, forget what no window holds any more
                session.execute(delete(RateCount).where(RateCount.second <= int(now) - WINDOW))
        if sum(n for _, n in hits) <= self.per_minute:
            return True, 0
        return False, self._wait(hits, now, self.per_minute - 1)
