"""The HTTP server under `taxgate serve`: uvicorn, with what a hostile network needs and uvicorn
does not do by itself.

- A connection must send its request line and headers within `header_seconds`, and must not
  leave its body idle for longer than `body_idle_seconds`: a client that opens connections and
  sends a byte now and then (half-open, "slowloris") is cut off instead of holding them for ever.
  uvicorn times out only idle keep-alive connections, after a response.
- At most `max_connections` at once; beyond, uvicorn answers 503.
- A proxy's X-Forwarded-For is believed only from the addresses `forwarded_allow_ips` names;
  by default from none (uvicorn's default believes any loopback peer, so anything on the host
  could write the refusal log's client address).
"""

from __future__ import annotations

import asyncio

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_SECONDS = 10.0
BODY_IDLE_SECONDS = 30.0
MAX_CONNECTIONS = 256


def guarded(header_seconds: float = HEADER_SECONDS, body_idle_seconds: float = BODY_IDLE_SECONDS) -> type:
    """An h11 protocol class that closes a connection slow to send its headers or its body."""

    class Guarded(H11Protocol):
        _timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm(header_seconds)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            state = self.conn.their_state
            if self.transport.is_closing():
                self._disarm()
            elif state is h11.IDLE and data:  # part of a request line or headers: the clock runs on
                if self._timer is None:
                    self._arm(header_seconds)
            elif state is h11.SEND_BODY:  # the body is coming: it may pause, not stop
                self._arm(body_idle_seconds)
            else:
                self._disarm()

        def on_response_complete(self) -> None:
            self._disarm()
            super().on_response_complete()
            if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
                self._arm(body_idle_seconds)  # answered before its body came: the rest may not dawdle either

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self, seconds: float) -> None:
            self._disarm()
            self._timer = self.loop.call_later(seconds, self._too_slow)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _too_slow(self) -> None:
            self._timer = None
            if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing():
                if self.cycle is not None and not self.cycle.response_complete:
                    self.cycle.disconnected = True  # the app sees the body end: the upload is refused
                    self.cycle.message_event.set()
                self.transport.close()

    return Guarded


def config(app, host: str, port: int, forwarded_allow_ips: str | None = None, header_seconds: float = HEADER_SECONDS,
           body_idle_seconds: float = BODY_IDLE_SECONDS, max_connections: int = MAX_CONNECTIONS,
           log_level: str = "info") -> uvicorn.Config:
    return uvicorn.Config(
        app, host=host, port=port, log_level=log_level, access_log=False,
        http=guarded(header_seconds, body_idle_seconds),
        proxy_headers=bool(forwarded_allow_ips), forwarded_allow_ips=forwarded_allow_ips or "",
        limit_concurrency=max_connections, timeout_keep_alive=5,
        h11_max_incomplete_event_size=64 * 1024,
    )
