"""``Snooze``: a handler that raises or returns ``Snooze(delay)`` puts its job back to run
after the delay without spending an attempt, in every pool; the history says ``snoozed``;
no callback runs, dependents keep waiting, the group lets its next job run."""

from __future__ import annotations

import pytest

from pgwerk import JobStatus, Werk
from tests import worker_jobs
from tests.helpers import ago, query, set_columns
from tests.worker_support import create_events_table, events, running_worker, wait_status

POOLS = ["thread", "fork", "process"]


@pytest.mark.parametrize("how", ["raise", "return"])
def test_snooze__puts_the_job_back_for_the_delay_then_it_runs_again(app: Werk,
                                                                     how: str) -> None:
    with running_worker(app, concurrency=1):
        job = app.enqueue(worker_jobs.snooze, 1, 60, how)
        assert job is not None
        snoozed = wait_status(app, job, JobStatus.Scheduled)
        assert (snoozed.attempts, snoozed.snoozed, snoozed.error) == (1, 1, None)
        [row] = query(app, "SELECT extract(epoch FROM scheduled_at - now()) AS due_in "
                           "FROM {jobs} WHERE id = %s", [job.id])
        assert 50 < row["due_in"] <= 60
        set_columns(app, job.id, scheduled_at=ago(0))  # the delay is over
        done = wait_status(app, job, JobStatus.Complete)
    assert (done.result, done.attempts, done.snoozed) == ("ran after 1 snoozes", 2, 1)
    assert [(r.attempt, r.outcome) for r in app.get_executions(job.id)] == [
        (1, "snoozed"), (2, "complete")]


@pytest.mark.parametrize("pool", POOLS)
def test_snooze__spends_no_attempt(app: Werk, pool: str) -> None:
    with running_worker(app, pool=pool, concurrency=1):
        job = app.enqueue(worker_jobs.snooze, 2, 0, "return")  # max_attempts=1
        assert job is not None and job.max_attempts == 1
        done = wait_status(app, job, JobStatus.Complete, JobStatus.Failed)
    assert (done.status, done.result) == (JobStatus.Complete, "ran after 2 snoozes")
    assert (done.attempts, done.snoozed) == (3, 2)
    assert [r.outcome for r in app.get_executions(job.id)] == ["snoozed", "snoozed", "complete"]


def test_snooze__gives_no_extra_attempt_either(app: Werk) -> None:
    with running_worker(app, pool="process", concurrency=1):
        job = app.enqueue(worker_jobs.snooze_then_fail, 2)
        assert job is not None
        failed = wait_status(app, job, JobStatus.Failed)
    assert "failed after 2 snoozes" in (failed.error or "")
    assert [r.outcome for r in app.get_executions(job.id)] == ["snoozed", "snoozed", "failed"]


def test_snooze__frees_the_group_keeps_dependents_waiting_and_calls_no_callback(
        app: Werk) -> None:
    create_events_table(app)
    callbacks = {f"_on_{kind}": worker_jobs.callback_record
                 for kind in ("success", "failure", "stopped")}
    first = app.enqueue(worker_jobs.snooze, 1, 60, _group="g", **callbacks)
    assert first is not None
    dependent = app.enqueue(worker_jobs.double, 1, _depends_on=first)
    second = app.enqueue(worker_jobs.double, 2, _group="g")
    assert dependent is not None and second is not None
    # One thread: a callback runs in it right after its job, before the next job starts.
    with running_worker(app, concurrency=1):
        wait_status(app, second, JobStatus.Complete)  # its group was free meanwhile
        assert app.get_job(first.id).status is JobStatus.Scheduled
        assert app.get_job(dependent.id).status is JobStatus.Waiting
        assert events(app, "callback") == []
        set_columns(app, first.id, scheduled_at=ago(0))
        wait_status(app, dependent, JobStatus.Complete)
    assert [e["data"]["status"] for e in events(app, "callback")] == ["complete"]


def test_snooze__a_retried_job_keeps_its_retry_budget(app: Werk) -> None:
    # Two real attempts allowed: snoozes in between do not use them up.
    with running_worker(app, concurrency=1):
        job = app.enqueue(worker_jobs.snooze_then_fail, 1, _retry=2)
        assert job is not None
        failed = wait_status(app, job, JobStatus.Failed)
    outcomes = [r.outcome for r in app.get_executions(job.id)]
    assert outcomes == ["snoozed", "failed", "failed"]
    assert (failed.attempts, failed.snoozed) == (3, 1)
    # Requeued by hand, it gets exactly one more real attempt.
    assert app.requeue_job(job.id)
    again = app.get_job(job.id)
    assert (again.status, again.max_attempts) == (JobStatus.Queued, 3)
