"""The ledger: an append-only RFC 9162 Merkle log of every event, kept in the store.

- `merkle`: pure RFC 9162 hashing and proofs; `checkpoint`: C2SP signed notes (Ed25519).
- `log`: the log in the store: entries, C2SP tiles, proofs, stored checkpoints.
- `verify`: the whole log recomputed from its entries, against stored and kept checkpoints.
- `signing`: the signing key and its record of the last checkpoint; nothing is signed that does
  not extend it.
- `bindings`: how a table's rows are bound to the entries they record, and the check of both.
- `proofs`: inclusion proofs made and checked offline.
The ledger knows leaves, not what they mean: what each kind of entry records is said by the
package that writes it (`release`, `orders`, `notices`, `review`, `remediation`).
"""

from taxgate.ledger.bindings import (
    Binding,
    Field,
    RowCheck,
    TamperedError,
    at,
    checked_row,
    checked_rows,
    moment,
)
from taxgate.ledger.log import ORIGIN, Finding, Ledger, LedgerError, canonical
from taxgate.ledger.proofs import ProofFormatError, check_proof, inclusion_proof, read_proof
from taxgate.ledger.signing import load_signer, sign_checkpoint
from taxgate.ledger.verify import KeptCheckpoint, verify_log

__all__ = [
    "ORIGIN",
    "Binding",
    "Field",
    "Finding",
    "KeptCheckpoint",
    "Ledger",
    "LedgerError",
    "ProofFormatError",
    "RowCheck",
    "TamperedError",
    "at",
    "canonical",
    "check_proof",
    "checked_row",
    "checked_rows",
    "inclusion_proof",
    "load_signer",
    "moment",
    "read_proof",
    "sign_checkpoint",
    "verify_log",
]
