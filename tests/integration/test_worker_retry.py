"""``_retry``: how many attempts a job gets and how long the worker waits between them;
every attempt is in ``get_executions``."""

from __future__ import annotations

from itertools import pairwise

import pytest

from pgwerk import Execution, JobStatus, Retry, Werk
from tests import worker_jobs
from tests.worker_support import running_worker, seconds_between, wait_status


def gaps(runs: list[Execution]) -> list[float]:
    """Seconds from the end of each attempt to the start of the next."""
    return [seconds_between(a.finished_at, b.started_at) for a, b in pairwise(runs)]


def test_worker__without_retry_a_failing_job_has_one_attempt(app: Werk) -> None:
    with running_worker(app):
        job = app.enqueue(worker_jobs.fail, "once")
        assert job is not None
        done = wait_status(app, job, JobStatus.Failed)

    assert done.attempts == 1 and done.max_attempts == 1
    assert "ValueError: once" in (done.error or "")
    [run] = app.get_executions(job.id)
    assert (run.attempt, run.outcome) == (1, "failed")


def test_worker__int_retry_is_the_total_number_of_attempts(app: Werk) -> None:
    with running_worker(app):
        job = app.enqueue(worker_jobs.fail, "again", _retry=3)
        assert job is not None
        done = wait_status(app, job, JobStatus.Failed)

    assert done.attempts == 3
    runs = app.get_executions(job.id)
    assert [(r.attempt, r.outcome) for r in runs] == [(1, "failed"), (2, "failed"), (3, "failed")]
    assert all("ValueError: again" in (r.error or "") for r in runs)
    assert all(r.worker_id for r in runs)


def test_worker__retried_job_that_succeeds_ends_complete_with_each_attempt_recorded(
        app: Werk) -> None:
    with running_worker(app):
        job = app.enqueue(worker_jobs.fail_before_attempt, succeed_on=3, _retry=5)
        assert job is not None
        done = wait_status(app, job, JobStatus.Complete, JobStatus.Failed)

    assert done.status is JobStatus.Complete
    assert done.result == 3 and done.attempts == 3 and done.error is None
    runs = app.get_executions(job.id)
    assert [(r.attempt, r.outcome) for r in runs] == [(1, "failed"), (2, "failed"),
                                                      (3, "complete")]
    assert "not yet: attempt 1" in (runs[0].error or "")
    assert runs[-1].error is None


def test_worker__retry_intervals_list_sets_each_delay_and_its_last_value_repeats(
        app: Werk) -> None:
    intervals = [0.3, 0.8]
    with running_worker(app):
        job = app.enqueue(worker_jobs.fail, _retry=Retry(max=4, intervals=intervals))
        assert job is not None
        done = wait_status(app, job, JobStatus.Failed, timeout=15)

    assert done.attempts == 4
    runs = app.get_executions(job.id)
    assert [r.outcome for r in runs] == ["failed"] * 4
    expected = [0.3, 0.8, 0.8]
    for gap, delay in zip(gaps(runs), expected, strict=True):
        assert delay <= gap < delay + 1.0, (gaps(runs), expected)


def test_worker__retry_interval_int_is_a_uniform_delay(app: Werk) -> None:
    with running_worker(app):
        job = app.enqueue(worker_jobs.fail, _retry=Retry(max=3, intervals=1))
        assert job is not None
        # Between attempts the job waits, scheduled, for its next turn.
        wait_status(app, job, JobStatus.Scheduled, timeout=10)
        done = wait_status(app, job, JobStatus.Failed, timeout=15)

    assert done.attempts == 3
    runs = app.get_executions(job.id)
    for gap in gaps(runs):
        assert 1.0 <= gap < 2.0, gaps(runs)


@pytest.mark.parametrize("pool", ["fork", "process"])
def test_worker__process_pools_retry_too(app: Werk, pool: str) -> None:
    with running_worker(app, pool=pool, concurrency=2):
        job = app.enqueue(worker_jobs.fail_before_attempt, succeed_on=2,
                          _retry=Retry(max=2, intervals=[0.2]))
        assert job is not None
        done = wait_status(app, job, JobStatus.Complete, JobStatus.Failed)

    assert (done.status, done.result, done.attempts) == (JobStatus.Complete, 2, 2)
    runs = app.get_executions(job.id)
    assert [r.outcome for r in runs] == ["failed", "complete"]
    assert gaps(runs)[0] >= 0.2
