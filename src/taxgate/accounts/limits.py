"""Rate limits kept in the store: so many hits per key per minute, counted in the store, so that
every server on one store (and every worker thread) counts the same hits. A sliding window,
estimated from this minute's count and the last one's (the approach of Cloudflare's and
nginx's limiters): no list of timestamps to keep per key."""

from __future__ import annotations

import math
import time

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from taxgate.store import Store
from taxgate.store.models import RateCount


class Limiter:
    """`per_minute` hits per key in any minute (sliding); `admit` counts a hit and says whether it
    is allowed, and if not, how many seconds until one would be."""

    def __init__(self, store: Store, per_minute: int, clock=time.time):
        if per_minute < 1:
            raise ValueError("a rate limit is at least 1 a minute")
        self.store, self.per_minute, self.clock = store, per_minute, clock

    def over(self, key: str) -> tuple[bool, int]:
        """Is `key` over its limit already? (Counts nothing: for limits on failures, counted by
        `admit` only when one happens.) (over, seconds to wait)."""
        now = self.clock()
        minute, into = int(now // 60), (now % 60) / 60
        with self.store.session() as session:
            counts = dict(session.execute(select(RateCount.minute, RateCount.hits).where(
                RateCount.key == key[:200], RateCount.minute.in_((minute - 1, minute)))).all())
        previous, current = counts.get(minute - 1, 0), counts.get(minute, 0)
        if previous * (1 - into) + current < self.per_minute:
            return False, 0
        return True, self._wait(now, previous, current + 1)

    def _wait(self, now: float, previous: int, current: int) -> int:
        into = (now % 60) / 60
        if current <= self.per_minute and previous:  # until the last minute's share has fallen enough
            wait = (previous * (1 - into) + current - self.per_minute) / previous * 60
        else:
            wait = 60 - now % 60
        return max(1, math.ceil(wait))

    def admit(self, key: str) -> tuple[bool, int]:
        """Count a hit on `key`, refused or not (a flood stays refused while it goes on), and say
        whether it is within the limit: (allowed, seconds to wait if not). Atomic: the hit is
        added and read back in one statement, so two servers cannot both take the last one."""
        now = self.clock()
        minute = int(now // 60)
        into = (now % 60) / 60  # how far into this minute: the last minute's share still counts
        key = key[:200]
        insert = pg_insert if self.store.dialect == "postgresql" else sqlite_insert
        statement = insert(RateCount).values(key=key, minute=minute, hits=1)
        statement = statement.on_conflict_do_update(
            index_elements=[RateCount.key, RateCount.minute], set_={"hits": RateCount.hits + 1}
        ).returning(RateCount.hits)
        with self.store.session.begin() as session:
            current = session.execute(statement).scalar_one()
            previous = session.execute(select(RateCount.hits).where(
                RateCount.key == key, RateCount.minute == minute - 1)).scalar_one_or_none() or 0
            if minute % 10 == 0 and into < 0.05:  # now and then, forget minutes nobody will ask about
                session.execute(delete(RateCount).where(RateCount.minute < minute - 2))
        if previous * (1 - into) + current <= self.per_minute:
            return True, 0
        return False, self._wait(now, previous, current)
