"""A worker that claims ahead of its free slots (``prefetch``) still runs every job exactly
once, and puts back what it held but never started when it stops."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from pgwerk import EnqueueParams, JobStatus, Werk, Worker
from tests import worker_jobs
from tests.helpers import eventually, query
from tests.worker_support import create_events_table, events, run_burst, running_worker


@pytest.mark.parametrize("prefetch", ["auto", 16])
def test_worker__prefetch_runs_every_job_once(app: Werk, prefetch: int | str) -> None:
    app.enqueue_many([EnqueueParams(func="tests.jobs.noop") for _ in range(600)])
    Worker(app, concurrency=4, burst=True, poll_interval=0.1, prefetch=prefetch).run()
    rows = query(app, "SELECT status, attempts, count(*) AS n FROM {jobs} "
                      "GROUP BY status, attempts")
    assert rows == [{"status": JobStatus.Complete.value, "attempts": 1, "n": 600}]


def test_worker__held_jobs_go_back_when_the_worker_stops(app: Werk) -> None:
    app.enqueue_many([EnqueueParams(func="tests.jobs.sleep_for", args=(0.3,))
                      for _ in range(20)])
    worker = Worker(app, concurrency=1, prefetch=10, poll_interval=0.1, shutdown_timeout=5,
                    hold_limit=60)
    thread = threading.Thread(target=worker.run)
    thread.start()
    eventually(lambda: query(app, "SELECT count(*) AS n FROM {jobs} WHERE status = 'active'"
                             )[0]["n"] >= 5, timeout=10)
    worker.stop()
    thread.join(timeout=20)
    assert not thread.is_alive()
    counts = {r["status"]: r["n"] for r in query(
        app, "SELECT status, count(*) AS n FROM {jobs} GROUP BY status")}
    assert "active" not in counts
    assert counts.get("queued", 0) >= 5  # the held ones, back in the queue
    back = query(app, "SELECT attempts, started_at FROM {jobs} WHERE status = 'queued'")
    assert {(r["attempts"], r["started_at"]) for r in back} <= {(0, None), (1, None)}
    # never started: no attempt spent, nothing in the history
    assert query(app, "SELECT count(*) AS n FROM {executions}")[0]["n"] <= 1


def test_worker__started_at_is_when_the_handler_started(app: Werk) -> None:
    create_events_table(app)
    first = app.enqueue(worker_jobs.record, label="start", seconds=0.5)
    second = app.enqueue(worker_jobs.record, label="start", seconds=0.0)
    assert first and second
    run_burst(app, concurrency=1, prefetch=4, hold_limit=60)

    done = {job.id: app.get_job(job.id) for job in (first, second)}
    ran = {e["job_id"]: e["at"] for e in events(app, "start")}
    for job_id, job in done.items():
        assert job.started_at is not None and job.completed_at is not None
        assert abs((job.started_at - ran[job_id]).total_seconds()) < 0.25
    assert done[second.id].started_at >= done[first.id].started_at + timedelta(seconds=0.45)


def test_worker__a_held_job_goes_to_an_idle_worker_when_every_slot_is_busy(app: Werk) -> None:
    create_events_table(app)
    long = app.enqueue(worker_jobs.busy_loop, seconds=30)
    assert long is not None
    with running_worker(app, concurrency=1, prefetch=4, hold_limit=0.1, name="busy"):
        eventually(lambda: events(app, "busy-start", long.id), timeout=10)
        short = app.enqueue(worker_jobs.double, 4)
        assert short is not None
        with running_worker(app, concurrency=1, prefetch=0, name="idle"):
            done = app.wait_for(short, timeout=10)
        assert app.get_job(long.id).status is JobStatus.Active
        assert (done.result, done.attempts) == (8, 1)
        assert app.get_executions(short.id)[0].worker_id.startswith("idle")
        app.abort_job(long.id)
