"""What `taxgate serve` is told: where the store, the master and the files are, and the limits."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

MIB = 1 << 20


class SettingsError(ValueError):
    """A server option out of its range; the message names it."""


@dataclass(frozen=True)
class Settings:
    master: Path  # the taxpayer master every batch is matched against
    database_url: str | None = None  # None: TAXGATE_DATABASE_URL or the default SQLite file
    data_dir: Path = Path("taxgate-data")  # uploads and responses, one folder per submission
    policy: Path | None = None  # None: the shipped policy versions
    max_rows_bytes: int = 512 * MIB  # one rows file
    max_manifest_bytes: int = 256 * 1024
    uploads_per_minute: int = 30  # per requester
    workers: int = 1  # background processes deciding batches; 0: none (tests run them by hand)
    release_every: float = (
        60.0  # seconds between decisions on held items and checkpoint signing; 0: off
    )
    secure_cookies: bool = False  # set behind TLS: cookies only over HTTPS
    demo: bool = False  # demo mode: users with printed passwords may be made at start
    witnesses: tuple = ()  # witness.client.Witness: each new checkpoint is sent to them for cosigning
    max_attempts: int = 3  # a batch whose worker dies this many times is failed, never queued again
    lease_seconds: float = 30.0  # a worker renews its claim on a running batch this often (x 1/3)

    def __post_init__(self) -> None:
        """Every option in its range, or one line naming it: a server must not start with a limit
        that refuses everything, or none at all."""
        bounds = {
            "max_rows_bytes": (1, 64 << 30),
            "max_manifest_bytes": (1024, 16 * MIB),
            "uploads_per_minute": (1, 100_000),
            "workers": (0, 64),
            "release_every": (0, 86_400),
        }
        for name, (low, high) in bounds.items():
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or not low <= value <= high
            ):
                raise SettingsError(
                    f"server option {name} = {value!r}: a number from {low:,} to {high:,}"
                )
        if self.max_attempts < 1 or self.max_attempts > 100:
            raise SettingsError(
                f"server option max_attempts = {self.max_attempts!r}: from 1 to 100"
            )

    @property
    def submissions(self) -> Path:
        return self.data_dir / "submissions"

    @property
    def incoming(self) -> Path:
        return self.data_dir / "incoming"
