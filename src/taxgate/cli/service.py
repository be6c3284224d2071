"""The service (`taxgate serve`) and its users (`taxgate users ...`)."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import typer

from taxgate.cli.shared import DATABASE, app, console, fail, store_at

users_app = typer.Typer(
    help="Users of the service: roles, passwords (argon2id), API tokens.", no_args_is_help=True
)
app.add_typer(users_app, name="users")

DEMO_USERS = (
    ("requester", "requester", "DHS-ICE"),
    ("officer", "officer", ""),
    ("court", "court", ""),
    ("auditor", "auditor", ""),
    ("admin", "admin", ""),
)


def _password(stdin: bool, generate: bool) -> tuple[str, bool]:
    """The new password: read from stdin, generated (and printed), or asked for twice."""
    if stdin:
        return sys.stdin.readline().rstrip("\n"), False
    if generate:
        return secrets.token_urlsafe(18), True
    if not sys.stdin.isatty():
        fail("give --password-stdin or --generate-password (no terminal to ask on)")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True), False


@users_app.command("add")
def users_add(
    username: str = typer.Argument(..., help="2-64 of a-z, 0-9, '.', '_', '-'."),
    role: str = typer.Option(..., "--role", help="requester | officer | court | auditor | admin"),
    agency: str = typer.Option("", "--agency", help="A requester's agency (its batches only)."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from stdin."
    ),
    generate: bool = typer.Option(
        False, "--generate-password", help="Make a random password and print it once."
    ),
    no_password: bool = typer.Option(
        False, "--no-password", help="API tokens only: no console sign-in."
    ),
    database_url: str = DATABASE,
) -> None:
    """Add a user of the service. There is no default user or password."""
    from taxgate.accounts import AccountError, add_user

    password, show = (None, False) if no_password else _password(password_stdin, generate)
    try:
        add_user(store_at(database_url), username, role, agency, password)
    except AccountError as exc:
        fail(str(exc))
    console.print(f"User {username} added as {role}{f' for {agency}' if agency else ''}.")
    if show:
        console.print(f"Password (shown once): {password}", markup=False)


@users_app.command("password")
def users_password(
    username: str = typer.Argument(...),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from stdin."
    ),
    generate: bool = typer.Option(
        False, "--generate-password", help="Make a random password and print it once."
    ),
    database_url: str = DATABASE,
) -> None:
    """Set a user's password: every session of theirs ends and every token is revoked."""
    from taxgate.accounts import AccountError, set_password

    password, show = _password(password_stdin, generate)
    try:
        revoked = set_password(store_at(database_url), username, password)
    except AccountError as exc:
        fail(str(exc))
    console.print(
        f"Password of {username} set; their sessions ended and {revoked} token(s) were revoked."
    )
    if show:
        console.print(f"Password (shown once): {password}", markup=False)


@users_app.command("token")
def users_token(
    username: str = typer.Argument(...),
    label: str = typer.Option("", "--label"),
    database_url: str = DATABASE,
) -> None:
    """Issue an API token for a user; printed once (only its SHA-256 is kept)."""
    from taxgate.accounts import AccountError, issue_token

    try:
        print(issue_token(store_at(database_url), username, label))
    except AccountError as exc:
        fail(str(exc))


@users_app.command("disable")
def users_disable(username: str = typer.Argument(...), database_url: str = DATABASE) -> None:
    """Disable a user: their tokens and sessions stop working at once."""
    from taxgate.accounts import AccountError, disable_user

    try:
        disable_user(store_at(database_url), username)
    except AccountError as exc:
        fail(str(exc))
    console.print(f"User {username} disabled.")


@users_app.command("enable")
def users_enable(username: str = typer.Argument(...), database_url: str = DATABASE) -> None:
    """Enable a disabled user again (their old tokens stay revoked)."""
    from taxgate.accounts import AccountError, enable_user

    try:
        enable_user(store_at(database_url), username)
    except AccountError as exc:
        fail(str(exc))
    console.print(f"User {username} enabled.")


@users_app.command("revoke")
def users_revoke(
    token_id: int = typer.Argument(
        ..., min=1, help="The token's number (`taxgate users tokens NAME`)."
    ),
    database_url: str = DATABASE,
) -> None:
    """Revoke one API token (ledgered)."""
    from taxgate.accounts import AccountError, revoke_token

    try:
        owner = revoke_token(store_at(database_url), token_id)
    except AccountError as exc:
        fail(str(exc))
    console.print(f"Token {token_id} of {owner} revoked.")


@users_app.command("tokens")
def users_tokens(username: str = typer.Argument(...), database_url: str = DATABASE) -> None:
    """A user's API tokens: number, label, when made and revoked (never the tokens themselves)."""
    from rich.table import Table

    from taxgate.accounts import AccountError, list_tokens

    try:
        found = list_tokens(store_at(database_url), username)
    except AccountError as exc:
        fail(str(exc))
    table = Table("token", "label", "made", "revoked")
    for t in found:
        table.add_row(str(t["id"]), t["label"], t["created"], t["revoked"] or "")
    console.print(table)


@users_app.command("list")
def users_list(database_url: str = DATABASE) -> None:
    """List the users, their roles and live tokens."""
    from rich.table import Table

    from taxgate.accounts import list_users

    table = Table("user", "role", "agency", "password", "tokens", "disabled")
    for u in list_users(store_at(database_url)):
        table.add_row(
            u["username"],
            u["role"],
            u["agency"],
            "set" if u["password"] else "none",
            str(u["tokens"]),
            "yes" if u["disabled"] else "",
        )
    console.print(table)


def _demo_world(folder: Path) -> Path:
    """The demo's synthetic master (built once), for `serve --demo`."""
    from taxgate.synth import generate_master

    master = folder / "world" / "master.parquet"
    if not master.is_file():
        with console.status("Building the synthetic master for the demo..."):
            generate_master(20_000, master, seed=7)
    return master


def _demo_users(store) -> None:
    """Demo mode only: one user per role, each with a fresh random password printed here."""
    from taxgate.accounts import AccountError, add_user, set_password

    console.print("Demo users (passwords made now, shown once):")
    for username, role, agency in DEMO_USERS:
        password = secrets.token_urlsafe(12)
        try:
            add_user(store, username, role, agency, password)
        except AccountError:
            set_password(store, username, password)
        console.print(f"  {username:<10} {role:<10} {password}", markup=False)


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    master: Path = typer.Option(None, "--master", help="The taxpayer master (Parquet or CSV)."),
    data_dir: Path = typer.Option(
        Path("taxgate-data"), "--data-dir", help="Uploads and responses."
    ),
    policy: Path = typer.Option(
        None, "--policy", help="Policy file or folder (default: the shipped policy)."
    ),
    workers: int = typer.Option(
        1, "--workers", min=0, max=16, help="Background processes deciding batches."
    ),
    release_every: float = typer.Option(
        60.0,
        "--release-every",
        min=0,
        help="Seconds between releasing what no order holds and signing a checkpoint (0: off).",
    ),
    max_upload_mb: int = typer.Option(
        512, "--max-upload-mb", min=1, help="Largest rows file accepted."
    ),
    uploads_per_minute: int = typer.Option(
        30, "--uploads-per-minute", min=1, help="Per requester."
    ),
    secure_cookies: bool = typer.Option(
        False, "--secure-cookies", help="Behind TLS: cookies over HTTPS only."
    ),
    demo: bool = typer.Option(
        False,
        "--demo",
        help="Demo mode: the demo master, and one user per role with a printed password.",
    ),
    witness: list[str] = typer.Option(
        None,
        "--witness",
        help="URL=VERIFIER_KEY of a witness (C2SP tlog-witness) "
        "each new checkpoint is sent to. Repeatable.",
    ),
    lease_seconds: float = typer.Option(
        30.0,
        "--lease-seconds",
        min=2,
        max=3600,
        help="A worker renews its claim on a batch this often (x 1/3); a batch whose "
        "worker died is taken again once its lease lapses.",
    ),
    forwarded_allow_ips: str = typer.Option(
        None,
        "--forwarded-allow-ips",
        help="The reverse proxy's address(es), comma-separated: only from these "
        "is X-Forwarded-For believed (default: from none).",
    ),
    database_url: str = DATABASE,
) -> None:
    """Run the API (/api, OpenAPI at /openapi.json), the log (/log, C2SP tlog-tiles) and the
    console (/) until stopped."""
    import uvicorn

    from taxgate.accounts import list_users
    from taxgate.service import Settings, create_app
    from taxgate.service.server import config
    from taxgate.service.settings import MIB, SettingsError

    store = store_at(database_url)
    if demo and master is None:
        master = _demo_world(Path("taxgate-demo"))
    if master is None:
        fail("give --master (the taxpayer master), or run with --demo")
    if not master.is_file():
        fail(f"taxpayer master not found: {master}")
    if demo:
        _demo_users(store)
    elif not list_users(store):
        console.print(
            "No users yet: add one with `taxgate users add NAME --role admin` (there is no default password)."
        )
    try:
        settings = Settings(
            master=master.resolve(),
            database_url=database_url,
            data_dir=data_dir.resolve(),
            policy=policy,
            max_rows_bytes=max_upload_mb * MIB,
            uploads_per_minute=uploads_per_minute,
            workers=workers,
            release_every=release_every,
            secure_cookies=secure_cookies,
            demo=demo,
            witnesses=tuple(witnesses(witness)),
            lease_seconds=lease_seconds,
        )
    except SettingsError as exc:
        fail(str(exc))
    if database_url:
        os.environ["TAXGATE_DATABASE_URL"] = database_url  # the workers open the same store
    console.print(
        f"taxgate serving on http://{host}:{port}/ (API under /api, OpenAPI at /openapi.json, "
        "the log under /log)"
    )
    uvicorn.Server(config(create_app(settings, store), host, port, forwarded_allow_ips)).run()


def witnesses(specs: list[str] | None) -> list:
    """`URL=VERIFIER_KEY` options as witnesses, or a one-line failure."""
    from taxgate.witness import WitnessError
    from taxgate.witness.client import Witness

    try:
        return [Witness.parse(spec) for spec in specs or []]
    except WitnessError as exc:
        fail(str(exc))


witness_app = typer.Typer(
    help="A witness (C2SP tlog-witness): cosigns a log's checkpoints only if each extends "
    "the last it saw. Run it where the log's operator has no hand.",
    no_args_is_help=True,
)
app.add_typer(witness_app, name="witness")


@witness_app.command("keygen")
def witness_keygen(
    name: str = typer.Argument(..., help="The witness's name, e.g. court-monitor.example/w1."),
    out: Path = typer.Option(
        ..., "--out", help="Where to write the private key (owner-only; never to the log)."
    ),
) -> None:
    """Make a witness key; prints the verifier key the log is configured with."""
    from taxgate.witness import Cosigner, WitnessError

    try:
        cosigner = Cosigner.generate(name)
        cosigner.save(out)
    except WitnessError as exc:
        fail(str(exc))
    except FileExistsError:
        fail(f"{out} exists: a witness key is never overwritten")
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {out}")
    print(cosigner.verifier_key())


@witness_app.command("serve")
def witness_serve(
    key: Path = typer.Option(
        ..., "--key", help="The witness's private key (`taxgate witness keygen`)."
    ),
    log: list[str] = typer.Option(
        ..., "--log", help="A log's verifier key (its origin is the key's name). Repeatable."
    ),
    state: Path = typer.Option(
        Path("witness-state.json"), "--state", help="The witness's own record of what it cosigned."
    ),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8100, "--port", min=1, max=65535),
) -> None:
    """Run the witness: POST /add-checkpoint, GET /<sha256(origin)>/checkpoint."""
    import uvicorn

    from taxgate.ledger.checkpoint import CheckpointError, read_verifier_key
    from taxgate.witness import Cosigner, WitnessError
    from taxgate.witness.server import create_witness_app

    try:
        cosigner = Cosigner.load(key)
        logs = {}
        for verifier in log:
            read_verifier_key(verifier)
            logs[verifier.split("+", 1)[0]] = verifier.strip()
    except (WitnessError, CheckpointError) as exc:
        fail(str(exc))
    console.print(
        f"witness {cosigner.name} on http://{host}:{port}/ for {', '.join(logs)}; its key: "
        f"{cosigner.verifier_key()}",
        soft_wrap=True,
        markup=False,
    )
    uvicorn.run(create_witness_app(cosigner, logs, state), host=host, port=port, log_level="info")
