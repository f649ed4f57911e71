"""A live worker keeps its jobs: its heartbeat runs on its own thread and connection, so
maintenance waiting on a lock cannot make it late; and when the database says a job
running here is no longer this worker's, the local copy stops and its outcome is dropped."""

from __future__ import annotations

import time

import psycopg
import pytest
from psycopg import sql

from pgwerk import JobStatus, Werk
from tests import worker_jobs
from tests.helpers import ago, eventually, make_job, query, set_columns, table
from tests.worker_support import create_events_table, events, running_worker


def _lock_a_purgeable_row(app: Werk) -> psycopg.Connection:
    """A transaction holding a row lock on a job the sweep wants to prune."""
    old = make_job(app, status="complete", completed_at=ago(120), purge_at=ago(60))
    conn = psycopg.connect(app.dsn)
    conn.execute(sql.SQL("SELECT 1 FROM {} WHERE id = %s FOR UPDATE").format(table(app)),
                 (old.id,))
    return conn


def test_heartbeat__stays_on_time_while_the_sweep_waits_on_a_lock(app: Werk) -> None:
    create_events_table(app)
    job = app.enqueue(worker_jobs.busy_loop, seconds=30)
    assert job is not None
    blocker = _lock_a_purgeable_row(app)
    try:
        with running_worker(app, concurrency=1, heartbeat_interval=0.3, sweep_interval=0.2,
                            shutdown_timeout=0.5) as worker:
            eventually(lambda: events(app, "busy-start", job.id), timeout=15)
            ages = []
            end = time.monotonic() + 4.0
            while time.monotonic() < end:
                [me] = [w for w in app.list_workers() if w.id == worker.id]
                ages.append(me.heartbeat_age)
                time.sleep(0.1)
            assert max(ages) < 1.6, ages  # the rescue threshold is 2 x 0.3 + 1 s
            assert app.get_job(job.id).lost == 0
            worker.stop(now=True)
    finally:
        blocker.close()


def test_sweep__gives_up_on_a_lock_instead_of_waiting(app: Werk) -> None:
    blocker = _lock_a_purgeable_row(app)
    try:
        started = time.monotonic()
        assert app.sweep() == {}
        assert time.monotonic() - started < 10
    finally:
        blocker.close()


@pytest.mark.parametrize("change", ["given to another worker", "requeued by hand"])
def test_worker__stops_a_job_the_database_gave_away_and_drops_its_outcome(
        app: Werk, change: str) -> None:
    create_events_table(app)
    job = app.enqueue(worker_jobs.block_first_attempt, seconds=30)
    assert job is not None
    with running_worker(app, concurrency=1, heartbeat_interval=0.3):
        eventually(lambda: events(app, "attempt", job.id), timeout=15)
        if change == "given to another worker":
            query(app, "INSERT INTO {workers} (id, hostname, pid, queues, concurrency, pool, "
                       "heartbeat_interval) VALUES ('other.1.x', 'h', 1, ARRAY['default'], 1, "
                       "'thread', 600)")
            set_columns(app, job.id, worker_id="other.1.x")
        else:
            set_columns(app, job.id, status="queued", worker_id=None)
        later = app.enqueue(worker_jobs.double, 5)
        assert later is not None
        assert app.wait_for(later, timeout=10).result == 10  # the slot came back

        current = app.get_job(job.id)
        if change == "given to another worker":
            assert (current.status, current.worker_id) == (JobStatus.Active, "other.1.x")
            assert current.result is None
        else:  # run again here, as any worker would: only the second outcome counts
            current = app.wait_for(job, timeout=10)
            assert (current.status, current.result) == (JobStatus.Complete, "done on attempt 2")
    assert [e["data"]["attempt"] for e in events(app, "attempt", job.id)] == (
        [1] if change == "given to another worker" else [1, 2])
