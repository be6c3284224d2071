"""The README's test command never touches the user's own store or key (`./taxgate.db`,
`./taxgate-ledger.key`), even with module-wide fixtures that run a whole batch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from support import TESTS

pytestmark = pytest.mark.slow  # a nested test run


def test_a_test_run_leaves_the_users_store_and_key_byte_identical(tmp_path):
    # A user who ran the demo has a store and a key in the folder they test from.
    store, key = tmp_path / "taxgate.db", tmp_path / "taxgate-ledger.key"
    store.write_bytes(b"SQLite format 3\x00 the user's own store " + os.urandom(64))
    key.write_bytes(b"the user's own signing key " + os.urandom(32))
    before = store.read_bytes(), key.read_bytes()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAXGATE_")}
    # A module-scoped fixture that processes a batch (test_pipeline's) and a test that reads the
    # default store, run from the user's folder with no TAXGATE_* variables set.
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--rootdir={TESTS.parent}",
            f"{TESTS / 'pipeline' / 'test_pipeline.py'}::test_every_row_ends_with_exactly_one_outcome",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (store.read_bytes(), key.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taxgate-ledger.key", "taxgate.db"]
