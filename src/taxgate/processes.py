"""Worker processes that a Ctrl-C ends quietly.

A Ctrl-C at a terminal reaches every process of the foreground group, workers included, and a
worker in which Python raises KeyboardInterrupt prints a traceback: several at once when workers
are still starting. The user asked to stop, and the main process stops (exit 130, its work folder
removed), so the workers should end without a word. Each worker therefore starts with SIGINT
blocked (a spawned process inherits the signal mask of the thread that started it, and `submit` is
where a worker is started) and, once running, takes SIGINT with the system's default action: it
ends there and then. The main process gets its own KeyboardInterrupt; its futures fail as a
broken pool.
"""

from __future__ import annotations

import signal
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
        with _sigint_blocked():  # a submit may start a worker, which inherits this thread's mask
            return super().submit(fn, *args, **kwargs)


@contextmanager
def _sigint_blocked() -> Iterator[None]:
    # A Ctrl-C meanwhile is not lost: another thread takes it, or it waits until the mask is restored.
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _quiet_on_ctrl_c() -> None:
    """In each worker, first: SIGINT ends it without Python's KeyboardInterrupt (and a Ctrl-C that
    came while it started, held by the mask, ends it now). A worker of a process that ignores
    SIGINT (started in the background by a script) was started ignoring it too, and goes on so."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
