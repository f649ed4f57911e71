"""``_heartbeat``: a running job that heartbeats is never taken for lost, however long it
runs; one whose heartbeat lapsed is rescued by a single sweep."""

from __future__ import annotations

import time
from typing import Any

from pgwerk import JobStatus, Werk
from tests import worker_jobs
from tests.conftest import MakeApp
from tests.helpers import ago, make_job, query
from tests.worker_support import run_burst, running_worker, seconds_between, wait_status


def add_worker_row(app: Werk, worker_id: str, heartbeat_age: float = 0.0) -> None:
    """A registered worker as another process would have left it."""
    query(app, "INSERT INTO {workers} (id, hostname, pid, queues, concurrency, pool, "
               "heartbeat_interval, heartbeat_at) VALUES (%s, 'elsewhere', 1, '{{default}}', 1, "
               "'thread', 5, now() - make_interval(secs => %s))", [worker_id, heartbeat_age])


def sweep_while_active(app: Werk, job_id: int) -> tuple[list[dict[str, int]], set[Any]]:
    """Run the sweep again and again while the job is active; return the sweeps' counts and
    the heartbeat times seen."""
    beats, sweeps = set(), []
    while (current := app.get_job(job_id)).status is JobStatus.Active:
        beats.add(current.heartbeat_at)
        sweeps.append(app.sweep())
        time.sleep(0.05)
    return sweeps, beats


def test_worker__heartbeating_job_that_runs_past_the_staleness_threshold_is_not_rescued(
        app: Werk, make_app: MakeApp) -> None:
    # The sweeping app has a tiny max_active_secs; the worker has an app of its own.
    sweeper = make_app(schema=app.config.schema, max_active_secs=1)
    with running_worker(app, concurrency=1, sweep_interval=60):
        job = app.enqueue(worker_jobs.short_sleep, 3.0, _heartbeat=0.4)
        assert job is not None
        wait_status(app, job, JobStatus.Active)
        sweeps, beats = sweep_while_active(sweeper, job.id)
        done = wait_status(app, job, JobStatus.Complete)

    assert sweeps and all(s.get("rescued") == 0 for s in sweeps), sweeps
    # It ran far longer than three heartbeat intervals and than max_active_secs ...
    assert seconds_between(done.started_at, done.completed_at) >= 3.0
    # ... and its heartbeat was renewed all along.
    assert len(beats) >= 4
    assert done.lost == 0 and done.attempts == 1
    assert [r.outcome for r in app.get_executions(job.id)] == ["complete"]


def test_worker__renews_a_job_heartbeat_shorter_than_its_own_interval_from_the_start(
        app: Werk, make_app: MakeApp) -> None:
    # The worker's own heartbeat is slow (5s); the job asks for one every 0.3s, so it is
    # stale after 0.9s unless the worker keeps the job's pace from its first renewal.
    sweeper = make_app(schema=app.config.schema)
    with running_worker(app, concurrency=1, heartbeat_interval=5.0, sweep_interval=60):
        job = app.enqueue(worker_jobs.short_sleep, 2.0, _heartbeat=0.3)
        assert job is not None
        wait_status(app, job, JobStatus.Active)
        sweeps, beats = sweep_while_active(sweeper, job.id)
        done = wait_status(app, job, JobStatus.Complete)

    assert sweeps and all(s.get("rescued") == 0 for s in sweeps), sweeps
    assert len(beats) >= 4
    assert (done.attempts, done.lost) == (1, 0)


def test_sweep__rescues_an_active_job_whose_own_heartbeat_lapsed(app: Werk) -> None:
    add_worker_row(app, "alive-elsewhere")  # its worker looks alive: only the job is stale
    job = make_job(app, "tests.worker_jobs.double", args=(4,), options={"_heartbeat": 1},
                   status="active", worker_id="alive-elsewhere", attempts=1,
                   started_at=ago(30), heartbeat_at=ago(30))

    counts = app.sweep()

    assert counts["rescued"] == 1
    rescued = app.get_job(job.id)
    assert rescued.status is JobStatus.Queued
    assert rescued.lost == 1 and rescued.worker_id is None
    [run] = app.get_executions(job.id)
    assert (run.attempt, run.outcome, run.worker_id) == (1, "lost", "alive-elsewhere")

    run_burst(app)
    done = app.get_job(job.id)
    assert (done.status, done.result, done.attempts) == (JobStatus.Complete, 8, 2)
    assert [r.outcome for r in app.get_executions(job.id)] == ["lost", "complete"]


def test_sweep__leaves_an_active_job_with_a_fresh_heartbeat_alone(app: Werk) -> None:
    add_worker_row(app, "alive-elsewhere")
    job = make_job(app, "tests.worker_jobs.double", args=(4,), options={"_heartbeat": 1},
                   status="active", worker_id="alive-elsewhere", attempts=1,
                   started_at=ago(3600), heartbeat_at=ago(0.5))

    assert app.sweep()["rescued"] == 0
    assert app.get_job(job.id).status is JobStatus.Active


def test_sweep__rescues_a_job_without_heartbeat_that_ran_far_past_max_active_secs(
        make_app: MakeApp) -> None:
    app = make_app(max_active_secs=1).connect()
    add_worker_row(app, "alive-elsewhere")
    job = make_job(app, "tests.worker_jobs.double", args=(1,), status="active",
                   worker_id="alive-elsewhere", attempts=1, started_at=ago(600),
                   heartbeat_at=ago(600))

    assert app.sweep()["rescued"] == 1
    assert app.get_job(job.id).status is JobStatus.Queued
