"""What every command shares: the Typer app, the consoles, the one-line failure, the store option."""

from __future__ import annotations

import typer
from rich.console import Console

from taxgate.identify import MasterError
from taxgate.intake import IntakeError
from taxgate.policy import PolicyError
from taxgate.store import StoreError

app = typer.Typer(
    help="taxgate: a disclosure gateway for confidential taxpayer information (26 U.S.C. § 6103(i)(2)).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # click's plain help: a flag is shown as a flag (Typer's rich panels print every flag as `<bool>`,
    # as if it took a value), a value's placeholder as its kind (PATH, INTEGER)
    rich_markup_mode=None,
)
console = Console()
errors = Console(stderr=True)
DATABASE = typer.Option(
    None,
    "--database-url",
    help="The store (default: TAXGATE_DATABASE_URL or sqlite:///taxgate.db).",
)

USER_ERRORS = (IntakeError, MasterError, PolicyError, StoreError)


def sign(store) -> None:
    """Sign a checkpoint over what a command has just ledgered: a non-empty ledger is never left
    without one. Refused (LedgerError, one line from `main`) if the tree does not extend the last."""
    from taxgate.ledger import sign_checkpoint

    sign_checkpoint(store)


def fail(message: str) -> None:
    errors.print(f"taxgate: error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def store_at(url: str | None):
    """The store at `url` (or the default), or a one-line failure."""
    from taxgate.store import open_store

    try:
        return open_store(url)
    except StoreError as exc:
        fail(str(exc))
