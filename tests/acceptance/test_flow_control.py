"""Queue limits hold across real worker processes: a rate limit over three processes, a
concurrency limit over four, the slots of a worker killed with SIGKILL coming back with
the rescue, and limits changed while workers run.

The handlers (``tests.worker_jobs.timed``) return when they started and ended (their own
clock) and the moment their claim started them (``started_at`` as the claim stamped it):
the rate limit is checked on those claim moments, which the database charges, and on the
handlers' own start times; the concurrency limit on the handlers' own start and end times.
"""

from __future__ import annotations

import signal
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from pgwerk import EnqueueParams, Job, JobStatus, Werk
from tests.helpers import eventually, most_at_once, most_in_any_window
from tests.worker_support import (
    WorkerProcess,
    create_events_table,
    events,
    wait_all_terminal,
    worker_processes,
)


def enqueue(app: Werk, count: int, queue: str, func: str = "tests.worker_jobs.timed",
            **kwargs: Any) -> list[Job]:
    jobs = app.enqueue_many([EnqueueParams(func=func, queue=queue, kwargs=kwargs)
                             for _ in range(count)])
    return [job for job in jobs if job is not None]


def results(app: Werk, jobs: list[Job], timeout: float) -> list[dict[str, Any]]:
    done = wait_all_terminal(app, jobs, timeout=timeout)
    assert all(job.status is JobStatus.Complete for job in done), [
        (job.id, job.status, job.error) for job in done if job.status is not JobStatus.Complete]
    return [job.result for job in done]


@pytest.mark.slow
def test_rate_limit__three_processes_never_start_more_than_20_in_any_second(
        app: Werk, pg_dsn: str, tmp_path: Path) -> None:
    app.configure_queue("api", rate_limit="20/s")
    jobs = enqueue(app, 200, "api")
    workers = [WorkerProcess(pg_dsn, app.config.schema, tmp_path, name=f"rate{i}",
                             queues=["api"]) for i in range(3)]
    with worker_processes(*workers):
        done = results(app, jobs, timeout=60)
        for worker in workers:
            worker.signal(signal.SIGTERM)
        for worker in workers:
            assert worker.wait(20) == 0, worker.output()

    claimed = [datetime.fromisoformat(r["claimed"]) for r in done]
    assert most_in_any_window(claimed, timedelta(seconds=1)) == 20
    # On the handlers' own clocks too: a rated job starts a fixed hand-off after its
    # claim, and claims keep that hand-off to spare between windows.
    started = [datetime.fromtimestamp(r["start"], timezone.utc) for r in done]
    assert most_in_any_window(started, timedelta(seconds=1)) <= 20
    # 200 jobs at 20 per second: ten windows (of 1.05 s), the first starting at once.
    assert timedelta(seconds=9) <= max(claimed) - min(claimed) <= timedelta(seconds=12)
    assert len({r["pid"] for r in done}) == 3  # every process took its share
    # Each handler started after the moment its claim was charged (one clock: one host).
    assert all(r["start"] >= datetime.fromisoformat(r["claimed"]).timestamp() for r in done)


def test_concurrency_limit__four_processes_of_eight_slots_run_three_at_once(
        app: Werk, pg_dsn: str, tmp_path: Path) -> None:
    app.configure_queue("reports", concurrency=3)
    jobs = enqueue(app, 24, "reports", seconds=0.15)
    workers = [WorkerProcess(pg_dsn, app.config.schema, tmp_path, name=f"conc{i}",
                             queues=["reports"], concurrency=8) for i in range(4)]
    with worker_processes(*workers):
        done = results(app, jobs, timeout=60)
    intervals = [(r["start"], r["end"]) for r in done]
    assert most_at_once(intervals) == 3
    assert len({r["pid"] for r in done}) > 1
    assert app.queue_limits("reports")[0].running == 0


def test_concurrency_limit__slots_of_a_sigkilled_worker_come_back_with_the_rescue(
        app: Werk, pg_dsn: str, tmp_path: Path) -> None:
    create_events_table(app)
    app.configure_queue("reports", concurrency=2)
    gate = tmp_path / "gate"
    jobs = enqueue(app, 4, "reports", func="tests.worker_jobs.wait_for_file", path=str(gate))
    doomed = WorkerProcess(pg_dsn, app.config.schema, tmp_path, name="doomed",
                           queues=["reports"], concurrency=4)
    with worker_processes(doomed):
        eventually(lambda: len(events(app, "gate-start")) == 2, timeout=30)
        assert app.queue_limits("reports")[0].running == 2
        assert app.queue_stats()["reports"].get("queued") == 2  # the limit holds them
        doomed.signal(signal.SIGKILL)
        assert doomed.wait(10) == -signal.SIGKILL
    assert app.queue_limits("reports")[0].running == 2  # held by a dead worker

    gate.write_text("open")
    rescuer = WorkerProcess(pg_dsn, app.config.schema, tmp_path, name="rescuer",
                            queues=["reports"], concurrency=4, heartbeat_interval=0.3,
                            sweep_interval=0.3)
    with worker_processes(rescuer):
        done = wait_all_terminal(app, jobs, timeout=60)
        rescuer.signal(signal.SIGTERM)
        assert rescuer.wait(20) == 0, rescuer.output()
    assert all(job.status is JobStatus.Complete for job in done)
    assert sorted(job.lost for job in done) == [0, 0, 1, 1]
    assert app.queue_limits("reports")[0].running == 0


def test_limits__changed_while_workers_run_take_effect(app: Werk, pg_dsn: str,
                                                       tmp_path: Path) -> None:
    worker = WorkerProcess(pg_dsn, app.config.schema, tmp_path, name="changing",
                           queues=["q"], concurrency=4)
    with worker_processes(worker):
        worker.wait_registered(app)
        # A limit set on a queue the worker runs without limits: obeyed from then on.
        app.configure_queue("q", concurrency=1)
        one_at_a_time = results(app, enqueue(app, 4, "q", seconds=0.1), timeout=30)
        assert most_at_once([(r["start"], r["end"]) for r in one_at_a_time]) == 1

        # Raised: more run at once.
        app.configure_queue("q", concurrency=3)
        three = results(app, enqueue(app, 6, "q", seconds=0.3), timeout=30)
        assert 1 < most_at_once([(r["start"], r["end"]) for r in three]) <= 3

        # A rate that lets one job start per hour holds the others back ...
        app.configure_queue("q", concurrency=None, rate_limit="1/h")
        held = enqueue(app, 3, "q")
        eventually(lambda: app.queue_stats()["q"].get("queued") == 2
                   and app.queue_limits("q")[0].recent == 1, timeout=20)
        # ... until it is removed: the rest start at once.
        assert app.configure_queue("q", rate_limit=None) is None
        results(app, held, timeout=20)
        worker.signal(signal.SIGTERM)
        assert worker.wait(20) == 0, worker.output()
