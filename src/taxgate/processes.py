"""Worker processes that a Ctrl-C ends quietly, and a garbage collector paced for a batch.

A Ctrl-C at a terminal reaches every process of the foreground group, workers included, and a
worker in which Python raises KeyboardInterrupt prints a traceback: several at once when workers
are still starting. The user asked to stop, and the main process stops in one line (`cli.main`,
after removing its work folder), so the workers should end without a word. Each worker therefore
starts with SIGINT blocked (a spawned process inherits the signal mask of the thread that started
it, and `submit` is where a worker is started) and, once running, takes SIGINT with the system's
default action: it ends there and then. The main process gets its own KeyboardInterrupt; its
futures fail as a broken pool.

A batch's passes allocate millions of short-lived objects (a request, its decision, their tuples)
beside a few million long-lived ones (the normalisers' caches, a chunk's rows, the modules). At
Python's default thresholds (a collection every 700 net allocations, a full one every hundred of
those) the collector walks the long-lived ones again and again: 7.0 of a 128,000-row run's 49 CPU
seconds, 1.5 at this pace (`benchmarks/collector.py`, `gc.callbacks` in every process).
`batch_pace` makes collections rarer, not absent: the young generation is collected every
BATCH_THRESHOLDS[0] allocations; and in the main process what was alive before the batch
(imports, the policy) is frozen out of every collection until the batch ends.
"""

from __future__ import annotations

import gc
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
        super().__init__(count, mp_context=get_context("spawn"), initializer=_start_worker)

    def submit(self, fn, /, *args, **kwargs) -> Future:
        with _starting():  # a submit may start a worker
            return super().submit(fn, *args, **kwargs)

    def stop(self) -> None:
        """Run nothing more: every worker ended now, whatever it is doing, and the pool's threads
        waited for. A worker that ends while it sends an answer (a Ctrl-C ends them all at once)
        leaves half a message in the answers' pipe, and the pool's own thread would wait for the
        rest for ever, since this process holds the pipe's writing end open too (CPython 3.11,
        `concurrent.futures.process`). Once every worker is gone that end is closed, so that
        half a message reads as the pipe's end, and the pool breaks instead of hanging."""
        processes = list((self._processes or {}).values())  # type: ignore[attr-defined]
        answers = self._result_queue  # type: ignore[attr-defined]
        for process in processes:
            process.terminate()
        for process in processes:
            process.join()
        if answers is not None:
            answers._writer.close()
        self.shutdown(wait=True, cancel_futures=True)

    def __exit__(self, kind, value, traceback) -> bool:
        if kind is not None:  # a run that stopped early waits for no worker's answer
            self.stop()
            return False
        return super().__exit__(kind, value, traceback)


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


BATCH_THRESHOLDS = (100_000, 50, 100)


@contextmanager
def batch_pace() -> Iterator[None]:
    """The collector paced for a batch (module docstring) while the block runs, as it was after."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*BATCH_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def _start_worker() -> None:
    _quiet_on_ctrl_c()
    # A worker lives for one batch's pass. Nothing is frozen in it: what is frozen is never
    # collected, and DuckDB's bindings (nanobind) then report each object of theirs as leaked at exit.
    gc.set_threshold(*BATCH_THRESHOLDS)


def _quiet_on_ctrl_c() -> None:
    """In each worker, first: SIGINT ends it without Python's KeyboardInterrupt (and a Ctrl-C that
    came while it started, held by the mask, ends it now). A worker of a process that ignores
    SIGINT (started in the background by a script) was started ignoring it too, and goes on so."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
