"""A worker survives losing its database connections: every one of them terminated by the
server mid-run, more than once. It reconnects and finishes every job; nothing is lost or
run twice."""

from __future__ import annotations

import uuid

import psycopg

from pgwerk import JobStatus, Werk
from tests import worker_jobs
from tests.conftest import MakeApp
from tests.helpers import eventually
from tests.worker_support import (
    WorkerThread,
    create_events_table,
    events,
    seconds_between,
    wait_all_terminal,
)


def terminate_backends(dsn: str, application_name: str) -> int:
    """Kill every server process whose client set this application_name."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()", [application_name]
        ).fetchall()
    return len(rows)


def test_worker__survives_termination_of_all_its_connections_and_finishes_every_job(
        app: Werk, make_app: MakeApp) -> None:
    create_events_table(app)
    name = f"pgwerk-test-{uuid.uuid4().hex[:8]}"
    worker_app = make_app(schema=app.config.schema, application_name=name)
    # A long poll interval: after the kills, only a re-made LISTEN can wake it in time.
    runner = WorkerThread(worker_app, concurrency=4, poll_interval=5.0, heartbeat_interval=0.3,
                          sweep_interval=0.3).start()
    try:
        jobs = [app.enqueue(worker_jobs.record, label="job", value=i, seconds=0.05)
                for i in range(60)]
        killed = 0
        for after in (10, 30):
            # Kill mid-run: some jobs done, some running, the rest still to come.
            eventually(lambda n=after: sum(  # type: ignore[misc]
                app.get_job(j.id).status is JobStatus.Complete for j in jobs if j) >= n,
                timeout=20)
            killed += terminate_backends(app.dsn, name)
        assert killed >= 4  # at least the listener and a pooled connection, each time
        done = wait_all_terminal(app, [j for j in jobs if j], timeout=60)
        # The same worker did it all, without a restart ...
        assert runner.thread.is_alive() and runner.error is None
        # ... and it listens again: a new job starts well within its poll interval.
        late = app.enqueue(worker_jobs.record, label="late")
        assert late is not None
        [late_done] = wait_all_terminal(app, [late], timeout=10)
        assert seconds_between(late_done.enqueued_at, late_done.started_at) < 2.0
    finally:
        runner.stop()

    assert all(j.status is JobStatus.Complete for j in done)
    assert sorted(j.result for j in done) == list(range(60))
    assert len(events(app, "job")) == 60  # none ran twice
    assert all(j.attempts == 1 and j.lost == 0 for j in done)
