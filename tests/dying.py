"""A process that dies on cue: SIGKILL inside the Nth chunk's store transaction, deterministically.

A test that kills a run on a timer can miss (a loaded machine finishes first) or land anywhere.
Instead, the process under test is started with this folder's `sitecustomize.py` on its path: it
wraps `release.batch.insert_rows` (one call a recorded chunk, inside that chunk's transaction) and
kills its own process right after the `chunk`-th call, before the transaction commits. A marker
file makes it die once only: a replacement worker, or a restarted run, goes on.
"""

from __future__ import annotations

import os
from pathlib import Path

SITECUSTOMIZE = """
import os

if os.environ.get("TAXGATE_TEST_DIE_IN_CHUNK"):
    import signal

    import taxgate.release.batch as _recording

    _chunk, _marker = os.environ["TAXGATE_TEST_DIE_IN_CHUNK"].split(":", 1)
    _original, _calls = _recording.insert_rows, [0]

    def _insert_then_die(*args, **kwargs):
        _original(*args, **kwargs)
        _calls[0] += 1
        if _calls[0] == int(_chunk) and not os.path.exists(_marker):
            open(_marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)

    _recording.insert_rows = _insert_then_die
"""


def dying_env(folder: Path, chunk: int) -> dict[str, str]:
    """Environment variables under which a taxgate process dies in its `chunk`-th recorded chunk,
    once (`folder` holds the hook and the marker)."""
    hook = folder / "dying-hook"
    hook.mkdir(parents=True, exist_ok=True)
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    path = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "TAXGATE_TEST_DIE_IN_CHUNK": f"{chunk}:{hook / 'died'}"}


def died(folder: Path) -> bool:
    return (folder / "dying-hook" / "died").exists()
