"""Intake: a batch manifest and its rows file become a stream of typed `Request`s.

Every row is kept; a row that cannot be parsed becomes a request carrying `parse_error`.
"""

from taxgate.intake.manifest import IntakeError, Manifest, parse_timestamp, read_manifest
from taxgate.intake.rows import RowStream

__all__ = ["IntakeError", "Manifest", "RowStream", "parse_timestamp", "read_manifest"]
