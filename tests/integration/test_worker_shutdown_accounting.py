"""A graceful shutdown is not a crash: jobs put back by a draining worker spend neither a
retry nor the ``max_lost`` budget, and a job asked to abort ends properly."""

from __future__ import annotations

from pathlib import Path

from pgwerk import JobStatus, Werk
from tests import worker_jobs
from tests.helpers import ago, eventually, query, set_columns
from tests.worker_support import (
    WorkerThread,
    create_events_table,
    events,
    run_burst,
    wait_status,
)


def test_drains__four_rolling_deploys_and_a_crash_do_not_fail_a_job(app: Werk) -> None:
    create_events_table(app)
    job = app.enqueue(worker_jobs.busy_loop, seconds=60, _retry=1)
    assert job is not None
    for deploy in range(1, 5):
        runner = WorkerThread(app, concurrency=1).start()
        eventually(lambda n=deploy: len(events(app, "busy-start", job.id)) == n, timeout=15)
        runner.stop(now=True)
        assert app.get_job(job.id).status is JobStatus.Queued
    set_columns(app, job.id, status="active", worker_id="crashed.1.x", started_at=ago(60),
                heartbeat_at=ago(60), attempts=5)

    assert app.sweep()["rescued"] == 1

    back = app.get_job(job.id)
    assert (back.status, back.lost, back.released) == (JobStatus.Queued, 1, 4)
    set_columns(app, job.id, payload='{"args": [], "kwargs": {"seconds": 0}}')
    run_burst(app)
    done = app.get_job(job.id)
    assert (done.status, done.result, done.attempts) == (JobStatus.Complete, "finished", 6)


def test_drain__a_job_asked_to_abort_ends_aborted_with_its_reason(
        app: Werk, tmp_path: Path) -> None:
    create_events_table(app)
    marker = tmp_path / "returned"
    job = app.enqueue(worker_jobs.stubborn_sleep, seconds=2, marker=str(marker),
                      _on_stopped=worker_jobs.callback_record)
    assert job is not None
    runner = WorkerThread(app, concurrency=1, timeout_grace=0.2).start()
    eventually(lambda: events(app, "stubborn-start", job.id), timeout=15)
    set_columns(app, job.id, status="aborting")  # asked, and not acted on yet

    runner.stop(now=True)

    ended = wait_status(app, job, JobStatus.Aborted, timeout=5)
    assert ended.error == "aborted: its worker shut down before the job stopped"
    [row] = query(app, "SELECT purge_at FROM {jobs} WHERE id = %s", (job.id,))
    assert row["purge_at"] is not None
    assert app.wait_for(job, timeout=1).status is JobStatus.Aborted
    # The handler ignored every interruption and returned late: that changes nothing.
    eventually(marker.exists, timeout=10, message="the stubborn handler returning")
    [callback] = eventually(lambda: events(app, "callback", job.id), timeout=5)
    assert callback["data"]["status"] == "aborted"
    assert len(events(app, "callback", job.id)) == 1
    assert app.get_job(job.id).status is JobStatus.Aborted
