"""The ledger: verify, checkpoints, proofs."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer

from taxgate.cli.shared import DATABASE, app, console, errors, fail, store_at

ledger_app = typer.Typer(
    help="The tamper-evident ledger: verify, checkpoints, proofs.", no_args_is_help=True
)
app.add_typer(ledger_app, name="ledger")


def _verifier_key(key: str | None) -> str:
    """A verifier key given as text, or read from a file (default: the signing key's .pub)."""
    import os

    if key and "+" in key and not Path(key).exists():
        return key
    path = Path(
        key
        or Path(os.environ.get("TAXGATE_LEDGER_KEY") or "taxgate-ledger.key").with_suffix(".pub")
    )
    if not path.is_file():
        fail(f"no verifier key at {path}: give --key NAME+ID+KEY or a file holding it")
    return path.read_text(encoding="utf-8").strip()


MAX_FINDINGS_SHOWN = 200


@ledger_app.command("verify")
def ledger_verify(
    key: str = typer.Option(
        None, "--key", help="Verifier key (text or file; default: taxgate-ledger.pub)."
    ),
    checkpoint: list[Path] = typer.Option(
        None,
        "--checkpoint",
        help="A checkpoint you kept (a file holding its signed note): the ledger must extend "
        "it. Repeatable.",
    ),
    workers: int = typer.Option(
        2, "--workers", min=1, max=2, help="Processes for a large ledger (1 or 2)."
    ),
    database_url: str = DATABASE,
) -> None:
    """Recompute the whole ledger from its entries and check every row bound to an entry; each
    finding is one line (exit 1)."""
    from taxgate.ledger import Ledger, LedgerError
    from taxgate.verification import verify_store

    verifier = _verifier_key(key)
    kept = [_kept(path, verifier) for path in checkpoint or []]
    signer_saw, at_least = _signers_record(verifier)
    store = store_at(database_url)
    started = time.perf_counter()
    found = 0
    for finding in verify_store(
        store, verifier, [*kept, *signer_saw], workers=workers, checkpoints_at_least=at_least
    ):
        found += 1
        if found <= MAX_FINDINGS_SHOWN:
            errors.print(
                f"taxgate: FINDING: {finding.message}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    if found:
        more = (
            f" ({found - MAX_FINDINGS_SHOWN:,} more not shown)"
            if found > MAX_FINDINGS_SHOWN
            else ""
        )
        errors.print(
            f"taxgate: ledger FAILED verification: {found:,} finding(s){more}",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(1)
    ledger = Ledger(store)
    try:
        with store.session() as session:
            size, note = ledger.size(session), ledger.latest_checkpoint(session)
    except LedgerError as exc:
        fail(str(exc))
    signed = int(note.split("\n")[1]) if note else 0
    extends = f", extending {len(kept)} kept checkpoint(s)" if kept else ""
    console.print(
        f"Ledger verified: {size:,} entries, every checkpoint signature and root recomputed{extends}, "
        "every row bound to its entry and every entry to its row "
        f"({time.perf_counter() - started:.1f} s)."
    )
    if size > signed:
        console.print(
            f"{size - signed:,} entries after the latest checkpoint (size {signed:,}) are not signed yet: "
            "run `taxgate ledger checkpoint`."
        )


def _signers_record(verifier: str) -> tuple[list, int]:
    """Where the signing key is at hand, its record of the last checkpoint it signed is a
    checkpoint kept outside the store too, with how many checkpoints the store held then."""
    from taxgate.ledger import KeptCheckpoint, LedgerError
    from taxgate.ledger.signing import key_path, read_record, record_path

    try:
        record = read_record(key_path(), verifier)
    except LedgerError:
        return [], 0  # another log's record, or none that can be read: nothing more to compare with
    if record.checkpoint is None:
        return [], 0
    return [
        KeptCheckpoint(f"the signer's record {record_path(key_path())}", record.checkpoint)
    ], record.stored


def _kept(path: Path, verifier: str):
    """A checkpoint kept outside the store, verified against the log's key, or a one-line failure."""
    from taxgate.ledger import ORIGIN, KeptCheckpoint
    from taxgate.ledger.checkpoint import CheckpointError, verify_note

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read the checkpoint {path}: {exc}")
    try:
        return KeptCheckpoint(str(path), verify_note(text, verifier, origin=ORIGIN))
    except CheckpointError as exc:
        fail(f"the checkpoint in {path} is not one this ledger's key signed: {exc}")


@ledger_app.command("checkpoint")
def ledger_checkpoint(
    trust_store: bool = typer.Option(
        False,
        "--trust-store",
        help="Start the signer's record from the store's latest checkpoint (once, for a key "
        "that signed before it kept a record).",
    ),
    witness: list[str] = typer.Option(
        None, "--witness", help="URL=VERIFIER_KEY of a witness to cosign it. Repeatable."
    ),
    database_url: str = DATABASE,
) -> None:
    """Sign the current tree head and print the checkpoint (C2SP signed note), with the cosignatures
    of any witness given. Refused, with one line, if the tree does not extend the last checkpoint
    this key signed."""
    from taxgate.cli.service import witnesses
    from taxgate.ledger import LedgerError, sign_checkpoint
    from taxgate.witness.client import cosign_latest, cosigned_note

    store = store_at(database_url)
    asked = witnesses(witness)
    try:
        note = sign_checkpoint(store, trust_store=trust_store)
    except LedgerError as exc:
        errors.print(f"taxgate: refused: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    refused = [
        line for line in cosign_latest(store, asked) if "cosigned the checkpoint" not in line
    ]
    with store.session() as session:
        sys.stdout.write(cosigned_note(session, note))
    for line in refused:
        errors.print(f"taxgate: {line}", markup=False, highlight=False, soft_wrap=True)
    if refused:
        raise typer.Exit(1)


@ledger_app.command("prove")
def ledger_prove(
    index: int = typer.Argument(..., help="The entry's index."),
    size: int = typer.Option(
        None, "--size", help="Tree size to prove against (default: the latest checkpoint)."
    ),
    database_url: str = DATABASE,
) -> None:
    """Print an inclusion proof (JSON) for one entry, with the checkpoint it proves against."""
    import json

    from taxgate.ledger import LedgerError, inclusion_proof

    try:
        proof = inclusion_proof(store_at(database_url), index, size)
    except LedgerError as exc:
        fail(str(exc))
    print(json.dumps(proof, indent=2, ensure_ascii=False))


@ledger_app.command("consistency")
def ledger_consistency(
    old: int = typer.Argument(..., help="The older tree size."),
    new: int = typer.Argument(None, help="The newer tree size (default: the ledger's size)."),
    database_url: str = DATABASE,
) -> None:
    """Print a consistency proof (JSON) that the tree of size NEW extends the tree of size OLD."""
    import base64
    import json

    from taxgate.ledger import Ledger, LedgerError

    store = store_at(database_url)
    ledger = Ledger(store)
    with store.session() as session:
        try:
            new = ledger.size(session) if new is None else new
            proof = ledger.consistency(session, old, new)
            roots = ledger.root(session, old), ledger.root(session, new)
        except LedgerError as exc:
            fail(str(exc))
    print(
        json.dumps(
            {
                "old": old,
                "new": new,
                "old_root": base64.b64encode(roots[0]).decode(),
                "new_root": base64.b64encode(roots[1]).decode(),
                "proof": [base64.b64encode(h).decode() for h in proof],
            },
            indent=2,
        )
    )


@ledger_app.command("check")
def ledger_check(
    proof_file: Path = typer.Argument(..., help="A proof from `taxgate ledger prove` (JSON)."),
    key: str = typer.Option(..., "--key", help="The ledger's verifier key (text or file)."),
    checkpoint: Path = typer.Option(
        None, "--checkpoint", help="The checkpoint to trust (default: the one in the proof)."
    ),
) -> None:
    """Check an inclusion proof offline: needs only the proof, a checkpoint and the public key."""
    from taxgate.ledger import ProofFormatError, check_proof, merkle, read_proof
    from taxgate.ledger.checkpoint import CheckpointError

    try:
        with open(proof_file, "rb") as fh:
            raw = fh.read(2 << 20)
        data = read_proof(raw)
        note = checkpoint.read_text(encoding="utf-8") if checkpoint else None
        trusted = check_proof(data, _verifier_key(key), note)
    except (CheckpointError, merkle.ProofError) as exc:
        errors.print(
            f"taxgate: proof REJECTED: {exc}", markup=False, highlight=False, soft_wrap=True
        )
        raise typer.Exit(1) from None
    except ProofFormatError as exc:
        fail(f"cannot read the proof: {exc}")
    except (OSError, UnicodeDecodeError) as exc:
        fail(
            f"cannot read {getattr(exc, 'filename', None) or proof_file}: {getattr(exc, 'strerror', None) or exc}"
        )
    console.print(
        f"Proof checked: entry {data['index']} is in the ledger of {trusted.size:,} entries signed by "
        f"{trusted.origin}."
    )
