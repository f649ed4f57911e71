"""Removing rows: delete_job, purge_jobs, truncate; and touch_job."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pgwerk import JobNotFound, Werk
from tests import jobs
from tests.helpers import ago, count_rows, make_job, query


def test_delete_job__removes_the_row_and_its_links(app: Werk) -> None:
    upstream = make_job(app)
    job = app.enqueue(jobs.noop, _depends_on=upstream)
    assert job is not None
    assert app.delete_job(job.id) is True
    with pytest.raises(JobNotFound):
        app.get_job(job.id)
    assert count_rows(app, "job_deps") == 0
    assert app.delete_job(job.id) is False


def test_delete_job__works_in_any_state_but_running(app: Werk) -> None:
    for status in ("queued", "scheduled", "waiting", "complete", "failed", "aborted", "expired"):
        assert app.delete_job(make_job(app, status=status).id), status
    assert count_rows(app) == 0


def test_purge_jobs__deletes_ended_jobs_older_than_the_cutoff(app: Werk) -> None:
    old = make_job(app, status="complete", completed_at=ago(7200))
    recent = make_job(app, status="complete", completed_at=ago(10))
    old_failure = make_job(app, status="failed", completed_at=ago(7200))
    queued = make_job(app)
    assert app.purge_jobs(["complete"], older_than=3600) == 1
    assert [j.id for j in app.list_jobs()] == [queued.id, old_failure.id, recent.id]
    assert old.id not in [j.id for j in app.list_jobs()]


def test_purge_jobs__older_than_accepts_timedelta_and_defaults_to_complete(app: Werk) -> None:
    make_job(app, status="complete", completed_at=ago(120))
    failed = make_job(app, status="failed", completed_at=ago(120))
    assert app.purge_jobs(older_than=timedelta(minutes=1)) == 1
    assert [j.id for j in app.list_jobs()] == [failed.id]


def test_purge_jobs__several_statuses(app: Werk) -> None:
    for status in ("failed", "aborted", "expired", "complete"):
        make_job(app, status=status, completed_at=ago(5))
    assert app.purge_jobs(["failed", "aborted", "expired"]) == 3
    assert [j.status.value for j in app.list_jobs()] == ["complete"]


@pytest.mark.parametrize("status", ["queued", "active", "nonsense"])
def test_purge_jobs__refuses_statuses_that_are_not_ends(app: Werk, status: str) -> None:
    make_job(app)
    with pytest.raises(ValueError, match="not an end status"):
        app.purge_jobs([status])
    assert count_rows(app) == 1


def test_purge_jobs__negative_older_than_is_rejected(app: Werk) -> None:
    with pytest.raises(ValueError, match="older_than"):
        app.purge_jobs(older_than=-1)


def test_truncate__empties_every_table_of_the_app(make_app: object, app: Werk) -> None:
    other = make_app().connect()  # type: ignore[operator]
    kept = other.enqueue(jobs.noop)
    make_job(app)
    app.enqueue(jobs.noop, _depends_on=make_job(app))
    query(app, "INSERT INTO {workers} (id, hostname, pid, queues, concurrency, pool)"
               " VALUES ('w1', 'h', 1, ARRAY['default'], 1, 'thread')")
    app.truncate()
    for table in ("jobs", "job_deps", "workers", "executions"):
        assert count_rows(app, table) == 0
    assert other.list_jobs() == [kept]  # another app's schema is untouched


def test_touch_job__renews_the_heartbeat(app: Werk) -> None:
    job = make_job(app, status="active", attempts=1, worker_id="w", heartbeat_at=ago(600))
    assert app.touch_job(job.id) is True
    touched = app.get_job(job.id)
    assert touched.heartbeat_at is not None and job.heartbeat_at is not None
    assert touched.heartbeat_at - job.heartbeat_at >= timedelta(seconds=599)


def test_touch_job__missing_job_returns_false(app: Werk) -> None:
    assert app.touch_job(123456) is False
