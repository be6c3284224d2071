"""The entries that decide a release (orders, reviews) are read from the ledger by their content.
Past the last signed checkpoint every entry is read, but what this process appended itself, in a
transaction that committed, is known without reading it back: a batch's chunks no longer re-read
the chunk before. What another process appended in between is still read, and a transaction that
rolled back is never taken as appended."""

from __future__ import annotations

import subprocess
import sys

import pytest

from taxgate.ledger import Ledger, signing
from taxgate.ledger.bindings import TamperedError
from taxgate.ledger.signing import entries_of_kinds, sign_checkpoint

KINDS = ("order_added", "order_lifted")


def entries(n: int, start: int = 0) -> list[dict]:
    return [{"kind": "test", "n": i} for i in range(start, start + n)]


def read(store, monkeypatch) -> tuple[list[tuple[int, dict]], int]:
    """entries_of_kinds, and how many entries it read from the store to answer."""
    counted = []
    real = signing.stream

    def stream(connection, query):
        for row in real(connection, query):
            counted.append(row)
            yield row

    monkeypatch.setattr(signing, "stream", stream)
    with store.session.begin() as session:
        found = entries_of_kinds(session, KINDS)
    monkeypatch.setattr(signing, "stream", real)
    return found, len(counted)


def another_process_appends(database_url: str, entry: dict) -> None:
    code = (
        "from taxgate.store import open_store; from taxgate.ledger import Ledger; "
        f"store = open_store({database_url!r}); s = store.session.begin().__enter__(); "
        f"Ledger(store).append(s, [{entry!r}]); s.commit(); store.close()"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_own_appends_are_not_read_back_and_others_are(store, database_url, monkeypatch):
    ledger = Ledger(store)
    with store.session.begin() as session:
        ledger.append(session, entries(3))
    assert read(store, monkeypatch) == ([], 3)  # the first time: everything past the checkpoint

    with store.session.begin() as session:  # this process's own, committed
        ledger.append(session, entries(4, 3))
    assert read(store, monkeypatch) == ([], 0)
    lift = {"kind": "order_lifted", "order_entry": 1}
    nested = {"kind": "test", "inside": {"kind": "order_added"}}  # the marker, in another kind
    with store.session.begin() as session:
        ledger.append(session, [*entries(2, 7), lift, nested, *entries(1, 9)])
    assert read(store, monkeypatch) == ([(9, lift)], 0)

    # Another process appends a stay, then this one appends again: the stay is read.
    another_process_appends(database_url, {"kind": "order_added", "order": "stay"})
    with store.session.begin() as session:
        ledger.append(session, entries(2, 13))
    stay = (12, {"kind": "order_added", "order": "stay"})
    assert read(store, monkeypatch) == ([(9, lift), stay], 3)
    assert read(store, monkeypatch) == ([(9, lift), stay], 0)


def test_a_transaction_rolled_back_is_not_taken_as_appended(store, monkeypatch):
    ledger = Ledger(store)
    assert read(store, monkeypatch) == ([], 0)
    session = store.session()
    with session.begin():
        ledger.append(session, [{"kind": "order_lifted", "order_entry": 0}])
        session.rollback()
    session.close()
    with store.session.begin() as session:  # the same index, now holding something else
        ledger.append(session, entries(1))
    assert read(store, monkeypatch) == ([], 0)

    # A savepoint rolled back inside a transaction that commits: what it held is forgotten, and
    # the entry appended after it, at the same index, is the one known.
    with store.session.begin() as session:
        savepoint = session.begin_nested()
        ledger.append(session, [{"kind": "order_added", "order": "never"}])
        savepoint.rollback()
        ledger.append(session, [{"kind": "order_added", "order": "kept"}])
    assert read(store, monkeypatch) == ([(1, {"kind": "order_added", "order": "kept"})], 0)


def test_a_session_closed_without_committing_and_used_again_moves_nothing(store, monkeypatch):
    ledger = Ledger(store)
    assert read(store, monkeypatch) == ([], 0)
    session = store.session()
    session.begin()
    ledger.append(session, [{"kind": "order_lifted", "order_entry": 0}])
    session.close()  # its transaction ends unwritten
    with session.begin():  # the same session again, appending nothing
        pass
    with store.session.begin() as other:
        ledger.append(other, [{"kind": "order_added", "order": "real"}])
    with session.begin():
        pass
    assert read(store, monkeypatch) == ([(0, {"kind": "order_added", "order": "real"})], 0)


REAL = {"kind": "order_added", "order": "real"}


def test_a_savepoint_released_in_a_transaction_that_rolls_back_moves_nothing(
    store, database_url, monkeypatch
):
    """SQLAlchemy calls after_commit for a savepoint released too; the transaction around it can
    still roll back, and then another entry takes the index of the one it appended."""
    ledger = Ledger(store)
    assert read(store, monkeypatch) == ([], 0)
    with pytest.raises(RuntimeError), store.session.begin() as session:
        ledger.append(session, [{"kind": "order_added", "order": "phantom"}])
        with session.begin_nested():
            pass
        raise RuntimeError("a failure after the savepoint")
    another_process_appends(database_url, REAL)
    assert read(store, monkeypatch) == ([(0, REAL)], 1)


def test_a_read_inside_a_transaction_that_appended_is_not_kept(store, database_url, monkeypatch):
    """A batch's receipt appends, then reads the orders in force, in one transaction. Were that
    read kept and the transaction rolled back, an order later ledgered at the same index would
    never be seen by this process."""
    ledger = Ledger(store)
    with pytest.raises(RuntimeError), store.session.begin() as session:
        ledger.append(session, [{"kind": "batch_received"}])
        assert entries_of_kinds(session, KINDS) == []
        raise RuntimeError("the receipt's notices fail")
    another_process_appends(database_url, REAL)
    assert read(store, monkeypatch) == ([(0, REAL)], 1)


def test_a_failure_moving_the_tail_never_fails_the_commit(store, monkeypatch):
    """The listener runs after the commit: whatever goes wrong in it, the commit stands and the
    tail is read again from the store."""
    ledger = Ledger(store)
    assert read(store, monkeypatch) == ([], 0)

    def broken(entry, idx):
        raise TamperedError("unreadable")

    monkeypatch.setattr(signing, "_parsed", broken)
    with store.session.begin() as session:
        ledger.append(session, [REAL])
    monkeypatch.undo()
    assert read(store, monkeypatch) == ([(0, REAL)], 1)


def test_an_older_checkpoint_s_tail_is_not_kept(store, monkeypatch):
    ledger = Ledger(store)
    for n in range(3):
        with store.session.begin() as session:
            ledger.append(session, entries(2, 2 * n))
        read(store, monkeypatch)
        sign_checkpoint(store)
    url = str(store.engine.url)
    # one tail kept: the one past the checkpoint it was last read against (signed at size 4)
    assert [key[1] for key in signing._scanned if key[0] == url and key[3] == KINDS] == [4]
