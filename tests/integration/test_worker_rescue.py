"""Crash states built by hand: an orphan (active under a worker that does not exist) is
rescued by one sweep; a zombie (a worker that lost its job to the sweep and reports late)
changes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pgwerk import JobStatus, Werk
from tests import worker_jobs
from tests.conftest import MakeApp
from tests.helpers import ago, make_job, query
from tests.worker_support import run_burst


def claim_as(app: Werk, worker_id: str, limit: int = 1) -> list[dict[str, Any]]:
    """Claim jobs exactly as a worker named ``worker_id`` would."""
    return app._store.db.fetch("claim", app._store.queries["job_claim_priority"],
                        {"queues": ["default"], "limit": limit, "worker": worker_id})


def complete_as(app: Werk, worker_id: str, job_id: int, attempt: int, status: str,
                result: str | None = None, error: str | None = None) -> list[dict[str, Any]]:
    """Record an outcome through the statement the worker's batch writer runs."""
    return app._store.fetch("job_complete_many", {
        "batch": json.dumps([[job_id, attempt, status, result, error, 0.0, 0.0]]),
        "worker": worker_id, "channel": app._store.channel,
    })


def test_sweep__rescues_an_orphan_whose_worker_has_no_row(app: Werk) -> None:
    job = make_job(app, "tests.worker_jobs.double", args=(3,), status="active",
                   worker_id="ghost-worker", attempts=1, started_at=ago(1), heartbeat_at=ago(0))

    assert app.sweep()["rescued"] == 1

    rescued = app.get_job(job.id)
    assert (rescued.status, rescued.lost, rescued.worker_id) == (JobStatus.Queued, 1, None)
    [run] = app.get_executions(job.id)
    assert (run.outcome, run.worker_id) == ("lost", "ghost-worker")
    assert app.sweep()["rescued"] == 0  # once is enough

    run_burst(app)
    assert app.get_job(job.id).result == 6


def test_sweep__rescues_jobs_of_a_worker_that_stopped_heartbeating(app: Werk) -> None:
    query(app, "INSERT INTO {workers} (id, hostname, pid, queues, concurrency, pool, "
               "heartbeat_interval, heartbeat_at) VALUES ('silent', 'h', 1, '{{default}}', 2, "
               "'thread', 1, now() - interval '10 seconds')")
    jobs = [make_job(app, "tests.worker_jobs.double", args=(i,), status="active",
                     worker_id="silent", attempts=1, started_at=ago(10)) for i in range(2)]

    assert app.sweep()["rescued"] == 2
    assert all(app.get_job(j.id).status is JobStatus.Queued for j in jobs)


def test_sweep__ends_an_orphan_that_was_being_aborted_as_aborted(app: Werk) -> None:
    job = make_job(app, "tests.worker_jobs.double", args=(3,), status="aborting",
                   worker_id="ghost-worker", attempts=1, started_at=ago(1))

    assert app.sweep()["rescued"] == 1
    assert app.get_job(job.id).status is JobStatus.Aborted


def test_sweep__fails_a_job_lost_more_than_max_lost_times(make_app: MakeApp) -> None:
    app = make_app(max_lost=1).connect()
    job = make_job(app, "tests.worker_jobs.double", args=(3,), status="active",
                   worker_id="ghost-worker", attempts=2, lost=1, started_at=ago(1))

    assert app.sweep()["rescued"] == 1
    failed = app.get_job(job.id)
    assert failed.status is JobStatus.Failed
    assert "lost with its worker 2 times" in (failed.error or "")


@pytest.mark.parametrize("status", ["complete", "failed", "deleted", "queued", "scheduled"])
def test_zombie__late_outcome_of_a_rescued_attempt_changes_nothing(app: Werk,
                                                                    status: str) -> None:
    job = app.enqueue(worker_jobs.double, 2, _group="g1")
    assert job is not None
    [claimed] = claim_as(app, "zombie")
    assert claimed["id"] == job.id and claimed["attempts"] == 1
    assert app.sweep()["rescued"] == 1  # "zombie" has no worker row: presumed dead
    before = app.get_job(job.id)
    assert before.status is JobStatus.Queued

    rows = complete_as(app, "zombie", job.id, 1, status, result='"zombie"', error="late")

    assert rows == []
    assert app.get_job(job.id) == before
    assert [r.outcome for r in app.get_executions(job.id)] == ["lost"]


def test_zombie__late_outcome_after_another_worker_took_the_job_over_changes_nothing(
        app: Werk) -> None:
    job = app.enqueue(worker_jobs.double, 2, _group="g1")
    assert job is not None
    claim_as(app, "zombie")
    assert app.sweep()["rescued"] == 1
    [again] = claim_as(app, "second")  # the group is free again: the rescue released it
    assert again["attempts"] == 2

    assert complete_as(app, "zombie", job.id, 1, "failed", error="zombie says failed") == []
    assert complete_as(app, "zombie", job.id, 2, "failed", error="zombie, wrong worker") == []
    assert app._store.fetch("job_release_many", {"ids": [job.id], "worker": "zombie",
                                          "channel": app._store.channel}) == []
    current = app.get_job(job.id)
    assert (current.status, current.worker_id) == (JobStatus.Active, "second")
    assert query(app, "SELECT job_id FROM {job_groups}") == [{"job_id": job.id}]

    assert len(complete_as(app, "second", job.id, 2, "complete", result="4")) == 1
    done = app.get_job(job.id)
    assert (done.status, done.result, done.error) == (JobStatus.Complete, 4, None)
    assert [r.outcome for r in app.get_executions(job.id)] == ["lost", "complete"]
    assert query(app, "SELECT * FROM {job_groups}") == []


def test_zombie__worker_batch_writer_logs_and_skips_an_outcome_it_no_longer_owns(
        app: Werk, caplog: pytest.LogCaptureFixture) -> None:
    from pgwerk import Worker
    from pgwerk._execute import Settlement
    from pgwerk.store.rows import job_from_row

    job = app.enqueue(worker_jobs.double, 2)
    assert job is not None
    zombie = Worker(app, name="zombie")
    [row] = claim_as(app, zombie.id)
    assert app.sweep()["rescued"] == 1

    claimed = job_from_row(row, app.serializer)
    zombie._completions._write([(claimed, Settlement("complete", "99", None))])

    assert app.get_job(job.id).status is JobStatus.Queued
    assert app.get_job(job.id).result is None
    assert "the job is no longer this worker's" in caplog.text
