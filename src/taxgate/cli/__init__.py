"""The command line (DESIGN.md "Command line"). Thin: parse, call a stage, print.

Exit codes: 0 done, 2 bad input with a one-line reason on stderr; never a traceback for a user error.
One module per group of commands; each registers its commands on the shared `app`.
"""

from __future__ import annotations

import sys

from taxgate.cli import batches, courts, data, ledger, service  # noqa: F401  (registers the commands)
from taxgate.cli._common import app


def main() -> None:  # pragma: no cover - `python -m taxgate`
    sys.exit(app())
