"""SIGTERM / SIGINT on a worker process: it stops claiming, lets running jobs finish within
``shutdown_timeout`` and exits 0; a job that takes longer is interrupted and put back for
another worker; a second signal stops it at once; ``burst=True`` exits when the queues are
empty."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from pgwerk import JobStatus, Werk
from tests import worker_jobs
from tests.helpers import eventually
from tests.worker_support import (
    WorkerProcess,
    create_events_table,
    events,
    run_burst,
    wait_all_terminal,
    worker_processes,
)


@pytest.fixture(autouse=True)
def _events(app: Werk) -> None:
    create_events_table(app)


def wait_stopping(app: Werk, worker_id: str) -> None:
    """The worker took the signal: it marked itself stopping (no more claims after this)."""
    eventually(lambda: any(w.id == worker_id and w.stopping for w in app.list_workers()),
               timeout=10, message=f"worker {worker_id} stopping")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm__running_job_finishes_and_the_worker_exits_0(
        app: Werk, pg_dsn: str, tmp_path: Path, signum: int) -> None:
    worker = WorkerProcess(pg_dsn, app.config.schema, tmp_path, concurrency=2,
                           shutdown_timeout=10)
    with worker_processes(worker):
        worker_id = worker.wait_registered(app)
        job = app.enqueue(worker_jobs.record, label="running", value="finished", seconds=1.0)
        assert job is not None
        eventually(lambda: events(app, "running", job.id), timeout=20)
        signalled = time.monotonic()
        worker.signal(signum)
        wait_stopping(app, worker_id)
        late = app.enqueue(worker_jobs.record, label="late")  # after the signal: not taken
        assert late is not None
        assert worker.wait(20) == 0, worker.output()
        took = time.monotonic() - signalled

    done = app.get_job(job.id)
    assert (done.status, done.result, done.attempts) == (JobStatus.Complete, "finished", 1)
    assert took < 10  # it did not wait out shutdown_timeout
    assert app.get_job(late.id).status is JobStatus.Queued
    assert events(app, "late") == []
    assert app.list_workers() == []  # unregistered on the way out


@pytest.mark.parametrize("pool", ["thread", "fork"])
def test_sigterm__job_longer_than_shutdown_timeout_is_interrupted_and_put_back(
        app: Werk, pg_dsn: str, tmp_path: Path, pool: str) -> None:
    worker = WorkerProcess(pg_dsn, app.config.schema, tmp_path, pool=pool, concurrency=2,
                           shutdown_timeout=0.5)
    with worker_processes(worker):
        worker_id = worker.wait_registered(app)
        job = app.enqueue(worker_jobs.long_unless_put_back, seconds=60)
        assert job is not None
        eventually(lambda: events(app, "attempt", job.id), timeout=20)
        signalled = time.monotonic()
        worker.signal(signal.SIGTERM)
        assert worker.wait(20) == 0, worker.output()
        took = time.monotonic() - signalled

    assert took < 8
    back = app.get_job(job.id)
    assert back.status is JobStatus.Queued
    assert (back.attempts, back.lost, back.released, back.worker_id) == (1, 0, 1, None)
    [run] = app.get_executions(job.id)
    assert (run.outcome, run.worker_id) == ("interrupted", worker_id)

    run_burst(app)  # another worker

    done = app.get_job(job.id)
    assert (done.status, done.result) == (JobStatus.Complete, "second run (lost=0, released=1)")
    assert [r.outcome for r in app.get_executions(job.id)] == ["interrupted", "complete"]


def test_sigterm__a_job_stuck_in_c_is_put_back_and_does_not_keep_the_worker_alive(
        app: Werk, pg_dsn: str, tmp_path: Path) -> None:
    worker = WorkerProcess(pg_dsn, app.config.schema, tmp_path, concurrency=1,
                           shutdown_timeout=0.5, timeout_grace=0.5)
    with worker_processes(worker):
        worker.wait_registered(app)
        job = app.enqueue(worker_jobs.sleep_in_c, seconds=3600)
        assert job is not None
        eventually(lambda: events(app, "sleep-start", job.id), timeout=20)
        worker.signal(signal.SIGTERM)
        assert worker.wait(20) == 0, worker.output()

    back = app.get_job(job.id)
    assert back.status is JobStatus.Queued and (back.lost, back.released) == (0, 1)


def test_sigterm__a_second_signal_stops_at_once(app: Werk, pg_dsn: str, tmp_path: Path) -> None:
    worker = WorkerProcess(pg_dsn, app.config.schema, tmp_path, concurrency=2,
                           shutdown_timeout=120)
    with worker_processes(worker):
        worker_id = worker.wait_registered(app)
        job = app.enqueue(worker_jobs.long_unless_put_back, seconds=60)
        assert job is not None
        eventually(lambda: events(app, "attempt", job.id), timeout=20)
        worker.signal(signal.SIGTERM)
        wait_stopping(app, worker_id)
        assert app.get_job(job.id).status is JobStatus.Active  # still given its time
        signalled = time.monotonic()
        worker.signal(signal.SIGTERM)
        assert worker.wait(20) == 0, worker.output()
        took = time.monotonic() - signalled

    assert took < 5
    back = app.get_job(job.id)
    assert back.status is JobStatus.Queued and (back.lost, back.released) == (0, 1)
    assert "again: stopping now" in worker.output()


def test_burst__worker_process_exits_0_once_the_queues_are_empty(
        app: Werk, pg_dsn: str, tmp_path: Path) -> None:
    jobs = [app.enqueue(worker_jobs.record, label="job", value=i) for i in range(20)]
    worker = WorkerProcess(pg_dsn, app.config.schema, tmp_path, concurrency=4, burst=True)
    with worker_processes(worker):
        assert worker.wait(30) == 0, worker.output()

    done = wait_all_terminal(app, [j for j in jobs if j], timeout=1)
    assert all(j.status is JobStatus.Complete for j in done)
    assert len(events(app, "job")) == 20
