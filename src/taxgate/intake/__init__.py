"""Intake: a batch manifest and its rows file become a stream of typed `Request`s.

Every row is kept; a row that cannot be parsed becomes a request carrying `parse_error`.
"""

from taxgate.intake.manifest import (
    IntakeError,
    Manifest,
    NotTheFormat,
    parse_json,
    parse_timestamp,
    read_manifest,
)
from taxgate.intake.rows import RowStream, preflight

__all__ = [
    "IntakeError",
    "Manifest",
    "NotTheFormat",
    "RowStream",
    "parse_json",
    "parse_timestamp",
    "preflight",
    "read_manifest",
]
