"""Notices about many jobs at once: PostgreSQL refuses a NOTIFY payload over 8,000 bytes,
so a statement that ends thousands of jobs must not put every id in one notice."""

from __future__ import annotations

from pgwerk import EnqueueParams, JobStatus, Werk
from pgwerk.store.notify import Waiters
from tests.helpers import ago, count_rows, make_job, query
from tests.worker_support import running_worker, wait_status

MANY = 3000


def enqueue_many_noops(app: Werk, count: int = MANY, **options: object) -> list[int]:
    jobs = app.enqueue_many([EnqueueParams("tests.jobs.noop", **options)  # type: ignore[arg-type]
                             for _ in range(count)])
    return [job.id for job in jobs if job is not None]


def test_sweep__expires_thousands_of_jobs_and_rescues_in_the_same_pass(app: Werk) -> None:
    ids = enqueue_many_noops(app, ttl=3600)
    query(app, "UPDATE {jobs} SET expires_at = now() - interval '1 second'")
    orphan = make_job(app, status="active", attempts=1, worker_id="gone.1.x",
                      started_at=ago(10), heartbeat_at=ago(10))

    counts = app.sweep()

    assert counts["expired"] == MANY
    assert counts["rescued"] == 1
    assert app.get_job(orphan.id).status is JobStatus.Queued
    assert app.get_job(ids[-1]).status is JobStatus.Expired


def test_bulk_cancel__cancels_thousands_and_wakes_waiters(app: Werk) -> None:
    ids = enqueue_many_noops(app)

    assert app.bulk_cancel_jobs() == MANY
    assert app.wait_for(ids[-1], timeout=5).status is JobStatus.Aborted


def test_worker__fails_two_thousand_dependents_and_goes_on(app: Werk) -> None:
    parent = app.enqueue("tests.jobs.fail", _retry=1)
    assert parent is not None
    children = enqueue_many_noops(app, 2000, depends_on=parent.id)
    assert count_rows(app) == 2001

    with running_worker(app) as worker:
        wait_status(app, parent, JobStatus.Failed)
        assert app.wait_for(children[-1], timeout=20).status is JobStatus.Failed
        later = app.enqueue("tests.jobs.add", 1, 2)
        assert later is not None
        assert app.wait_for(later, timeout=10).result == 3
        assert worker.processed == 2


def test_waiters__a_recheck_notice_wakes_every_waiter() -> None:
    waiters = Waiters()
    first, second = waiters.register([1, 2]), waiters.register([3])

    waiters.notify("d:*")

    assert first.is_set() and second.is_set()
