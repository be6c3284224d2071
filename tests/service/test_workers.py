"""Workers supervised, queues fair (issue 13): a worker that dies is replaced and its batch taken
again from its mark; a batch that kills its workers is failed, never requeued; one agency's flood
does not starve another's batch; several servers share one queue."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from taxgate.service import Settings, create_app, jobs
from taxgate.store.models import DecisionRecord, Submission

from dying import died, dying_env
from support import Service, findings, upload_files

pytestmark = pytest.mark.slow  # supervised worker processes


def status(store, submission_id: int) -> Submission:
    with store.session() as session:
        return session.get(Submission, submission_id)


def submit(service: Service, manifest, role: str = "requester", ref: str | None = None) -> int:
    raw = json.loads(manifest.read_text())
    agency = "OTHER-AGENCY" if role == "other" else raw["agency"]
    body = json.dumps({**raw, "agency": agency, "batch_ref": ref or raw["batch_ref"]}).encode()
    answer = service.client.post(
        "/api/batches",
        headers=service.auth(role),
        files=upload_files(manifest, manifest_bytes=body),
    )
    assert answer.status_code == 202, answer.text
    return answer.json()["id"]


def test_claims_are_fair_across_agencies(store, world, tmp_path, small_batch):
    """Agency A queues five batches, then agency B one: B's is taken second, not sixth."""
    service = Service(store, world, tmp_path, uploads_per_minute=100)
    flood = [submit(service, small_batch, ref=f"flood-{i}") for i in range(5)]
    theirs = submit(service, small_batch, role="other", ref="theirs")
    order = []
    while (job := jobs.claim(store, "w")) is not None:
        order.append(job.id)
        with store.session.begin() as session:  # finished, as a worker would mark it
            session.get(Submission, job.id).status = "done"
    assert order[:2] == [flood[0], theirs] and sorted(order) == sorted([*flood, theirs])


def test_a_batch_that_kills_its_workers_is_failed_and_never_requeued(service, small_batch):
    first = submit(service, small_batch, ref="poison")
    second = submit(service, small_batch, ref="after-the-poison")
    for attempt in range(1, 4):  # taken, and its worker dies before it is done (lease lapses)
        job = jobs.claim(service.store, f"worker-{attempt}", lease_seconds=0.0)
        assert job.id == first and job.attempts == attempt
    job = jobs.claim(service.store, "worker-4")
    assert job.id == second  # the poison is failed on the way, and the next batch is taken
    failed = status(service.store, first)
    assert (
        failed.status == "failed"
        and "stopped its worker 3 times" in failed.error
        and "\n" not in failed.error
    )
    assert jobs.claim(service.store, "worker-5") is None  # never again


def test_a_batch_the_server_stopped_does_not_count_against_it(service, small_batch):
    first = submit(service, small_batch)
    jobs.claim(service.store, "worker-a")
    assert jobs.release_leases(service.store, "worker-a", counted=False) == 1
    again = status(service.store, first)
    assert again.status == "queued" and again.attempts == 0


@pytest.fixture()
def supervised(store, world, tmp_path, monkeypatch):
    """An app with one real worker process, its lifespan running (the supervisor and the worker)."""
    yield from _supervised(store, world, tmp_path, monkeypatch)


@pytest.fixture()
def supervised_dying(store, world, tmp_path, monkeypatch):
    """The same, its first worker killed (SIGKILL) inside the transaction of the batch's 50th
    recorded chunk (a row each): on cue (`dying`), never on a timer; the worker that replaces it
    goes on."""
    for name, value in dying_env(tmp_path, chunk=50).items():
        monkeypatch.setenv(name, value)  # inherited by the worker processes the app starts
    yield from _supervised(store, world, tmp_path, monkeypatch)


def _supervised(store, world, tmp_path, monkeypatch):

    monkeypatch.setenv(
        "TAXGATE_RECORD_ROWS", "1"
    )  # one row a chunk: a batch takes long enough to be caught mid-way
    users = Service(store, world, tmp_path / "users")
    settings = Settings(
        master=world["master"],
        data_dir=tmp_path / "data",
        workers=1,
        release_every=0,
        lease_seconds=2.0,
    )
    app = create_app(settings, store)
    with TestClient(app) as client:
        users.client, users.app, users.settings = client, app, settings
        yield users


def wait_for(condition, seconds: float = 120, what: str = ""):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def running_worker(store, submission_id: int) -> int | None:
    """The pid of the worker holding the submission, once it is running."""
    job = status(store, submission_id)
    return (
        int(job.lease_owner.rsplit("/", 1)[1])
        if job.status == "running" and job.lease_owner
        else None
    )


@pytest.fixture()
def long_batch(world, tmp_path) -> Path:
    """Long enough, recorded a row a transaction, that the test cannot miss it part-way on a loaded machine."""
    from taxgate.synth import Mix, generate_batch

    return generate_batch(world["master"], tmp_path / "long", 1500, seed=23, mix=Mix.clean())


def test_a_worker_killed_mid_batch_is_replaced_and_the_batch_finishes_once(
    supervised_dying, long_batch, small_batch
):
    service = supervised_dying
    sent = submit(service, long_batch)
    supervisor = service.app.state.service.supervisor
    wait_for(lambda: supervisor.replaced == 1, 30, "the worker to be replaced")
    done = wait_for(
        lambda: (s := status(service.store, sent)).status in ("done", "failed") and s,
        what="the batch",
    )
    assert (
        died(service.settings.data_dir.parent) and done.status == "done" and done.attempts == 2
    ), done.error
    with service.store.session() as session:
        counted = session.execute(
            select(
                func.count(DecisionRecord.id), func.count(func.distinct(DecisionRecord.row_number))
            )
        ).one()
    assert counted[0] == counted[1] > 0  # every row once
    assert findings(service.store) == []
    # and the new worker takes the next batch
    later = submit(service, small_batch, ref="later")
    assert wait_for(lambda: status(service.store, later).status == "done", what="the next batch")


def test_a_poison_batch_is_failed_after_killing_three_workers_and_others_go_on(
    supervised, small_batch
):
    service = supervised
    poison = submit(service, small_batch, ref="poison")
    for attempt in range(1, 4):
        pid = wait_for(
            lambda attempt=attempt: (
                status(service.store, poison).attempts == attempt
                and running_worker(service.store, poison)
            ),
            what=f"attempt {attempt}",
        )
        os.kill(pid, signal.SIGKILL)
    failed = wait_for(
        lambda: (s := status(service.store, poison)).status == "failed" and s,
        60,
        "the poison to fail",
    )
    assert "stopped its worker 3 times" in failed.error
    after = submit(service, small_batch, ref="after")
    assert wait_for(lambda: status(service.store, after).status == "done", what="the next batch")
    assert status(service.store, poison).status == "failed"
