"""Stopping jobs without a worker: cancel_job, abort_job, bulk_cancel_jobs."""

from __future__ import annotations

import pytest

from pgwerk import Dependency, JobNotFound, JobStatus, Werk
from tests import jobs
from tests.helpers import ChannelSpy, ago, make_job


@pytest.mark.parametrize("options", [{}, {"_delay": 60}], ids=["queued", "scheduled"])
def test_cancel_job__unstarted_job_ends_aborted(app: Werk, options: dict[str, object]) -> None:
    job = make_job(app, options=options)
    with ChannelSpy(app.dsn, app._store.channel) as spy:
        assert app.cancel_job(job.id) is True
        assert spy.payloads() == [f"d:{job.id}"]  # wakes callers of wait_for
    cancelled = app.get_job(job.id)
    assert cancelled.status is JobStatus.Aborted
    assert cancelled.completed_at is not None
    assert cancelled.error == "cancelled before it started"
    assert cancelled.attempts == 0


def test_cancel_job__waiting_job_ends_aborted(app: Werk) -> None:
    job = app.enqueue(jobs.noop, _depends_on=make_job(app))
    assert job is not None
    assert app.cancel_job(job.id)
    assert app.get_job(job.id).status is JobStatus.Aborted


def test_cancel_job__accepts_a_job(app: Werk) -> None:
    job = make_job(app)
    assert app.cancel_job(job)  # type: ignore[arg-type]
    assert app.get_job(job.id).status is JobStatus.Aborted


@pytest.mark.parametrize("status", ["active", "aborting", "complete", "failed", "aborted",
                                    "expired"])
def test_cancel_job__started_or_ended_job_is_left_alone(app: Werk, status: str) -> None:
    job = make_job(app, status=status, attempts=1, worker_id="w", started_at=ago(1))
    assert app.cancel_job(job.id) is False
    assert app.get_job(job.id) == job


def test_cancel_job__missing_job_raises_job_not_found(app: Werk) -> None:
    with pytest.raises(JobNotFound):
        app.cancel_job(31337)


def test_cancel_job__fails_dependents_down_the_chain(app: Werk) -> None:
    first = make_job(app)
    second = app.enqueue(jobs.noop, _depends_on=first)
    third = app.enqueue(jobs.noop, _depends_on=second)
    tolerant = app.enqueue(jobs.noop, _depends_on=Dependency(first, allow_failure=True))
    assert second is not None and third is not None and tolerant is not None
    assert app.cancel_job(first.id)
    for job in (second, third):
        failed = app.get_job(job.id)
        assert failed.status is JobStatus.Failed
        assert failed.error is not None and "DependencyFailed" in failed.error
    assert app.get_job(tolerant.id).status is JobStatus.Queued


def test_abort_job__unstarted_job_is_cancelled(app: Werk) -> None:
    job = make_job(app)
    assert app.abort_job(job.id) is True
    assert app.get_job(job.id).status is JobStatus.Aborted


def test_abort_job__active_job_is_asked_to_stop(app: Werk) -> None:
    job = make_job(app, status="active", attempts=1, worker_id="w1", started_at=ago(1))
    with ChannelSpy(app.dsn, app._store.channel) as spy:
        assert app.abort_job(job.id) is True
        assert spy.payloads() == [f"a:{job.id}"]  # tells the worker running it
    assert app.get_job(job.id).status is JobStatus.Aborting


@pytest.mark.parametrize("status", ["complete", "failed", "aborted", "expired"])
def test_abort_job__ended_job_returns_false(app: Werk, status: str) -> None:
    job = make_job(app, status=status)
    assert app.abort_job(job.id) is False
    assert app.get_job(job.id).status.value == status


def test_abort_job__missing_job_raises_job_not_found(app: Werk) -> None:
    with pytest.raises(JobNotFound):
        app.abort_job(31337)


def test_bulk_cancel_jobs__cancels_unstarted_jobs_of_a_queue(app: Werk) -> None:
    a1 = make_job(app, options={"_queue": "a"})
    a2 = make_job(app, options={"_queue": "a", "_delay": 60})
    running = make_job(app, options={"_queue": "a"}, status="active", attempts=1, worker_id="w")
    b = make_job(app, options={"_queue": "b"})
    assert app.bulk_cancel_jobs(queue="a") == 2
    assert [app.get_job(j.id).status for j in (a1, a2, running, b)] == [
        JobStatus.Aborted, JobStatus.Aborted, JobStatus.Active, JobStatus.Queued]
    assert app.bulk_cancel_jobs(queue="a") == 0


def test_bulk_cancel_jobs__without_queue_cancels_everywhere(app: Werk) -> None:
    make_job(app, options={"_queue": "a"})
    make_job(app, options={"_queue": "b"})
    assert app.bulk_cancel_jobs() == 2
    assert app.queue_stats() == {"a": {"aborted": 1, "oldest_queued_age": 0.0},
                                 "b": {"aborted": 1, "oldest_queued_age": 0.0}}


def test_cancelled_and_aborted__an_operator_tells_them_apart(app: Werk) -> None:
    never_ran = app.enqueue(jobs.noop)
    assert never_ran is not None and app.cancel_job(never_ran.id)
    stopped = make_job(app, status="aborted", attempts=1, error="JobAborted: aborted on request")

    assert app.get_job(never_ran.id).status is JobStatus.Aborted  # one status, as documented
    assert app.get_job(never_ran.id).state == "cancelled"
    assert app.get_job(stopped.id).state == "aborted"
