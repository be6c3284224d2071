"""What `taxgate serve` is told: where the store, the master and the files are, and the limits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MIB = 1 << 20


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
    release_every: float = 60.0  # seconds between decisions on held items and checkpoint signing; 0: off
    secure_cookies: bool = False  # set behind TLS: cookies only over HTTPS
    demo: bool = False  # demo mode: users with printed passwords may be made at start
    witnesses: tuple = ()  # witness.client.Witness: each new checkpoint is sent to them for cosigning

    @property
    def submissions(self) -> Path:
        return self.data_dir / "submissions"

    @property
    def incoming(self) -> Path:
        return self.data_dir / "incoming"
