"""The command line (docs/DESIGN.md "Command line"). Thin: parse, call a stage, print.

Exit codes: 0 done, 1 refused because the store disagrees with its ledger (or a finding of `ledger
verify`), 2 bad input, 130 stopped by Ctrl-C, each with a one-line reason on stderr; never a
traceback for a user error.
One module per group of commands; each registers its commands on the shared `app`.
"""

from __future__ import annotations

import signal
import sys
import threading

from taxgate.cli import batches, courts, ledger, reports, service, synthetic  # noqa: F401  (registers the commands)
from taxgate.cli.shared import app, errors


def main() -> None:
    """The `taxgate` command: the app, with the ledger's refusals as one line (exit 1), and a
    Ctrl-C as one line (exit 130) whatever it interrupted."""
    from sqlalchemy.exc import SQLAlchemyError

    from taxgate.ledger import LedgerError

    stopped, before = threading.Event(), signal.getsignal(signal.SIGINT)
    if before is signal.default_int_handler:  # not when started ignoring it, in the background

        def on_ctrl_c(signum, frame):
            stopped.set()
            raise KeyboardInterrupt

        signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        app()
    except BaseException as exc:
        if stopped.is_set() and not (isinstance(exc, SystemExit) and exc.code in (0, None)):
            # What the Ctrl-C broke on its way (DuckDB's "Query interrupted", a pool whose
            # workers it ended) is the stop itself, not a fault to report.
            errors.print("taxgate: stopped (Ctrl-C)", markup=False, highlight=False)
            sys.exit(130)
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
        signal.signal(signal.SIGINT, before)
