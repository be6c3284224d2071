"""A worker that dies half-way through sending its answer (a Ctrl-C ends every worker at once, one
of them perhaps mid-answer) must not leave the run waiting for the rest of it for ever."""

from __future__ import annotations

import os
import signal
import struct
import sys
import threading
from concurrent.futures.process import BrokenProcessPool

import pytest

from taxgate.processes import Workers


def _half_an_answer() -> None:
    """In a worker: start an answer of 1,000 bytes in the pool's answer pipe, send 10 of them, and
    die there, as a worker killed while it sends does."""
    answers = sys._getframe(1).f_locals["result_queue"]  # concurrent.futures' _process_worker
    os.write(answers._writer.fileno(), struct.pack("!i", 1_000) + b"0123456789")
    os.kill(os.getpid(), signal.SIGKILL)


def _within(seconds: float, action) -> bool:
    """Whether `action()` returns within `seconds` (it runs in a thread that is left if it hangs)."""
    done = threading.Event()

    def run():
        try:
            action()
        except BaseException:  # noqa: BLE001  (only whether it came back is asked)
            pass
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done.wait(seconds)


def _died_mid_answer(pool: Workers) -> None:
    """Wait until the pool's worker has sent half its answer and died."""
    for worker in list(pool._processes.values()):
        worker.join(60)
        assert worker.exitcode == -signal.SIGKILL


def test_a_pool_whose_worker_died_mid_answer_stops_instead_of_hanging():
    pool = Workers(1)
    answer = pool.submit(_half_an_answer)
    _died_mid_answer(pool)
    assert _within(60, pool.stop), "stop() waited for the rest of a dead worker's answer"
    with pytest.raises(BrokenProcessPool):
        answer.result(timeout=1)


def test_leaving_a_pool_on_an_error_stops_it_the_same_way():
    def leave_on_error():
        with pytest.raises(KeyboardInterrupt):
            with Workers(1) as pool:
                pool.submit(_half_an_answer)
                _died_mid_answer(pool)
                raise KeyboardInterrupt  # as a Ctrl-C lands in the main process

    assert _within(60, leave_on_error)


def _square(n: int) -> int:
    return n * n


def test_a_pool_left_normally_still_gives_every_answer():
    with Workers(2) as pool:
        answers = [pool.submit(_square, n) for n in range(20)]
    assert [a.result() for a in answers] == [n * n for n in range(20)]
