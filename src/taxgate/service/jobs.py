"""Work done in the background: batches decided by worker processes, held items released and
checkpoints signed by a timer.

A submission is `queued` when it arrives. A worker claims one (`running`) under a lease that it
renews while it works, runs the pipeline on it exactly as `taxgate process` does, and marks it
`done` or `failed` with a one-line reason. Several servers on one store share the queue: a claim
takes a row lock (PostgreSQL, SKIP LOCKED) or SQLite's write lock, so no submission is taken
twice. A worker that dies stops renewing; once its lease lapses any worker takes the submission
again and the pipeline resumes it from its recorded mark, so nothing is decided or ledgered
twice. A submission taken `max_attempts` times without finishing (it kills its workers) is failed
with a one-line reason and never queued again. Claims are fair across agencies: the agency served
least recently goes first, so one requester's flood does not starve another's batch.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import and_, func, or_, select, update

from taxgate.identify import MasterError
from taxgate.intake import IntakeError
from taxgate.ledger import Ledger, LedgerError, sign_checkpoint
from taxgate.ledger.checkpoint import parse_note
from taxgate.policy import PolicyError, load_policies
from taxgate.release import release_held
from taxgate.service.settings import Settings
from taxgate.store import Store, StoreError, open_store
from taxgate.store.models import Batch, Submission
from taxgate.witness.client import cosign_latest

log = logging.getLogger("taxgate.service")
USER_ERRORS = (
    IntakeError,
    MasterError,
    PolicyError,
    StoreError,
    ValueError,
)  # LedgerError is a ValueError


def worker_name(pid: int | None = None) -> str:
    """Who holds a lease: the host and the worker's process id."""
    return f"{socket.gethostname()[:40]}/{pid or os.getpid()}"


def claim(
    store: Store, owner: str | None = None, lease_seconds: float = 30.0, max_attempts: int = 3
) -> Submission | None:
    """Take the next submission: queued, or running under a lease that lapsed (its worker died).
    The agency whose last submission started longest ago goes first, then the oldest. A
    submission already taken `max_attempts` times is failed instead, and the next one is taken."""
    owner = owner or worker_name()
    while True:
        now = datetime.now(UTC)
        with store.session.begin() as session:
            other = Submission.__table__.alias("other")
            last_started = (
                select(func.max(other.c.started_at))
                .where(other.c.agency == Submission.agency)
                .scalar_subquery()
            )
            query = (
                select(Submission)
                .where(
                    or_(
                        Submission.status == "queued",
                        and_(
                            Submission.status == "running",
                            or_(Submission.lease_until.is_(None), Submission.lease_until < now),
                        ),
                    )
                )
                .order_by(last_started.asc().nulls_first(), Submission.id)
                .limit(1)
            )
            if store.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True, of=Submission)
            job = session.execute(query).scalar_one_or_none()
            if job is None:
                return None
            if job.attempts >= max_attempts:
                job.status, job.finished_at, job.lease_owner, job.lease_until = (
                    "failed",
                    now,
                    "",
                    None,
                )
                job.error = (
                    f"the batch stopped its worker {job.attempts} times before it could be decided; "
                    "it is not tried again (the service's log has the details)"
                )
                log.error("submission %s failed after %d attempts", job.id, job.attempts)
                continue
            job.status, job.started_at, job.attempts = "running", now, job.attempts + 1
            job.lease_owner, job.lease_until = owner, now + timedelta(seconds=lease_seconds)
            return job


def renew(store: Store, job_id: int, owner: str, lease_seconds: float) -> bool:
    """Extend this worker's lease on a running submission; False if it is no longer this worker's."""
    with store.session.begin() as session:
        return (
            session.execute(
                update(Submission)
                .where(
                    Submission.id == job_id,
                    Submission.lease_owner == owner,
                    Submission.status == "running",
                )
                .values(lease_until=datetime.now(UTC) + timedelta(seconds=lease_seconds))
            ).rowcount
            == 1
        )


def release_leases(store: Store, owner: str, counted: bool) -> int:
    """A worker is gone: its running submission may be taken again at once. `counted`: it died
    (the attempt counts toward the limit); otherwise the server stopped it, and it does not."""
    values = {"lease_until": datetime.now(UTC) - timedelta(seconds=1)}
    if not counted:
        values = {
            "status": "queued",
            "lease_owner": "",
            "lease_until": None,
            "attempts": Submission.attempts - 1,
        }
    with store.session.begin() as session:
        return session.execute(
            update(Submission)
            .where(Submission.status == "running", Submission.lease_owner == owner)
            .values(**values)
        ).rowcount


class _Lease(threading.Thread):
    """Renews a lease every third of its length until stopped."""

    def __init__(self, store: Store, job_id: int, owner: str, seconds: float):
        super().__init__(name=f"taxgate-lease-{job_id}", daemon=True)
        self.store, self.job_id, self.owner, self.seconds = store, job_id, owner, seconds
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.seconds / 3):
            try:
                if not renew(self.store, self.job_id, self.owner, self.seconds):
                    if not self.stopped.is_set():  # not just finished: another worker took it
                        log.error("lost the lease on submission %s", self.job_id)
                    return
            except Exception:  # the store is away for a moment: try again next time
                log.exception("could not renew the lease on submission %s", self.job_id)


def run(store: Store, settings: Settings, job: Submission, owner: str | None = None) -> None:
    """Decide one submission's batch, renewing its lease meanwhile; record the outcome on it."""
    from taxgate.pipeline import process  # the heavy imports, only in workers

    folder = Path(job.folder)
    status, error = "done", ""
    lease = _Lease(store, job.id, owner or job.lease_owner, settings.lease_seconds)
    lease.start()
    try:
        process(
            folder / job.manifest_file,
            settings.master,
            folder / "out",
            settings.policy,
            store=store,
        )
    except USER_ERRORS as exc:
        status, error = "failed", str(exc).replace(str(folder) + "/", "")
    except Exception as exc:  # a fault of ours: logged in full here, one line to the requester
        log.exception("submission %s failed", job.id)
        status, error = (
            "failed",
            f"internal error ({type(exc).__name__}); the service's log has the details",
        )
    finally:
        lease.stopped.set()
    with store.session.begin() as session:
        batch_id = session.execute(
            select(Batch.id).where(
                Batch.agency == job.agency,
                Batch.batch_ref == job.batch_ref,
                Batch.rows_sha256 == job.rows_sha256,
            )
        ).scalar_one_or_none()
        # Only while the lease is still this worker's: one that lost it (it stalled past its lease and
        # another took the batch) must not overwrite what the new holder records.
        done = session.execute(
            update(Submission)
            .where(Submission.id == job.id, Submission.lease_owner == lease.owner)
            .values(
                status=status,
                error=error,
                batch_id=batch_id,
                finished_at=datetime.now(UTC),
                lease_until=None,
            )
        ).rowcount
    if not done:
        log.error(
            "submission %s was taken by another worker meanwhile; its outcome is theirs to record",
            job.id,
        )


def run_queued(store: Store, settings: Settings, owner: str | None = None) -> int:
    """Decide every submission there is to take now, one after another; returns how many."""
    owner = owner or worker_name()
    done = 0
    while (job := claim(store, owner, settings.lease_seconds, settings.max_attempts)) is not None:
        run(store, settings, job, owner)
        done += 1
    return done


def run_worker(
    settings: Settings, wake, stop
) -> None:  # pragma: no cover - runs in a worker process
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
            wake.wait(min(2.0, settings.lease_seconds / 3))


class Supervisor(threading.Thread):
    """Keeps `settings.workers` worker processes alive: one that dies is replaced, and the
    submission it held may be taken again at once (the death counts as an attempt)."""

    def __init__(self, store: Store, settings: Settings, wake, stop, context):
        super().__init__(name="taxgate-supervisor", daemon=True)
        self.store, self.settings, self.wake, self.stop, self.context = (
            store,
            settings,
            wake,
            stop,
            context,
        )
        self.workers: list = []
        self.replaced = 0

    def start_worker(self, n: int):
        worker = self.context.Process(
            target=run_worker,
            args=(self.settings, self.wake, self.stop),
            name=f"taxgate-worker-{n}",
            daemon=True,
        )
        worker.start()
        return worker

    def start(self) -> None:
        self.workers = [self.start_worker(n) for n in range(self.settings.workers)]
        super().start()

    def run(self) -> None:  # pragma: no cover - exercised by the served tests
        while not self.stop.wait(0.5):
            for n, worker in enumerate(self.workers):
                if worker.is_alive() or self.stop.is_set():
                    continue
                log.error(
                    "worker %s (pid %s) died with exit code %s; starting another",
                    n,
                    worker.pid,
                    worker.exitcode,
                )
                self._release(worker, counted=True)
                self.workers[n] = self.start_worker(n)
                self.replaced += 1
                self.wake.set()

    def _release(self, worker, counted: bool) -> None:
        try:
            release_leases(self.store, worker_name(worker.pid), counted)
        except Exception:  # the store is away: the lease lapses by itself
            log.exception("could not release the leases of worker %s", worker.pid)

    def shutdown(self) -> None:
        """Stop every worker: told first, killed if mid-batch; what a killed one held is queued
        again without counting against the batch (it was the server that stopped it)."""
        self.stop.set()
        self.wake.set()
        if self.is_alive():
            self.join(timeout=5)
        for worker in self.workers:
            worker.join(timeout=10)
            if worker.is_alive():  # mid-batch: stopped; the batch resumes from its mark next start
                worker.kill()
                worker.join(timeout=5)
                self._release(worker, counted=False)


def run_timer_round(store: Store, settings: Settings) -> dict:
    """One timer tick: release what no order holds any more (by the policy in force today), and
    sign a checkpoint if the ledger grew since the last one, so reviews and releases are covered."""
    released = release_held(store, policies=load_policies(settings.policy))
    signed = False
    ledger = Ledger(store)
    with store.session() as session:
        note = ledger.latest_checkpoint(session)
        grown = ledger.size(session) > (parse_note(note).size if note else 0)
    if grown:
        try:
            sign_checkpoint(store)
            signed = True
        except LedgerError as exc:  # refused: the tree does not extend what this key signed last
            log.error("checkpoint refused: %s", exc)
    witnessed = cosign_latest(store, list(settings.witnesses)) if settings.witnesses else []
    return {"released": len(released), "signed": signed, "witnessed": witnessed}


class Timer(threading.Thread):
    """Runs `run_timer_round` every `settings.release_every` seconds until stopped."""

    def __init__(self, store: Store, settings: Settings):
        super().__init__(name="taxgate-timer", daemon=True)
        self.store, self.settings = store, settings
        self.stopped = threading.Event()

    def run(self) -> None:  # pragma: no cover - exercised by the served tests
        while not self.stopped.wait(self.settings.release_every):
            try:
                done = run_timer_round(self.store, self.settings)
                if done["released"]:
                    log.info("released %d held item(s)", done["released"])
            except Exception:
                log.exception("timer tick failed")
