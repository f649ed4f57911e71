"""A worker that claims ahead of its free slots (``prefetch``) still runs every job exactly
once, and puts back what it held but never started when it stops."""

from __future__ import annotations

import threading

import pytest

from pgwerk import EnqueueParams, JobStatus, Werk, Worker
from tests.helpers import eventually, query


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
    worker = Worker(app, concurrency=1, prefetch=10, poll_interval=0.1, shutdown_timeout=5)
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
