"""The command line (docs/DESIGN.md "Command line"). Thin: parse, call a stage, print.

Exit codes: 0 done, 1 refused because the store disagrees with its ledger (or a finding of `ledger
verify`), 2 bad input, 128 + the signal's number when stopped (130 Ctrl-C, 143 SIGTERM, 129
SIGHUP), each with a one-line reason on stderr; never a traceback for a user error.
One module per group of commands; each registers its commands on the shared `app`.
"""

from __future__ import annotations

import signal
import sys
import time
from contextlib import suppress

from taxgate.cli import batches, courts, ledger, reports, service, synthetic  # noqa: F401  (registers the commands)
from taxgate.cli.shared import app, errors

# The signals that stop a command, as its one line names them: Ctrl-C, `kill` or a service
# stopping, the terminal closing. Each stops it as Ctrl-C does (exit 128 + the signal's number).
STOPS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}
STOP_AGAIN_AFTER = 5.0  # seconds


def main() -> None:
    """The `taxgate` command: the app, with the ledger's refusals as one line (exit 1), and a
    stop (`STOPS`) as one line whatever it interrupted, after its clean-up (a run's work folder,
    which holds the requests, goes)."""
    from sqlalchemy.exc import SQLAlchemyError

    from taxgate.ledger import LedgerError

    stopped: list[int] = []
    acted_at = [0.0]  # when the last stop that acted came

    def on_stop(signum, frame):
        # The first stops the command; those in the next seconds must not cut its clean-up short.
        # One after that stops it again: the first may have been swallowed (Python reports an
        # interrupt inside a finaliser as "Exception ignored" and goes on).
        if not stopped or time.monotonic() - acted_at[0] > STOP_AGAIN_AFTER:
            stopped.append(signum)
            acted_at[0] = time.monotonic()
            raise KeyboardInterrupt

    before = {s: signal.getsignal(s) for s in STOPS}
    for s, handler in before.items():
        # Not a signal the command was started ignoring (in the background, under nohup).
        if handler in (signal.default_int_handler, signal.SIG_DFL):
            signal.signal(s, on_stop)
    try:
        app()
    except BaseException as exc:
        if stopped and not (isinstance(exc, SystemExit) and exc.code in (0, None)):
            # What the stop broke on its way (DuckDB's "Query interrupted", a pool whose
            # workers it ended) is the stop itself, not a fault to report.
            with suppress(OSError):  # a terminal that closed takes no more lines
                errors.print(
                    f"taxgate: stopped ({STOPS[stopped[0]]})", markup=False, highlight=False
                )
            sys.exit(128 + stopped[0])
        if isinstance(exc, LedgerError):
            errors.print(f"taxgate: refused: {exc}", markup=False, highlight=False, soft_wrap=True)
            sys.exit(1)
        if isinstance(exc, SQLAlchemyError):  # the store could not do what was asked
            first = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            errors.print(
                f"taxgate: the store refused the operation ({type(exc).__name__}: {first}); if it "
                "was altered, `taxgate ledger verify` says where",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            sys.exit(1)
        raise
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
