"""The HTTP server under `taxgate serve`: uvicorn, with what a hostile network needs and uvicorn
does not do by itself.

- A connection must send its request line and headers within `header_seconds`, must not leave
  its body idle for longer than `body_idle_seconds`, and once its body has run for that long must
  keep up at least MIN_BODY_RATE: a client that opens connections and sends a byte now and then
  (half-open, "slowloris") is cut off instead of holding them for ever. uvicorn times out only idle
  keep-alive connections, after a response.
- At most `max_connections` at once (beyond, uvicorn answers 503), and at most
  `per_client` from one address, so one client cannot take them all.
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
MIN_BODY_RATE = 16 * 1024  # bytes a second, on average, once a body has run BODY_IDLE_SECONDS
MAX_CONNECTIONS = 256
PER_CLIENT = 32


def guarded(
    header_seconds: float = HEADER_SECONDS,
    body_idle_seconds: float = BODY_IDLE_SECONDS,
    per_client: int = PER_CLIENT,
    min_body_rate: float = MIN_BODY_RATE,
) -> type:
    """An h11 protocol class that closes a connection slow to send its headers or its body, and
    refuses a client more than `per_client` connections at once."""
    open_from: dict[
        str, int
    ] = {}  # connections per client address, in this server (one event loop)

    class Guarded(H11Protocol):
        _timer: asyncio.TimerHandle | None = None
        _body_started: float | None = None
        _body_bytes = 0
        _peer = ""

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._peer = (self.client or ("", 0))[0]
            open_from[self._peer] = open_from.get(self._peer, 0) + 1
            if open_from[self._peer] > per_client:
                transport.close()
                return
            self._arm(header_seconds)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            state = self.conn.their_state
            if self.transport.is_closing():
                self._disarm()
            elif state is h11.IDLE and data:  # part of a request line or headers: the clock runs on
                self._body_started = None
                if self._timer is None:
                    self._arm(header_seconds)
            elif state is h11.SEND_BODY:  # the body is coming: it may pause, not stop, nor trickle
                now = self.loop.time()
                if self._body_started is None:
                    self._body_started, self._body_bytes = now, 0
                self._body_bytes += len(data)
                running = now - self._body_started
                if running > body_idle_seconds and self._body_bytes / running < min_body_rate:
                    self._too_slow()
                    return
                self._arm(body_idle_seconds)
            else:
                self._disarm()

        def on_response_complete(self) -> None:
            self._disarm()
            super().on_response_complete()
            if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
                self._arm(
                    body_idle_seconds
                )  # answered before its body came: the rest may not dawdle either

        def connection_lost(self, exc) -> None:
            self._disarm()
            left = open_from.get(self._peer, 1) - 1
            if left > 0:
                open_from[self._peer] = left
            else:
                open_from.pop(self._peer, None)
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
            if (
                self.conn.their_state in (h11.IDLE, h11.SEND_BODY)
                and not self.transport.is_closing()
            ):
                if self.cycle is not None and not self.cycle.response_complete:
                    self.cycle.disconnected = (
                        True  # the app sees the body end: the upload is refused
                    )
                    self.cycle.message_event.set()
                self.transport.close()

    return Guarded


def config(
    app,
    host: str,
    port: int,
    forwarded_allow_ips: str | None = None,
    header_seconds: float = HEADER_SECONDS,
    body_idle_seconds: float = BODY_IDLE_SECONDS,
    max_connections: int = MAX_CONNECTIONS,
    per_client: int = PER_CLIENT,
    min_body_rate: float = MIN_BODY_RATE,
    log_level: str = "info",
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        # behind a named proxy every connection comes from the proxy: the per-client cap is then the proxy's to keep
        http=guarded(
            header_seconds,
            body_idle_seconds,
            max_connections if forwarded_allow_ips else per_client,
            min_body_rate,
        ),
        proxy_headers=bool(forwarded_allow_ips),
        forwarded_allow_ips=forwarded_allow_ips or "",
        limit_concurrency=max_connections,
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=64 * 1024,
    )
