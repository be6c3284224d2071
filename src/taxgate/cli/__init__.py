"""The command line (DESIGN.md "Command line"). Thin: parse, call a stage, print.

Exit codes: 0 done, 2 bad input with a one-line reason on stderr; never a traceback for a user error.
One module per group of commands; each registers its commands on the shared `app`.
"""

from __future__ import annotations

import sys

import typer

from taxgate.cli import batches, courts, data, ledger  # noqa: F401  (registers the commands)
from taxgate.cli._common import app, fail


def _not_yet(name: str, issue: int) -> None:
    @app.command(name, context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
                 help=f"Not available yet: arrives with issue {issue}.")
    def _command(ctx: typer.Context) -> None:
        fail(f"'taxgate {name}' is not available in this version (planned in issue {issue})")


_not_yet("serve", 6)


def main() -> None:  # pragma: no cover - `python -m taxgate`
    sys.exit(app())
