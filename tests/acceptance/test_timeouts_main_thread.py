"""Time limits in a worker process that owns its main thread (as under the CLI): deadlines
are driven by SIGALRM there. A Python loop gets ``JobTimeout``; a thread stuck in C is given
up after the grace period and the worker keeps going; a fork child that cannot be
interrupted is killed."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from pgwerk import JobStatus, Retry, Werk
from tests import worker_jobs
from tests.worker_support import (
    WorkerProcess,
    create_events_table,
    events,
    seconds_between,
    wait_all_terminal,
    wait_status,
    worker_processes,
)


@pytest.fixture(autouse=True)
def _events(app: Werk) -> None:
    create_events_table(app)


def test_timeouts__alarm_driven_deadlines_in_a_thread_pool_worker(
        app: Werk, pg_dsn: str, tmp_path: Path) -> None:
    worker = WorkerProcess(pg_dsn, app.config.schema, tmp_path, concurrency=1,
                           timeout_grace=0.5)
    with worker_processes(worker):
        worker.wait_registered(app)
        loop = app.enqueue(worker_jobs.busy_loop, seconds=60, _timeout=0.3,
                           _retry=Retry(max=2, intervals=[0.1]))
        stuck = app.enqueue(worker_jobs.sleep_in_c, seconds=3600, _timeout=0.3)
        after = app.enqueue(worker_jobs.double, 21)
        assert loop and stuck and after
        looped = wait_status(app, loop, JobStatus.Failed, timeout=20)
        abandoned = wait_status(app, stuck, JobStatus.Failed, timeout=20)
        done = wait_status(app, after, JobStatus.Complete, timeout=20)
        worker.signal(signal.SIGTERM)
        assert worker.wait(20) == 0, worker.output()

    assert looped.attempts == 2
    assert [r.outcome for r in app.get_executions(loop.id)] == ["timeout", "timeout"]
    assert all("JobTimeout" in (r.error or "") for r in app.get_executions(loop.id))
    assert "grace period" in (abandoned.error or "")
    assert seconds_between(abandoned.started_at, abandoned.completed_at) < 5
    assert done.result == 42  # one slot, one thread stuck: capacity was kept


def test_timeouts__fork_pool_worker_kills_a_child_that_ignores_the_alarm(
        app: Werk, pg_dsn: str, tmp_path: Path) -> None:
    worker = WorkerProcess(pg_dsn, app.config.schema, tmp_path, pool="fork", concurrency=2,
                           timeout_grace=0.5)
    with worker_processes(worker):
        worker.wait_registered(app)
        blocked = app.enqueue(worker_jobs.sleep_with_alarm_blocked, seconds=3600, _timeout=0.3)
        sleeping = app.enqueue(worker_jobs.sleep_in_c, seconds=3600, _timeout=0.3)
        assert blocked and sleeping
        killed = wait_status(app, blocked, JobStatus.Failed, timeout=20)
        alarmed = wait_status(app, sleeping, JobStatus.Failed, timeout=20)
        worker.signal(signal.SIGTERM)
        assert worker.wait(20) == 0, worker.output()

    assert "SIGKILL" in (killed.error or "") and "grace period" in (killed.error or "")
    assert "exceeded its timeout" in (alarmed.error or "")
    assert "killed" not in (alarmed.error or "")


@pytest.mark.slow
def test_timeouts__fork_pool_worker_keeps_going_when_timeouts_expire_while_it_forks(
        app: Werk, pg_dsn: str, tmp_path: Path) -> None:
    jobs = [app.enqueue(worker_jobs.sleep_with_alarm_blocked, seconds=3600, _timeout=0.2)
            if i % 10 == 0 else app.enqueue(worker_jobs.double, i) for i in range(300)]
    worker = WorkerProcess(pg_dsn, app.config.schema, tmp_path, pool="fork", concurrency=8,
                           timeout_grace=0.01)
    try:
        with worker_processes(worker):
            done = wait_all_terminal(app, [j for j in jobs if j], timeout=30)
            worker.signal(signal.SIGTERM)
            assert worker.wait(20) == 0, worker.output()
    finally:
        # A frozen worker never kills its stuck children: do it here.
        for event in events(app, "sleep-start"):
            try:
                os.kill(event["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass

    assert sum(j.status is JobStatus.Complete for j in done) == 270
    assert sum(j.status is JobStatus.Failed for j in done) == 30
