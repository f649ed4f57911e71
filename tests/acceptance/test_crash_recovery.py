"""At-least-once across a crash: a worker process killed with SIGKILL mid-job loses
nothing. Another worker rescues the job and completes it; each attempt is in
``get_executions``, the lost one with outcome ``lost``."""

from __future__ import annotations

import signal
from pathlib import Path

from pgwerk import JobStatus, Werk
from tests import worker_jobs
from tests.helpers import eventually
from tests.worker_support import (
    WorkerProcess,
    create_events_table,
    events,
    wait_all_terminal,
    wait_status,
    worker_processes,
)


def test_crash__job_of_a_sigkilled_worker_is_completed_by_another_worker(
        app: Werk, pg_dsn: str, tmp_path: Path) -> None:
    create_events_table(app)
    doomed = WorkerProcess(pg_dsn, app.config.schema, tmp_path, name="doomed", concurrency=2)
    with worker_processes(doomed):
        doomed_id = doomed.wait_registered(app)
        job = app.enqueue(worker_jobs.block_first_attempt)
        assert job is not None
        eventually(lambda: events(app, "attempt", job.id), timeout=20)
        doomed.signal(signal.SIGKILL)
        assert doomed.wait(10) == -signal.SIGKILL

    orphan = app.get_job(job.id)
    assert (orphan.status, orphan.worker_id) == (JobStatus.Active, doomed_id)

    rescuer = WorkerProcess(pg_dsn, app.config.schema, tmp_path, name="rescuer",
                            heartbeat_interval=0.3, sweep_interval=0.3)
    with worker_processes(rescuer):
        rescuer_id = rescuer.wait_registered(app)
        done = wait_status(app, job, JobStatus.Complete, timeout=30)
        rescuer.signal(signal.SIGTERM)
        assert rescuer.wait(20) == 0, rescuer.output()

    assert done.result == "done on attempt 2"
    assert (done.attempts, done.lost) == (2, 1)
    runs = app.get_executions(job.id)
    assert [(r.attempt, r.outcome, r.worker_id) for r in runs] == [
        (1, "lost", doomed_id), (2, "complete", rescuer_id)]
    assert [e["data"]["attempt"] for e in events(app, "attempt", job.id)] == [1, 2]


def test_crash__nothing_is_lost_when_a_busy_worker_is_killed_mid_run(
        app: Werk, pg_dsn: str, tmp_path: Path) -> None:
    create_events_table(app)
    jobs = [app.enqueue(worker_jobs.record, label="job", value=i, seconds=0.1)
            for i in range(40)]
    doomed = WorkerProcess(pg_dsn, app.config.schema, tmp_path, name="doomed", concurrency=4)
    with worker_processes(doomed):
        eventually(lambda: len(events(app, "job")) >= 12, timeout=30)
        doomed.signal(signal.SIGKILL)
        doomed.wait(10)
    ran_before = len(events(app, "job"))
    assert ran_before < 40  # killed mid-run

    rescuer = WorkerProcess(pg_dsn, app.config.schema, tmp_path, name="rescuer", concurrency=4,
                            heartbeat_interval=0.3, sweep_interval=0.3)
    with worker_processes(rescuer):
        done = wait_all_terminal(app, [j for j in jobs if j], timeout=60)
        rescuer.signal(signal.SIGTERM)
        assert rescuer.wait(20) == 0, rescuer.output()

    assert all(j.status is JobStatus.Complete for j in done)
    assert sorted(j.result for j in done) == list(range(40))
    rerun = [j for j in done if j.lost]
    assert rerun  # the jobs running at the kill were run again ...
    for job in done:  # ... each attempt in the history, and only those ran twice
        runs = app.get_executions(job.id)
        assert [r.outcome for r in runs] == ["lost"] * job.lost + ["complete"]
        assert job.attempts == job.lost + 1
        # A lost attempt may have died before its handler's first line.
        ran = len(events(app, "job", job.id))
        assert ran == 1 if not job.lost else 1 <= ran <= job.attempts
