"""``apply`` / ``map`` / ``wait_for`` against a running worker: results, ``JobError`` with
``.job``, ``TimeoutError``, ``return_exceptions``, and waits woken by notification rather
than by the polling fallback."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator

import pytest

from pgwerk import JobError, JobStatus, Werk, Worker
from tests import worker_jobs
from tests.conftest import MakeApp
from tests.worker_support import running_worker


@pytest.fixture
def worker(app: Werk) -> Iterator[Worker]:
    with running_worker(app, concurrency=4) as running:
        yield running


def test_apply__returns_the_result(app: Werk, worker: Worker) -> None:
    assert app.apply(worker_jobs.double, 21, timeout=10) == 42
    assert app.apply("tests.worker_jobs.async_double", x=5, timeout=10) == 10


def test_apply__raises_job_error_carrying_the_failed_job(app: Werk, worker: Worker) -> None:
    with pytest.raises(JobError) as caught:
        app.apply(worker_jobs.fail, "nope", _retry=2, timeout=10)

    job = caught.value.job
    assert job.status is JobStatus.Failed and job.attempts == 2
    assert "ValueError: nope" in (job.error or "")
    assert "nope" in str(caught.value)


def test_apply__raises_timeout_error_and_the_job_goes_on(app: Werk, worker: Worker) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        app.apply(worker_jobs.short_sleep, 1.0, timeout=0.3)
    assert time.monotonic() - started < 1.0

    [job] = app.list_jobs(function="tests.worker_jobs.short_sleep")
    assert app.wait_for(job, timeout=10).status is JobStatus.Complete


def test_map__returns_results_in_input_order(app: Werk, worker: Worker) -> None:
    items = [{"seconds": s} for s in (0.3, 0.0, 0.2, 0.1)]
    assert app.map(worker_jobs.short_sleep, items, timeout=10) == [0.3, 0.0, 0.2, 0.1]


def test_map__runs_the_jobs_in_parallel(app: Werk, worker: Worker) -> None:
    started = time.monotonic()
    app.map(worker_jobs.short_sleep, [{"seconds": 0.5}] * 4, timeout=10)
    assert time.monotonic() - started < 1.5  # four slots: not 4 x 0.5s in a row


def test_map__raises_job_error_for_a_failed_item(app: Werk, worker: Worker) -> None:
    with pytest.raises(JobError) as caught:
        app.map(worker_jobs.fail, [{"message": "first"}], timeout=10)
    assert caught.value.job.status is JobStatus.Failed


def test_map__return_exceptions_puts_job_errors_in_place(app: Werk, worker: Worker) -> None:
    results = app.map("tests.worker_jobs.fail_before_attempt",
                      [{"succeed_on": 1}, {"succeed_on": 2}, {"succeed_on": 1}],
                      timeout=10, return_exceptions=True)

    assert results[0] == 1 and results[2] == 1
    assert isinstance(results[1], JobError)
    assert "not yet: attempt 1" in (results[1].job.error or "")


def test_map__shared_options_apply_to_every_item(app: Werk, worker: Worker) -> None:
    results = app.map(worker_jobs.fail_before_attempt, [{"succeed_on": 2}] * 3, _retry=2,
                      timeout=10)
    assert results == [2, 2, 2]


def test_map__times_out(app: Werk, worker: Worker) -> None:
    with pytest.raises(TimeoutError):
        app.map(worker_jobs.short_sleep, [{"seconds": 2}], timeout=0.3)


def test_wait_for__returns_the_ended_job(app: Werk, worker: Worker) -> None:
    job = app.enqueue(worker_jobs.double, 4)
    assert job is not None
    done = app.wait_for(job.id, timeout=10)
    assert (done.id, done.status, done.result) == (job.id, JobStatus.Complete, 8)
    with pytest.raises(TimeoutError):
        app.wait_for(app.enqueue(worker_jobs.double, 1, _delay=30), timeout=0.2)  # type: ignore[arg-type]


def test_wait_for__is_woken_by_notification_well_before_the_polling_fallback(
        app: Werk, make_app: MakeApp) -> None:
    # The worker has its own app (its own connections) and a long poll interval, so that
    # neither it nor the waiter can be on time by polling.
    worker_app = make_app(schema=app.config.schema)
    with running_worker(worker_app, concurrency=2, poll_interval=5.0):
        app.apply(worker_jobs.short_sleep, 0.0, timeout=10)  # the listener is up
        timings = []
        for _ in range(5):
            job = app.enqueue(worker_jobs.short_sleep, 0.05)
            assert job is not None
            started = time.monotonic()
            assert app.wait_for(job, timeout=10).status is JobStatus.Complete
            timings.append(time.monotonic() - started)

    # The fallback poll is 0.5s at first: a wait woken only by it takes at least that.
    assert max(timings) < 0.4, timings
    assert statistics.median(timings) < 0.25, timings
