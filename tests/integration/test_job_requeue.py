"""Running ended jobs again: requeue_job and bulk_requeue_jobs."""

from __future__ import annotations

import pytest

from pgwerk import JobNotFound, JobStatus, Werk
from tests.helpers import ChannelSpy, ago, make_job


def failed_job(app: Werk, queue: str = "default", function: str = "tests.jobs.fail",
               status: str = "failed") -> int:
    """A row as a worker leaves it after the last attempt failed."""
    return make_job(app, function, options={"_queue": queue}, status=status, attempts=1,
                    worker_id="w1", started_at=ago(120), completed_at=ago(60),
                    purge_at=ago(-3600), error="Traceback ...\nValueError: boom").id


def test_requeue_job__failed_job_runs_again(app: Werk) -> None:
    job_id = failed_job(app, queue="mail")
    with ChannelSpy(app.dsn, app._store.channel) as spy:
        assert app.requeue_job(job_id) is True
        assert spy.payloads() == ["q:mail"]
    job = app.get_job(job_id)
    assert job.status is JobStatus.Queued
    assert (job.attempts, job.max_attempts) == (1, 2)  # one more attempt
    assert (job.error, job.worker_id, job.started_at, job.completed_at) == (None, None, None, None)


def test_requeue_job__keeps_the_failed_attempt_in_the_history(app: Werk) -> None:
    job_id = failed_job(app)
    app.requeue_job(job_id)
    [run] = app.get_executions(job_id)
    assert (run.attempt, run.worker_id, run.outcome) == (1, "w1", "failed")
    assert run.error is not None and run.error.endswith("ValueError: boom")


@pytest.mark.parametrize("status", ["aborted", "expired"])
def test_requeue_job__aborted_or_expired_job_runs_again(app: Werk, status: str) -> None:
    job_id = failed_job(app, status=status)
    assert app.requeue_job(job_id)
    assert app.get_job(job_id).status is JobStatus.Queued


def test_requeue_job__never_started_job_has_no_history(app: Werk) -> None:
    job = make_job(app)
    app.cancel_job(job.id)
    assert app.requeue_job(job.id)
    assert app.get_executions(job.id) == []
    assert app.get_job(job.id).max_attempts == 1


@pytest.mark.parametrize("status", ["queued", "scheduled", "active", "complete"])
def test_requeue_job__job_that_did_not_fail_returns_false(app: Werk, status: str) -> None:
    job = make_job(app, status=status)
    assert app.requeue_job(job.id) is False
    assert app.get_job(job.id) == job


def test_requeue_job__missing_job_raises_job_not_found(app: Werk) -> None:
    with pytest.raises(JobNotFound):
        app.requeue_job(777777)


def test_bulk_requeue_jobs__by_queue_and_function(app: Werk) -> None:
    a_fail = failed_job(app, queue="a")
    a_other = failed_job(app, queue="a", function="tests.jobs.noop")
    b_fail = failed_job(app, queue="b")
    queued = make_job(app, options={"_queue": "a"}).id
    assert app.bulk_requeue_jobs(queue="a", function="tests.jobs.fail") == 1
    assert app.get_job(a_fail).status is JobStatus.Queued
    assert app.get_job(a_other).status is JobStatus.Failed
    assert app.bulk_requeue_jobs(queue="a") == 1
    assert app.get_job(a_other).status is JobStatus.Queued
    assert app.get_job(b_fail).status is JobStatus.Failed
    assert app.bulk_requeue_jobs() == 1
    assert app.get_job(b_fail).status is JobStatus.Queued
    assert app.bulk_requeue_jobs() == 0
    assert app.get_job(queued).status is JobStatus.Queued
