"""Pass 3's chunks recorded in a thread of their own (`pipeline._Recording`): every chunk once and in
order; a failure there raised in the main thread; a stopping run records nothing after the chunk
in the store's hands, and a Ctrl-C while it waits for that chunk is held until the chunk has ended;
a store that threads cannot share (SQLite in memory) recorded inline."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from taxgate.pipeline import _Recording, process
from taxgate.store import StoreError, open_store

from support import response_rows


def test_every_chunk_is_recorded_once_and_in_order():
    recorded = []
    recording = _Recording(recorded.append)
    for number in range(20):
        recording.put([number])
    recording.finish()
    assert recorded == [[n] for n in range(20)]


def test_a_failure_in_the_thread_is_raised_in_the_main_thread_and_nothing_after_it_is_recorded():
    recorded = []

    def record(chunk):
        if chunk == [3]:
            raise StoreError("the store is full")
        recorded.append(chunk)

    recording = _Recording(record)
    with pytest.raises(StoreError, match="the store is full"):
        for number in range(50):
            recording.put([number])
            time.sleep(0.01)
        recording.finish()
    recording.stop()
    assert recorded == [[0], [1], [2]]


def test_a_halted_recording_records_nothing_after_the_chunk_in_hand():
    started, recorded = threading.Event(), []

    def record(chunk):
        started.set()
        time.sleep(0.3)
        recorded.append(chunk)

    recording = _Recording(record)
    recording.put([0])
    recording.put([1])
    recording.put([2])
    started.wait(5)
    recording.halt()  # as a stopping run does first
    recording.stop()
    assert recorded == [[0]]


def test_a_ctrl_c_while_the_chunk_in_hand_ends_is_held_until_it_has():
    in_hand, recorded = threading.Event(), []

    def record(chunk):
        in_hand.set()
        time.sleep(1.0)
        recorded.append(chunk)

    recording = _Recording(record)
    recording.put([0])
    recording.put([1])
    in_hand.wait(5)
    # a second Ctrl-C, during the wait: a real signal, which cuts a blocking wait short
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        recording.stop()
    assert recorded == [[0]], "the chunk in hand ended whole before the Ctrl-C was raised"


def test_a_store_in_memory_is_recorded_inline(world, tmp_path, monkeypatch):
    monkeypatch.setenv("TAXGATE_LEDGER_KEY", str(tmp_path / "ledger.key"))
    store = open_store("sqlite://")
    assert not store.threads_share_it
    try:
        result = process(world["manifest"], world["master"], tmp_path / "out", store=store)
    finally:
        store.close()
    assert result.rows == len(response_rows(tmp_path / "out")) > 1_000
    assert sum(result.outcomes.values()) == result.rows
