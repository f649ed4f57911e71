"""Batches across real worker processes: members ending at the same instant on two
workers enqueue each callback exactly once with the right counts, and a worker SIGKILLed
in the middle of a batch loses nothing: its members are rescued, run again, and the
callback still comes once."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from pgwerk import EnqueueParams, Werk
from tests import worker_jobs
from tests.helpers import eventually, query
from tests.worker_support import WorkerProcess, create_events_table, events, worker_processes

CALLBACK = "tests.worker_jobs.batch_callback"


def finished_with_callbacks(app: Werk, batch_id: int, callbacks: int) -> Any:
    """The batch once it finished and its callback jobs all ran."""

    def done() -> Any:
        found = app.get_batch(batch_id)
        ran = events(app, "batch-callback")
        return found if found.finished_at is not None and len(ran) >= callbacks else None

    done.__name__ = f"batch {batch_id} finished and {callbacks} callback(s) ran"
    return eventually(done, timeout=60, interval=0.1)


def callback_jobs(app: Werk) -> list[dict[str, Any]]:
    return query(app, "SELECT id, meta->'batch'->>'callback' AS kind FROM {jobs} "
                      "WHERE meta ? 'batch' ORDER BY id")


def test_batch__two_workers_end_300_members_and_each_callback_comes_once(
        app: Werk, pg_dsn: str, tmp_path: Path) -> None:
    create_events_table(app)
    workers = [WorkerProcess(pg_dsn, app.config.schema, tmp_path, name=f"w{i}", concurrency=4)
               for i in (1, 2)]
    with worker_processes(*workers):
        ids = {w.wait_registered(app) for w in workers}
        with app.batch(on_complete=CALLBACK, on_success=CALLBACK,
                       on_failure=CALLBACK) as batch:
            app.enqueue_many([EnqueueParams(func=worker_jobs.fail_every,
                                            args=(n, 25, 0.005)) for n in range(300)],
                             batch=batch)
        assert batch.id is not None
        found = finished_with_callbacks(app, batch.id, 2)
        for worker in workers:
            worker.signal(signal.SIGTERM)
        for worker in workers:
            assert worker.wait(30) == 0, worker.output()

    assert (found.total, found.pending, found.complete, found.failed) == (300, 0, 288, 12)
    assert (found.aborted, found.expired, found.status) == (0, 0, "failed")
    assert sorted(found.callback_jobs) == ["complete", "failure"]
    assert [r["kind"] for r in callback_jobs(app)] == ["complete", "failure"]
    ran = events(app, "batch-callback")
    assert sorted(e["data"]["callback"] for e in ran) == ["complete", "failure"]
    for event in ran:
        assert {k: event["data"][k] for k in ("id", "total", "complete", "failed")} == {
            "id": batch.id, "total": 300, "complete": 288, "failed": 12}
    by = {r["worker_id"] for r in query(app, "SELECT DISTINCT worker_id FROM {jobs} "
                                             "WHERE batch_id = %s", [batch.id])}
    assert by == ids  # members ended on both workers


def test_batch__a_sigkilled_worker_s_members_are_rescued_and_the_callback_comes_once(
        app: Werk, pg_dsn: str, tmp_path: Path) -> None:
    create_events_table(app)
    with app.batch(on_complete=CALLBACK, on_success=CALLBACK) as batch:
        for n in range(40):
            batch.enqueue(worker_jobs.record, label="member", value=n, seconds=0.05)
    assert batch.id is not None
    doomed = WorkerProcess(pg_dsn, app.config.schema, tmp_path, name="doomed", concurrency=4)
    with worker_processes(doomed):
        # Killed with some members recorded (a member's event is written as it starts, its
        # outcome a few ms after it ends) and some running.
        batch_id = batch.id
        eventually(lambda: len(events(app, "member")) >= 8
                   and app.get_batch(batch_id).pending < 40, timeout=30)
        doomed.signal(signal.SIGKILL)
        doomed.wait(10)
    killed = app.get_batch(batch.id)
    assert 0 < killed.pending < 40 and killed.callback_jobs == {}

    rescuer = WorkerProcess(pg_dsn, app.config.schema, tmp_path, name="rescuer", concurrency=4,
                            heartbeat_interval=0.3, sweep_interval=0.3)
    with worker_processes(rescuer):
        found = finished_with_callbacks(app, batch.id, 2)
        rescuer.signal(signal.SIGTERM)
        assert rescuer.wait(20) == 0, rescuer.output()

    assert (found.total, found.pending, found.complete, found.status) == (40, 0, 40, "complete")
    assert sorted(found.callback_jobs) == ["complete", "success"]
    assert [r["kind"] for r in callback_jobs(app)] == ["complete", "success"]
    assert len(events(app, "batch-callback")) == 2
    rerun = query(app, "SELECT count(*) AS n FROM {jobs} WHERE batch_id = %s AND lost > 0",
                  [batch.id])
    assert rerun[0]["n"] > 0  # the jobs running at the kill were run again
