"""Managing jobs around a running worker: ``cancel_job`` (a queued job never runs),
``abort_job`` (a running job is stopped: ``JobAborted`` in its thread, or its child killed),
``requeue_job`` and ``get_executions``."""

from __future__ import annotations

import os
from itertools import pairwise

import pytest

from pgwerk import Callback, JobStatus, Werk
from tests import worker_jobs
from tests.helpers import eventually
from tests.worker_support import (
    create_events_table,
    events,
    run_burst,
    running_worker,
    seconds_between,
    wait_status,
)


@pytest.fixture(autouse=True)
def _events(app: Werk) -> None:
    create_events_table(app)


def test_cancel_job__a_cancelled_job_never_runs(app: Werk) -> None:
    cancelled = app.enqueue(worker_jobs.record, label="cancelled")
    scheduled = app.enqueue(worker_jobs.record, label="scheduled", _delay=0.2)
    assert cancelled is not None and scheduled is not None
    assert app.cancel_job(cancelled.id) and app.cancel_job(scheduled.id)
    # Due after the cancelled ones: once it ran, the worker had its chance at them.
    later = app.enqueue(worker_jobs.record, label="later", _delay=0.4)
    assert later is not None

    with running_worker(app):
        wait_status(app, later, JobStatus.Complete)

    for job in (cancelled, scheduled):
        ended = app.get_job(job.id)
        assert ended.status is JobStatus.Aborted
        assert ended.attempts == 0 and ended.started_at is None
    assert [e["label"] for e in events(app)] == ["later"]
    assert app.cancel_job(later.id) is False  # already ended


def test_abort_job__raises_job_aborted_into_a_running_thread(app: Werk) -> None:
    with running_worker(app, concurrency=2):
        job = app.enqueue(worker_jobs.busy_loop, seconds=30, _retry=3,
                          _on_stopped=Callback(worker_jobs.callback_record, timeout=5))
        assert job is not None
        eventually(lambda: events(app, "busy-start", job.id), timeout=10)
        assert app.abort_job(job.id) is True
        aborted = wait_status(app, job, JobStatus.Aborted, timeout=10)
        [callback] = eventually(lambda: events(app, "callback", job.id), timeout=10)
        # The worker goes on.
        after = app.enqueue(worker_jobs.double, 1)
        assert after is not None
        assert wait_status(app, after, JobStatus.Complete).result == 2

    assert "JobAborted" in (aborted.error or "")
    assert aborted.attempts == 1  # aborting is not a failure: no retry
    assert events(app, "busy-end", job.id) == []
    assert callback["data"]["status"] == "aborted"
    assert app.abort_job(job.id) is False  # already ended


def test_abort_job__kills_the_child_of_a_fork_pool_job(app: Werk) -> None:
    with running_worker(app, pool="fork", concurrency=2):
        job = app.enqueue(worker_jobs.sleep_in_c, seconds=3600,
                          _on_stopped=worker_jobs.callback_record)
        assert job is not None
        [start] = eventually(lambda: events(app, "sleep-start", job.id), timeout=10)
        assert app.abort_job(job.id) is True
        aborted = wait_status(app, job, JobStatus.Aborted, timeout=10)
        [callback] = eventually(lambda: events(app, "callback", job.id), timeout=10)

    assert "JobAborted" in (aborted.error or "")
    assert callback["data"]["status"] == "aborted"
    with pytest.raises(ProcessLookupError):  # the child was killed and reaped
        os.kill(start["pid"], 0)


def test_abort_job__cancels_a_job_that_has_not_started(app: Werk) -> None:
    job = app.enqueue(worker_jobs.record, _delay=60)
    assert job is not None
    assert app.abort_job(job.id) is True
    assert app.get_job(job.id).status is JobStatus.Aborted


def test_requeue_job__runs_a_failed_job_again_with_its_history_kept(app: Werk) -> None:
    job = app.enqueue(worker_jobs.fail_before_attempt, succeed_on=2)
    assert job is not None
    run_burst(app)
    failed = app.get_job(job.id)
    assert failed.status is JobStatus.Failed
    assert app.requeue_job(job.id) is True
    assert app.get_job(job.id).status is JobStatus.Queued

    run_burst(app)

    done = app.get_job(job.id)
    assert (done.status, done.result, done.attempts) == (JobStatus.Complete, 2, 2)
    runs = app.get_executions(job.id)
    assert [(r.attempt, r.outcome) for r in runs] == [(1, "failed"), (2, "complete")]
    assert "not yet: attempt 1" in (runs[0].error or "")
    assert app.requeue_job(job.id) is False  # complete jobs are not requeued


def test_requeue_job__runs_an_aborted_job_again(app: Werk) -> None:
    job = app.enqueue(worker_jobs.double, 4)
    assert job is not None
    assert app.cancel_job(job.id)
    assert app.requeue_job(job.id) is True

    run_burst(app)

    assert app.get_job(job.id).result == 8


def test_get_executions__one_record_per_attempt_with_worker_times_and_outcome(app: Werk) -> None:
    job = app.enqueue(worker_jobs.fail_before_attempt, succeed_on=3, _retry=3)
    assert job is not None
    worker = run_burst(app)

    runs = app.get_executions(job.id)
    assert [r.attempt for r in runs] == [1, 2, 3]
    assert [r.outcome for r in runs] == ["failed", "failed", "complete"]
    assert all(r.job_id == job.id and r.worker_id == worker.id for r in runs)
    for run in runs:
        assert run.started_at is not None and run.finished_at is not None
        assert run.started_at <= run.finished_at
    for earlier, later in pairwise(runs):
        # One after the other. The times are each statement's now(), i.e. when its
        # transaction began, not when it saw the data: a claim that began a few ms before
        # the previous outcome was written (and saw it once planned) is not a bug.
        assert seconds_between(earlier.finished_at, later.started_at) > -0.1
        assert earlier.started_at < later.started_at  # type: ignore[operator]
