"""``_on_success`` / ``_on_failure`` / ``_on_stopped`` (plain or ``Callback(func, timeout)``):
called with a ``Context`` whose job carries the result or the error. A callback that raises
or times out is logged and changes nothing else."""

from __future__ import annotations

import logging

import pytest

from pgwerk import Callback, JobStatus, Werk
from tests import worker_jobs
from tests.helpers import eventually
from tests.worker_support import create_events_table, events, running_worker, wait_status

POOLS = ["thread", "fork"]


@pytest.fixture(autouse=True)
def _events(app: Werk) -> None:
    create_events_table(app)


def callback_events(app: Werk, job_id: int, count: int = 1) -> list[dict[str, object]]:
    return eventually(lambda: len(found := events(app, "callback", job_id)) >= count and found,
                      timeout=10, message=f"callback of job {job_id}")


@pytest.mark.parametrize("pool", POOLS)
def test_worker__on_success_gets_a_context_whose_job_carries_the_result(app: Werk,
                                                                         pool: str) -> None:
    with running_worker(app, pool=pool):
        job = app.enqueue(worker_jobs.double, 21, _on_success=worker_jobs.callback_record,
                          _on_failure=worker_jobs.callback_record)
        assert job is not None
        wait_status(app, job, JobStatus.Complete)
        [event] = callback_events(app, job.id)

    data = event["data"]
    assert data == {"status": "complete", "result": 42, "error": None, "is_context": True,
                    "exception": None}
    assert len(events(app, "callback", job.id)) == 1  # on_failure was not called


@pytest.mark.parametrize("pool", POOLS)
def test_worker__on_failure_gets_the_error_once_retries_are_spent(app: Werk, pool: str) -> None:
    with running_worker(app, pool=pool):
        job = app.enqueue(worker_jobs.fail, "bad input", _retry=2,
                          _on_failure="tests.worker_jobs.callback_record",
                          _on_success=worker_jobs.callback_record)
        assert job is not None
        wait_status(app, job, JobStatus.Failed)
        [event] = callback_events(app, job.id)

    data = event["data"]
    assert data["status"] == "failed"
    assert "ValueError: bad input" in data["error"]
    assert data["result"] is None
    if pool == "thread":  # the exception object itself only exists in the worker process
        assert data["exception"] == "ValueError"
    assert app.get_job(job.id).attempts == 2


def test_worker__on_stopped_runs_when_a_job_is_aborted(app: Werk) -> None:
    with running_worker(app):
        job = app.enqueue(worker_jobs.busy_loop, seconds=30,
                          _on_stopped=Callback(worker_jobs.callback_record, timeout=5),
                          _on_failure=worker_jobs.callback_record)
        assert job is not None
        eventually(lambda: events(app, "busy-start", job.id), timeout=10)
        assert app.abort_job(job.id)
        wait_status(app, job, JobStatus.Aborted)
        [event] = callback_events(app, job.id)

    assert event["data"]["status"] == "aborted"
    assert "JobAborted" in event["data"]["error"]


@pytest.mark.parametrize("pool", POOLS)
def test_worker__a_callback_that_raises_is_logged_and_the_job_stays_complete(
        app: Werk, pool: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pgwerk")
    with running_worker(app, pool=pool, concurrency=1):
        job = app.enqueue(worker_jobs.double, 2, _on_success=worker_jobs.callback_raise)
        assert job is not None
        eventually(lambda: events(app, "callback-raise", job.id), timeout=10)
        eventually(lambda: "callback tests.worker_jobs.callback_raise" in caplog.text,
                   timeout=10, message="the failure logged")
        after = app.enqueue(worker_jobs.double, 3)
        assert after is not None
        assert wait_status(app, after, JobStatus.Complete).result == 6

    done = app.get_job(job.id)
    assert (done.status, done.result, done.error) == (JobStatus.Complete, 4, None)
    assert "callback exploded" in caplog.text


@pytest.mark.parametrize("pool", POOLS)
def test_worker__a_callback_past_its_timeout_is_stopped_and_logged_and_changes_nothing(
        app: Werk, pool: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pgwerk")
    with running_worker(app, pool=pool, concurrency=1):
        job = app.enqueue(worker_jobs.double, 2,
                          _on_success=Callback(worker_jobs.callback_busy, timeout=0.3))
        assert job is not None
        eventually(lambda: events(app, "callback-busy-start", job.id), timeout=10)
        eventually(lambda: "timed out" in caplog.text, timeout=10,
                   message="the callback timeout logged")
        after = app.enqueue(worker_jobs.double, 3)
        assert after is not None
        assert wait_status(app, after, JobStatus.Complete).result == 6

    assert events(app, "callback-busy-end", job.id) == []
    done = app.get_job(job.id)
    assert (done.status, done.result, done.error) == (JobStatus.Complete, 4, None)
