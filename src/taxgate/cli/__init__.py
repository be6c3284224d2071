"""The command line (docs/DESIGN.md "Command line"). Thin: parse, call a stage, print.

Exit codes: 0 done, 1 refused because the store disagrees with its ledger (or a finding of `ledger
verify`), 2 bad input, each with a one-line reason on stderr; never a traceback for a user error.
One module per group of commands; each registers its commands on the shared `app`.
"""

from __future__ import annotations

import sys

from taxgate.cli import batches, courts, ledger, reports, service, synthetic  # noqa: F401  (registers the commands)
from taxgate.cli.shared import app, errors


def main() -> None:
    """The `taxgate` command: the app, with the ledger's refusals as one line (exit 1)."""
    from sqlalchemy.exc import SQLAlchemyError

    from taxgate.ledger import LedgerError

    try:
        app()
    except LedgerError as exc:
        errors.print(f"taxgate: refused: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)
    except (
        SQLAlchemyError
    ) as exc:  # the store could not do what was asked: run `taxgate ledger verify`
        first = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        errors.print(
            f"taxgate: the store refused the operation ({type(exc).__name__}: {first}); if it was "
            "altered, `taxgate ledger verify` says where",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
