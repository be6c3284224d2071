"""A process that dies on cue: SIGKILL inside the Nth chunk's store transaction, deterministically;
or a Ctrl-C (or another signal), on cue, to the whole process group, as a terminal sends it.

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

if os.environ.get("TAXGATE_TEST_CTRL_C"):
    import functools
    import importlib
    import signal
    import threading
    import time

    _cue = os.environ["TAXGATE_TEST_CTRL_C"].split(":", 6)
    _module, _name, _call, _delay, _signal, _times, _marker = _cue
    _where = importlib.import_module(_module)
    _original, _calls = getattr(_where, _name), [0]

    def _stop():  # from a thread of its own: the first signal may end the thread that called
        for i in range(int(_times)):
            time.sleep(float(_delay) if i == 0 else 0.2)
            os.killpg(os.getpgrp(), getattr(signal, _signal))

    @functools.wraps(_original)
    def _interrupted(*args, **kwargs):
        _calls[0] += 1
        if _calls[0] == int(_call) and not os.path.exists(_marker):
            open(_marker, "w").close()
            threading.Thread(target=_stop, daemon=True).start()
        return _original(*args, **kwargs)

    setattr(_where, _name, _interrupted)
"""


def _hooked(folder: Path) -> tuple[Path, str]:
    """The hook's folder under `folder`, and PYTHONPATH with it first."""
    hook = folder / "dying-hook"
    hook.mkdir(parents=True, exist_ok=True)
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    return hook, os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH", "")) if p)


def dying_env(folder: Path, chunk: int) -> dict[str, str]:
    """Environment variables under which a taxgate process dies in its `chunk`-th recorded chunk,
    once (`folder` holds the hook and the marker)."""
    hook, path = _hooked(folder)
    return {"PYTHONPATH": path, "TAXGATE_TEST_DIE_IN_CHUNK": f"{chunk}:{hook / 'died'}"}


def interrupted_env(
    folder: Path,
    target: str,
    call: int = 1,
    delay: float = 0.0,
    signal_name: str = "SIGINT",
    times: int = 1,
) -> dict[str, str]:
    """Environment variables under which the `call`-th call of `target` ("module:function", looked
    up in the module when called) in any process of a run, once, sends `signal_name` to the run's
    process group `delay` seconds into the call, `times` times 0.2 s apart: a Ctrl-C (or a `kill`)
    at that moment. The run must lead a process group of its own (start_new_session)."""
    hook, path = _hooked(folder)
    cue = f"{target}:{call}:{delay}:{signal_name}:{times}:{hook / 'interrupted'}"
    return {"PYTHONPATH": path, "TAXGATE_TEST_CTRL_C": cue}


def died(folder: Path) -> bool:
    return (folder / "dying-hook" / "died").exists()
