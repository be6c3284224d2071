"""Worker processes that a Ctrl-C ends quietly.

A Ctrl-C at a terminal reaches every process of the foreground group, workers included, and a
worker in which Python raises KeyboardInterrupt prints a traceback: several at once when workers
are still starting. The user asked to stop, and the main process stops in one line (`cli.main`,
after removing its work folder), so the workers should end without a word. Each worker therefore
starts with SIGINT blocked (a spawned process inherits the signal mask of the thread that started
it, and `submit` is where a worker is started) and, once running, takes SIGINT with the system's
default action: it ends there and then. The main process gets its own KeyboardInterrupt; its
futures fail as a broken pool.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context


class Workers(ProcessPoolExecutor):
    """`ProcessPoolExecutor` of `count` spawned workers (fork is unsafe beside DuckDB's and the
    store's threads) that a Ctrl-C ends quietly."""

    def __init__(self, count: int):
        super().__init__(count, mp_context=get_context("spawn"), initializer=_quiet_on_ctrl_c)

    def submit(self, fn, /, *args, **kwargs) -> Future:
        with _starting():  # a submit may start a worker
            return super().submit(fn, *args, **kwargs)


@contextmanager
def _starting() -> Iterator[None]:
    """While a worker may be starting: SIGINT blocked in this thread, so that the worker inherits
    it blocked; and on the main thread, where Python runs its signal handlers, a handler that would
    raise (Ctrl-C's KeyboardInterrupt) held until the worker has its start-up data: raised between
    starting a worker and handing it that, it would leave the worker failing with a traceback. A
    signal meanwhile is not lost: it is handled as the block ends."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    held: list[int] = []
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            if callable(handler := signal.getsignal(number)):
                handlers[number] = handler
                signal.signal(number, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
        for number in held[:1]:
            handlers[number](number, None)


def _quiet_on_ctrl_c() -> None:
    """In each worker, first: SIGINT ends it without Python's KeyboardInterrupt (and a Ctrl-C that
    came while it started, held by the mask, ends it now). A worker of a process that ignores
    SIGINT (started in the background by a script) was started ignoring it too, and goes on so."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
