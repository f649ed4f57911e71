"""``_delay`` and ``_at``: a job never starts before its scheduled time, and starts soon
after it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pgwerk import JobStatus, Werk
from tests import worker_jobs
from tests.worker_support import running_worker, seconds_between, wait_status


def test_worker__never_starts_a_delayed_job_before_its_scheduled_time(app: Werk) -> None:
    with running_worker(app, concurrency=2):
        job = app.enqueue(worker_jobs.double, 1, _delay=1.0)
        assert job is not None and job.status is JobStatus.Scheduled
        done = wait_status(app, job, JobStatus.Complete, timeout=10)

    assert done.started_at is not None
    assert done.started_at >= done.scheduled_at
    assert seconds_between(done.enqueued_at, done.started_at) >= 1.0
    # Staged on time: within a poll interval or so, not a sweep later.
    assert seconds_between(done.scheduled_at, done.started_at) < 1.5


def test_worker__never_starts_a_job_before_its_at_time(app: Werk) -> None:
    with running_worker(app, concurrency=2):
        at = datetime.now(timezone.utc) + timedelta(seconds=1.2)
        job = app.enqueue(worker_jobs.double, 2, _at=at)
        soon = app.enqueue(worker_jobs.double, 3)
        assert job is not None and soon is not None
        assert job.scheduled_at == at
        first = wait_status(app, soon, JobStatus.Complete, timeout=10)
        # The immediate job has run; the scheduled one is still waiting its turn.
        assert app.get_job(job.id).status is JobStatus.Scheduled
        done = wait_status(app, job, JobStatus.Complete, timeout=10)

    assert done.started_at is not None and done.started_at >= at
    assert first.started_at is not None and first.started_at < done.started_at
    assert seconds_between(at, done.started_at) < 1.5


def test_worker__runs_delayed_jobs_in_the_order_they_fall_due(app: Werk) -> None:
    with running_worker(app, concurrency=1):
        late = app.enqueue(worker_jobs.double, 1, _delay=0.9)
        early = app.enqueue(worker_jobs.double, 2, _delay=0.4)
        assert late is not None and early is not None
        done_late = wait_status(app, late, JobStatus.Complete, timeout=10)
        done_early = app.get_job(early.id)

    assert done_early.status is JobStatus.Complete
    assert done_early.started_at is not None and done_late.started_at is not None
    assert done_early.started_at >= done_early.scheduled_at
    assert done_late.started_at >= done_late.scheduled_at
    assert done_early.started_at < done_late.started_at
