"""``_timeout``: in the thread pool ``JobTimeout`` is raised into the job's thread; a thread
stuck in C is abandoned after the grace period and the worker keeps its capacity; in the
fork pool the child gets SIGALRM, then SIGKILL. A child that dies fails only its own job."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from pgwerk import JobStatus, Retry, Werk
from tests import worker_jobs
from tests.helpers import eventually
from tests.worker_support import (
    create_events_table,
    events,
    running_worker,
    seconds_between,
    wait_all_terminal,
    wait_status,
)


@pytest.fixture(autouse=True)
def _events(app: Werk) -> None:
    create_events_table(app)


def test_worker__timeout_interrupts_a_python_loop_in_a_thread_and_fails_the_attempt(
        app: Werk) -> None:
    with running_worker(app, concurrency=2):
        job = app.enqueue(worker_jobs.busy_loop, seconds=30, _timeout=0.3)
        assert job is not None
        done = wait_status(app, job, JobStatus.Failed, timeout=10)

    assert done.attempts == 1
    assert "JobTimeout" in (done.error or "")
    assert f"exceeded its timeout of {0.3}s" in (done.error or "")
    assert seconds_between(done.started_at, done.completed_at) < 3.0
    assert events(app, "busy-start", job.id) and not events(app, "busy-end", job.id)
    [run] = app.get_executions(job.id)
    assert run.outcome == "timeout" and "JobTimeout" in (run.error or "")


def test_worker__timed_out_attempt_is_retried_per_its_policy(app: Werk) -> None:
    with running_worker(app, concurrency=2):
        job = app.enqueue(worker_jobs.busy_loop, seconds=30, _timeout=0.2,
                          _retry=Retry(max=3, intervals=[0.1]))
        assert job is not None
        done = wait_status(app, job, JobStatus.Failed, timeout=15)

    assert done.attempts == 3
    runs = app.get_executions(job.id)
    assert [r.outcome for r in runs] == ["timeout"] * 3  # the job's status says failed
    assert all("JobTimeout" in (r.error or "") for r in runs)
    assert len(events(app, "busy-start", job.id)) == 3


def test_worker__job_stuck_in_c_is_recorded_timed_out_and_the_worker_keeps_its_capacity(
        app: Werk) -> None:
    with running_worker(app, concurrency=1, timeout_grace=0.5) as worker:
        stuck = app.enqueue(worker_jobs.sleep_in_c, seconds=3600, _timeout=0.3)
        after = app.enqueue(worker_jobs.double, 5)
        assert stuck is not None and after is not None
        failed = wait_status(app, stuck, JobStatus.Failed, timeout=10)
        done = wait_status(app, after, JobStatus.Complete, timeout=10)
        # The one slot was handed on: the worker still runs jobs with the thread stuck.
        more = app.enqueue(worker_jobs.double, 6)
        assert more is not None
        assert wait_status(app, more, JobStatus.Complete, timeout=10).result == 12
        assert worker.concurrency == 1

    assert "JobTimeout" in (failed.error or "") and "grace period" in (failed.error or "")
    # Recorded after the timeout plus the grace period, not after the sleep.
    assert 0.8 <= seconds_between(failed.started_at, failed.completed_at) < 5.0
    assert done.result == 10
    assert done.started_at is not None and failed.completed_at is not None
    assert done.started_at >= failed.started_at  # type: ignore[operator]
    [run] = app.get_executions(stuck.id)
    assert run.outcome == "timeout"


def test_worker__late_return_of_an_abandoned_job_never_overwrites_its_record(
        app: Werk, tmp_path: Path) -> None:
    marker = tmp_path / "returned"
    with running_worker(app, concurrency=1, timeout_grace=0.3):
        job = app.enqueue(worker_jobs.stubborn_sleep, seconds=2.0, marker=str(marker),
                          _timeout=0.2)
        quick = app.enqueue(worker_jobs.double, 1)
        assert job is not None and quick is not None
        failed = wait_status(app, job, JobStatus.Failed, timeout=10)
        wait_status(app, quick, JobStatus.Complete, timeout=10)
        # The quick job finished while the abandoned one still slept.
        assert not marker.exists()
        eventually(marker.exists, timeout=10, message="the abandoned handler returning")
        thread_id = int(marker.read_text())
        eventually(lambda: not any(t.ident == thread_id for t in threading.enumerate()),
                   timeout=10, message="the abandoned thread ending")
    # Stopping the worker flushed whatever it had to write.

    final = app.get_job(job.id)
    assert final.status is JobStatus.Failed
    assert final.result is None
    assert final.error == failed.error
    assert final.completed_at == failed.completed_at
    assert len(app.get_executions(job.id)) == 1


def test_worker__fork_pool_timeout_raises_job_timeout_in_the_child(app: Werk) -> None:
    with running_worker(app, pool="fork", concurrency=2, timeout_grace=5.0):
        job = app.enqueue(worker_jobs.busy_loop, seconds=30, _timeout=0.3)
        assert job is not None
        done = wait_status(app, job, JobStatus.Failed, timeout=10)

    error = done.error or ""
    # SIGALRM in the child raised JobTimeout there: no kill was needed.
    assert "JobTimeout" in error and "exceeded its timeout" in error
    assert "killed" not in error
    assert seconds_between(done.started_at, done.completed_at) < 3.0


def test_worker__fork_pool_alarm_interrupts_a_child_sleeping_in_c(app: Werk) -> None:
    with running_worker(app, pool="fork", concurrency=1, timeout_grace=5.0):
        job = app.enqueue(worker_jobs.sleep_in_c, seconds=3600, _timeout=0.3)
        assert job is not None
        done = wait_status(app, job, JobStatus.Failed, timeout=10)

    error = done.error or ""
    assert "JobTimeout" in error and "exceeded its timeout" in error and "killed" not in error
    assert seconds_between(done.started_at, done.completed_at) < 3.0


def test_worker__fork_pool_kills_a_child_that_cannot_be_interrupted_after_the_grace_period(
        app: Werk) -> None:
    with running_worker(app, pool="fork", concurrency=1, timeout_grace=0.5):
        job = app.enqueue(worker_jobs.sleep_with_alarm_blocked, seconds=3600, _timeout=0.3)
        after = app.enqueue(worker_jobs.double, 4)
        assert job is not None and after is not None
        done = wait_status(app, job, JobStatus.Failed, timeout=10)
        assert wait_status(app, after, JobStatus.Complete, timeout=10).result == 8

    error = done.error or ""
    assert "JobTimeout" in error and "SIGKILL" in error and "grace period" in error
    assert 0.8 <= seconds_between(done.started_at, done.completed_at) < 5.0
    [start] = events(app, "sleep-start", job.id)
    with pytest.raises(ProcessLookupError):  # the child is gone (killed and reaped)
        os.kill(start["pid"], 0)


@pytest.mark.parametrize("pool", ["fork", "process"])
@pytest.mark.parametrize("handler, args, expected", [
    (worker_jobs.exit_process, (1,), "exited with code 1"),
    (worker_jobs.kill_self, ("SIGKILL",), "killed by signal SIGKILL"),
    (worker_jobs.kill_self, ("SIGSEGV",), "killed by signal SIGSEGV"),
])
def test_worker__a_child_that_dies_fails_only_its_own_job(
        app: Werk, pool: str, handler: object, args: tuple[object, ...], expected: str) -> None:
    with running_worker(app, pool=pool, concurrency=2):
        dying = app.enqueue(handler, *args)  # type: ignore[arg-type]
        others = [app.enqueue(worker_jobs.double, i) for i in range(4)]
        assert dying is not None
        done = wait_status(app, dying, JobStatus.Failed, timeout=10)
        results = [wait_status(app, j, JobStatus.Complete, timeout=10).result
                   for j in others if j]
        # The pool still works after the death.
        later = app.enqueue(worker_jobs.double, 50)
        assert later is not None
        assert wait_status(app, later, JobStatus.Complete, timeout=10).result == 100

    assert expected in (done.error or "")
    assert results == [0, 2, 4, 6]


def test_worker__fork_pool_keeps_up_with_many_jobs_while_timed_out_children_are_killed(
        app: Werk) -> None:
    # Children are forked while others are reaped and killed: the pipes of a child must
    # never be mixed up with those of a sibling (reused descriptor numbers).
    jobs = [app.enqueue(worker_jobs.sleep_with_alarm_blocked, seconds=3600, _timeout=0.2)
            if i % 10 == 0 else app.enqueue(worker_jobs.double, i) for i in range(300)]
    try:
        with running_worker(app, pool="fork", concurrency=8, timeout_grace=0.01):
            done = wait_all_terminal(app, [j for j in jobs if j], timeout=60)
    finally:
        for event in events(app, "sleep-start"):  # should all be dead; make sure
            try:
                os.kill(event["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass

    failed = [j for j in done if j.status is JobStatus.Failed]
    assert len(failed) == 30
    assert all("SIGKILL" in (j.error or "") for j in failed)
    assert [j.result for j in done if j.status is JobStatus.Complete] == [
        2 * i for i in range(300) if i % 10]
