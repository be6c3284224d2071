"""Work done in the background: batches decided by worker processes, held items released and
checkpoints signed by a timer.

A submission is `queued` when it arrives; a worker claims it (`running`), runs the pipeline on it
exactly as `taxgate process` does, and marks it `done` or `failed` with a one-line reason. A
server stopped mid-batch leaves it `running`; the next start queues it again, and the pipeline
resumes the batch from its recorded mark, so nothing is decided or ledgered twice. One server per
store: two servers would each requeue the other's work.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select, update

from taxgate.identify import MasterError
from taxgate.intake import IntakeError
from taxgate.ledger import Ledger, LedgerError, sign_checkpoint
from taxgate.ledger.checkpoint import parse
from taxgate.release import release_held
from taxgate.policy import PolicyError, load_policies
from taxgate.service.settings import Settings
from taxgate.store import Store, StoreError, open_store
from taxgate.store.models import Batch, Submission
from taxgate.witness.client import cosign_latest

log = logging.getLogger("taxgate.service")
USER_ERRORS = (IntakeError, MasterError, PolicyError, StoreError, ValueError)  # LedgerError is a ValueError


def requeue_interrupted(store: Store) -> int:
    """On start: submissions a stopped server left running are queued again (they resume)."""
    with store.session.begin() as session:
        return session.execute(update(Submission).where(Submission.status == "running")
                               .values(status="queued", started_at=None)).rowcount


def claim(store: Store) -> Submission | None:
    """Take the oldest queued submission (one worker gets it: row lock, or SQLite's write lock)."""
    with store.session.begin() as session:
        query = select(Submission).where(Submission.status == "queued").order_by(Submission.id).limit(1)
        if store.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        job = session.execute(query).scalar_one_or_none()
        if job is None:
            return None
        job.status, job.started_at = "running", datetime.now(UTC)
        return job


def run(store: Store, settings: Settings, job: Submission) -> None:
    """Decide one submission's batch; record the outcome on the submission."""
    from taxgate.pipeline import process  # the heavy imports, only in workers

    folder = Path(job.folder)
    status, error = "done", ""
    try:
        process(folder / job.manifest_file, settings.master, folder / "out", settings.policy, store=store)
    except USER_ERRORS as exc:
        status, error = "failed", str(exc).replace(str(folder) + "/", "")
    except Exception as exc:  # a fault of ours: logged in full here, one line to the requester
        log.exception("submission %s failed", job.id)
        status, error = "failed", f"internal error ({type(exc).__name__}); the service's log has the details"
    with store.session.begin() as session:
        batch_id = session.execute(select(Batch.id).where(
            Batch.agency == job.agency, Batch.batch_ref == job.batch_ref,
            Batch.rows_sha256 == job.rows_sha256)).scalar_one_or_none()
        session.execute(update(Submission).where(Submission.id == job.id).values(
            status=status, error=error, batch_id=batch_id, finished_at=datetime.now(UTC)))


def run_queued(store: Store, settings: Settings) -> int:
    """Decide every queued submission now, one after another; returns how many."""
    done = 0
    while (job := claim(store)) is not None:
        run(store, settings, job)
        done += 1
    return done


def work(settings: Settings, wake, stop) -> None:  # pragma: no cover - runs in a worker process
    """A worker process: decide queued submissions until told to stop; sleep until woken."""
    # The server stops its workers itself (`stop`, then SIGKILL if mid-batch): a signal to the whole
    # process group must not kill one while it holds the lock of a shared Event.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    store = open_store(settings.database_url, upgrade=False)
    while not stop.is_set():
        wake.clear()
        if run_queued(store, settings) == 0:
            wake.wait(2.0)


def tick(store: Store, settings: Settings) -> dict:
    """One timer tick: release what no order holds any more (by the policy in force today), and
    sign a checkpoint if the ledger grew since the last one, so reviews and releases are covered."""
    released = release_held(store, policies=load_policies(settings.policy))
    signed = False
    ledger = Ledger(store)
    with store.session() as session:
        note = ledger.latest_checkpoint(session)
        grown = ledger.size(session) > (parse(note).size if note else 0)
    if grown:
        try:
            sign_checkpoint(store)
            signed = True
        except LedgerError as exc:  # refused: the tree does not extend what this key signed last
            log.error("checkpoint refused: %s", exc)
    witnessed = cosign_latest(store, list(settings.witnesses)) if settings.witnesses else []
    return {"released": len(released), "signed": signed, "witnessed": witnessed}


class Timer(threading.Thread):
    """Runs `tick` every `settings.release_every` seconds until stopped."""

    def __init__(self, store: Store, settings: Settings):
        super().__init__(name="taxgate-timer", daemon=True)
        self.store, self.settings = store, settings
        self.stopped = threading.Event()

    def run(self) -> None:  # pragma: no cover - exercised by the served tests
        while not self.stopped.wait(self.settings.release_every):
            try:
                done = tick(self.store, self.settings)
                if done["released"]:
                    log.info("released %d held item(s)", done["released"])
            except Exception:
                log.exception("timer tick failed")
