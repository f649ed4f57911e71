"""The thread pool against interruptions that land badly or are ignored, and against a
stop that comes between handing a job to a thread and the thread starting it.

- A ``JobTimeout`` raised into a thread inside ``logging`` must not leave a handler's lock
  held: other threads would block on their next log line for ever.
- A handler that catches ``JobTimeout`` / ``JobAborted`` and returns: the attempt still
  counts as timed out / aborted. One that catches them and goes on is abandoned after
  ``timeout_grace`` (an abort too: the job never stays ``aborting``), and no more threads
  are abandoned than the pool's capacity.
- A job handed to the pool but not started yet when the worker stops either runs or is put
  back; it never stays ``active``.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from pgwerk import Callback, JobStatus, Werk
from pgwerk._pools import ThreadPool
from tests import pool_jobs
from tests.helpers import eventually
from tests.process_support import ran_alone
from tests.worker_support import (
    WorkerThread,
    create_events_table,
    events,
    running_worker,
    wait_all_terminal,
    wait_status,
)


@pytest.fixture(autouse=True)
def _events(app: Werk) -> None:
    create_events_table(app)


def _lock_is_free(lock: threading.RLock | None) -> bool:
    if lock is None:
        return True
    if not lock.acquire(timeout=2.0):
        return False
    lock.release()
    return True


# An interruption may also land in a finalizer (a weakref callback the garbage collector
# runs in the job's thread), where Python reports it as unraisable and drops it: the
# handler then runs on until the grace period abandons its thread.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_thread_pool__timeouts_landing_in_logging_leave_no_lock_held(
        app: Werk, request: pytest.FixtureRequest) -> None:
    if ran_alone(request):
        return
    with running_worker(app, concurrency=2, timeout_grace=0.3):
        jobs = [app.enqueue(pool_jobs.log_in_a_loop, seconds=2, _timeout=0.02)
                for _ in range(60)]
        done = wait_all_terminal(app, [j for j in jobs if j], timeout=60)
        assert all(j.status is JobStatus.Failed and "JobTimeout" in (j.error or "")
                   for j in done)
        # Other threads can still log, and so can the worker's threads.
        assert _lock_is_free(pool_jobs.spin_handler.lock), "a logging handler lock is held"
        assert _lock_is_free(logging._lock), "the logging module lock is held"  # type: ignore[attr-defined]
        after = [app.enqueue(pool_jobs.log_once, f"after {i}") for i in range(4)]
        assert [wait_status(app, j, JobStatus.Complete, timeout=10).result
                for j in after if j] == [f"after {i}" for i in range(4)]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_thread_pool__callback_timeouts_landing_in_logging_leave_no_lock_held(
        app: Werk, request: pytest.FixtureRequest) -> None:
    if ran_alone(request):
        return
    callback = Callback(pool_jobs.log_in_a_loop_callback, timeout=0.02)
    with running_worker(app, concurrency=2, timeout_grace=0.3):
        jobs = [app.enqueue(pool_jobs.log_once, f"job {i}", _on_success=callback)
                for i in range(60)]
        wait_all_terminal(app, [j for j in jobs if j], timeout=30)
        eventually(lambda: _lock_is_free(pool_jobs.spin_handler.lock), timeout=10,
                   message="the logging handler's lock free once the callbacks ended")
        after = app.enqueue(pool_jobs.log_once, "after")
        assert after is not None
        assert wait_status(app, after, JobStatus.Complete, timeout=10).result == "after"


def test_thread_pool__a_swallowed_timeout_still_ends_the_attempt_timed_out(app: Werk) -> None:
    with running_worker(app, concurrency=1, timeout_grace=5.0):
        job = app.enqueue(pool_jobs.swallow_interruptions, seconds=0.5, _timeout=0.1)
        assert job is not None
        done = wait_status(app, job, JobStatus.Failed, JobStatus.Complete, timeout=10)

    assert done.status is JobStatus.Failed, done.result
    assert "JobTimeout" in (done.error or "") and "caught" in (done.error or "")
    assert done.result is None


def test_thread_pool__a_swallowed_abort_still_ends_the_job_aborted(app: Werk) -> None:
    with running_worker(app, concurrency=1, timeout_grace=5.0):
        job = app.enqueue(pool_jobs.swallow_interruptions, seconds=0.7)
        assert job is not None
        eventually(lambda: events(app, "swallow-start", job.id), timeout=10)
        app.abort_job(job.id)
        done = wait_status(app, job, JobStatus.Aborted, JobStatus.Complete, timeout=10)

    assert done.status is JobStatus.Aborted, done.result
    assert "JobAborted" in (done.error or "")


def test_thread_pool__an_abort_the_handler_ignores_ends_after_the_grace_period(
        app: Werk) -> None:
    with running_worker(app, concurrency=1, timeout_grace=0.3):
        job = app.enqueue(pool_jobs.swallow_interruptions, seconds=4.0)
        assert job is not None
        eventually(lambda: events(app, "swallow-start", job.id), timeout=10)
        asked = time.monotonic()
        app.abort_job(job.id)
        done = wait_status(app, job, JobStatus.Aborted, JobStatus.Complete, timeout=10)
        ended = time.monotonic()
        # The slot was handed on: the worker runs other jobs meanwhile.
        quick = app.enqueue(pool_jobs.log_once, "next")
        assert quick is not None
        assert wait_status(app, quick, JobStatus.Complete, timeout=10).result == "next"

    assert done.status is JobStatus.Aborted
    assert ended - asked < 2.5, "the job stayed aborting until the handler returned"
    assert "grace" in (done.error or "")


def test_thread_pool__abandoned_threads_never_exceed_the_capacity(app: Werk) -> None:
    # Two stuck threads are replaced; the third costs a slot, and the last slot still
    # runs the quick jobs.
    capacity = 2
    most = 0
    earlier = set(threading.enumerate())  # abandoned threads of other tests may still run
    with running_worker(app, concurrency=capacity, timeout_grace=0.1):
        jobs = [app.enqueue(pool_jobs.swallow_interruptions, seconds=3.0, _timeout=0.1)
                for _ in range(3)]
        quick = [app.enqueue(pool_jobs.log_once, f"q{i}") for i in range(2)]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            threads = [t for t in threading.enumerate()
                       if t.name.startswith("pgwerk-job") and t not in earlier]
            most = max(most, len(threads))
            if all(app.get_job(j.id).is_terminal for j in [*jobs, *quick] if j):
                break
            time.sleep(0.02)
        done = wait_all_terminal(app, [j for j in [*jobs, *quick] if j], timeout=1)

    assert most <= 2 * capacity, f"{most} job threads for a capacity of {capacity}"
    assert [j.status for j in done] == [JobStatus.Failed] * 3 + [JobStatus.Complete] * 2


def test_thread_pool__a_job_handed_over_but_not_started_at_stop_never_stays_active(
        app: Werk, monkeypatch: pytest.MonkeyPatch) -> None:
    # The pool's threads start late: a claimed job waits in the pool's queue when the
    # worker is asked to stop.
    gate = threading.Event()
    original_start = ThreadPool.start

    def late_start(pool: ThreadPool) -> None:
        threading.Thread(target=lambda: (gate.wait(10), original_start(pool)),
                         daemon=True).start()

    monkeypatch.setattr(ThreadPool, "start", late_start)
    runner = WorkerThread(app, concurrency=1, shutdown_timeout=0.3).start()
    job = app.enqueue(pool_jobs.log_once, "late")
    assert job is not None
    eventually(lambda: runner.worker._pool is not None
               and job.id in runner.worker._pool.running_ids()  # type: ignore[attr-defined]
               or app.get_job(job.id).status is JobStatus.Active, timeout=10)
    runner.worker.stop()
    runner.join(10)
    gate.set()

    final = app.get_job(job.id)
    assert final.status in (JobStatus.Queued, JobStatus.Complete), final.status
