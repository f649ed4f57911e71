"""The admin API: finding jobs by any filter, counting them, acting on many at once,
queue latency and throughput."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from pgwerk import JobStatus, Werk, WerkError
from tests import jobs
from tests.helpers import ago, count_rows, make_job, query


def ids(found: list[Any]) -> list[int]:
    return [j.id for j in found]


# -- list_jobs / count_jobs -------------------------------------------------------------


def test_list_jobs__filters_by_key_exact_and_by_prefix(app: Werk) -> None:
    first = make_job(app, options={"_key": "cron:nightly:2026-01-01T00:00"})
    second = make_job(app, options={"_key": "cron:nightly:2026-01-02T00:00"})
    make_job(app, options={"_key": "cron:hourly:2026-01-01T00:00"})
    make_job(app)
    assert ids(app.list_jobs(key="cron:nightly:2026-01-01T00:00")) == [first.id]
    assert ids(app.list_jobs(key="cron:nightly:*")) == [second.id, first.id]
    assert app.count_jobs(key="cron:*") == 3
    assert app.list_jobs(key="cron:nightly:") == []


def test_list_jobs__search_matches_argument_text_case_insensitively(app: Werk) -> None:
    wanted = app.enqueue(jobs.echo, "Alice@Example.com", note="x")
    app.enqueue(jobs.echo, "bob@example.com")
    assert wanted is not None
    assert ids(app.list_jobs(search="alice@example")) == [wanted.id]
    assert ids(app.list_jobs(search="note")) == [wanted.id]  # keyword names too
    assert app.count_jobs(search="example.com") == 2
    assert app.count_jobs(search="100%") == 0  # no pattern characters


def test_list_jobs__by_id_as_int_or_decimal_string(app: Werk) -> None:
    job = make_job(app)
    make_job(app)
    assert ids(app.list_jobs(job_id=job.id)) == [job.id]
    assert ids(app.list_jobs(job_id=str(job.id))) == [job.id]
    assert app.list_jobs(job_id=10**30) == []


def test_list_jobs__older_than_counts_from_the_end_or_the_enqueueing(app: Werk) -> None:
    old_end = make_job(app, status="failed", completed_at=ago(7200))
    make_job(app, status="failed", completed_at=ago(10))
    old_queued = make_job(app, enqueued_at=ago(7200))
    assert ids(app.list_jobs(older_than=3600)) == [old_queued.id, old_end.id]
    assert app.count_jobs(status="failed", older_than=timedelta(hours=1)) == 1


def test_count_jobs__is_the_total_over_all_pages(app: Werk) -> None:
    for _ in range(7):
        make_job(app, options={"_queue": "a"})
    make_job(app, options={"_queue": "b"})
    assert len(app.list_jobs(queue="a", limit=3)) == 3
    assert app.count_jobs(queue="a") == 7
    assert app.count_jobs() == 8
    assert app.count_jobs(status="failed") == 0


def test_list_jobs__default_page_is_fifty_and_old_call_forms_work(app: Werk) -> None:
    for _ in range(55):
        make_job(app)
    assert len(app.list_jobs()) == 50
    assert len(app.list_jobs(None, "queued", "tests.jobs.noop", limit=10, offset=50)) == 5


@pytest.mark.parametrize(("kwargs", "error", "names"), [
    ({"job_id": "12a"}, ValueError, "job_id"),
    ({"job_id": -1}, ValueError, "job_id"),
    ({"key": 5}, TypeError, "key"),
    ({"search": b"x"}, TypeError, "search"),
    ({"queue": 1}, TypeError, "queue"),
    ({"older_than": -5}, ValueError, "older_than"),
    ({"older_than": "1h"}, TypeError, "older_than"),
    ({"older_than": 1e300}, ValueError, "older_than"),
    ({"status": "done"}, ValueError, "status"),
    ({"limit": 0}, ValueError, "limit"),
    ({"limit": 10_001}, ValueError, "limit"),
])
def test_list_and_count__bad_filters_are_clear_errors(app: Werk, kwargs: dict[str, Any],
                                                      error: type[Exception], names: str) -> None:
    with pytest.raises(error, match=names):
        app.list_jobs(**kwargs)
    if "limit" not in kwargs:
        with pytest.raises(error, match=names):
            app.count_jobs(**kwargs)


# -- bulk_requeue_jobs --------------------------------------------------------------------


def test_bulk_requeue_jobs__dry_run_counts_and_changes_nothing(app: Werk) -> None:
    failed = [make_job(app, status="failed", attempts=1, completed_at=ago(1)) for _ in range(3)]
    assert app.bulk_requeue_jobs(dry_run=True) == 3
    assert all(app.get_job(j.id).status is JobStatus.Failed for j in failed)
    assert app.bulk_requeue_jobs() == 3
    assert all(app.get_job(j.id).status is JobStatus.Queued for j in failed)


def test_bulk_requeue_jobs__by_status_and_age(app: Werk) -> None:
    old_failed = make_job(app, status="failed", attempts=1, completed_at=ago(7200))
    new_failed = make_job(app, status="failed", attempts=1, completed_at=ago(5))
    old_expired = make_job(app, status="expired", completed_at=ago(7200))
    assert app.bulk_requeue_jobs(statuses=["failed"], older_than=3600) == 1
    assert app.get_job(old_failed.id).status is JobStatus.Queued
    assert app.get_job(new_failed.id).status is JobStatus.Failed
    assert app.get_job(old_expired.id).status is JobStatus.Expired
    assert app.bulk_requeue_jobs(statuses="expired") == 1


@pytest.mark.parametrize("statuses", [["complete"], ["active"], ["nope"], []])
def test_bulk_requeue_jobs__refuses_other_statuses(app: Werk, statuses: list[str]) -> None:
    make_job(app, status="complete", completed_at=ago(1))
    with pytest.raises(ValueError, match="failed"):
        app.bulk_requeue_jobs(statuses=statuses)
    assert app.count_jobs(status="complete") == 1


# -- bulk_cancel_jobs ---------------------------------------------------------------------


def test_bulk_cancel_jobs__by_function_with_dry_run(app: Werk) -> None:
    adds = [app.enqueue(jobs.add, 1, 2), app.enqueue(jobs.add, 3, 4, _delay=60)]
    other = make_job(app)
    running = make_job(app, "tests.jobs.add", status="active", attempts=1, worker_id="w")
    assert app.bulk_cancel_jobs(function=jobs.add, dry_run=True) == 2
    assert app.count_jobs(status="aborted") == 0
    assert app.bulk_cancel_jobs(function="tests.jobs.add") == 2
    assert [app.get_job(j.id).status for j in adds if j] == [JobStatus.Aborted] * 2
    assert app.get_job(other.id).status is JobStatus.Queued
    assert app.get_job(running.id).status is JobStatus.Active


# -- purge_jobs ---------------------------------------------------------------------------


def test_purge_jobs__by_queue_and_function_with_dry_run(app: Werk) -> None:
    a = make_job(app, options={"_queue": "a"}, status="complete", completed_at=ago(100))
    b = make_job(app, options={"_queue": "b"}, status="complete", completed_at=ago(100))
    add = make_job(app, "tests.jobs.add", options={"_queue": "a"}, status="complete",
                   completed_at=ago(100))
    assert app.purge_jobs(queue="a", dry_run=True) == 2
    assert count_rows(app) == 3
    assert app.purge_jobs(["complete"], queue="a", function="tests.jobs.add") == 1
    assert ids(app.list_jobs()) == [b.id, a.id]
    assert add.id not in ids(app.list_jobs())
    assert app.purge_jobs(older_than=50.0) == 2


def test_purge_jobs__never_deletes_running_jobs(app: Werk) -> None:
    running = make_job(app, status="active", attempts=1, worker_id="w", completed_at=ago(99))
    with pytest.raises(ValueError, match="active"):
        app.purge_jobs(["complete", "active"])
    assert app.purge_jobs(["complete", "failed", "aborted", "expired"]) == 0
    assert app.get_job(running.id).status is JobStatus.Active


# -- delete_job ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["active", "aborting"])
def test_delete_job__refuses_a_running_job(app: Werk, status: str) -> None:
    job = make_job(app, status=status, attempts=1, worker_id="w")
    with pytest.raises(WerkError, match=f"job {job.id} is {status}.*abort"):
        app.delete_job(job.id)
    assert app.get_job(job.id).status.value == status


# -- queue_stats and throughput -----------------------------------------------------------


def test_queue_stats__oldest_runnable_job_age_per_queue(app: Werk) -> None:
    make_job(app, options={"_queue": "slow"}, scheduled_at=ago(120))
    make_job(app, options={"_queue": "slow"})
    make_job(app, options={"_queue": "slow", "_delay": 3600})  # not runnable yet
    make_job(app, options={"_queue": "due", "_delay": 3600}, scheduled_at=ago(30))
    make_job(app, options={"_queue": "idle"}, status="complete")
    stats = app.queue_stats()
    assert 119 < stats["slow"]["oldest_queued_age"] < 180
    assert stats["slow"]["queued"] == 2 and stats["slow"]["scheduled"] == 1
    assert 29 < stats["due"]["oldest_queued_age"] < 90
    assert stats["idle"] == {"complete": 1, "oldest_queued_age": 0.0}


def test_throughput__per_minute_zero_filled_from_jobs_and_executions(app: Werk) -> None:
    make_job(app, status="complete", attempts=1, started_at=ago(400), completed_at=ago(300))
    make_job(app, status="complete", attempts=1, started_at=ago(400), completed_at=ago(300))
    retried = make_job(app, status="failed", attempts=2, started_at=ago(1),
                       completed_at=ago(0))
    query(app, "INSERT INTO {executions} (job_id, attempt, started_at, finished_at, outcome) "
               "VALUES (%s, 1, now() - interval '301 seconds', now() - interval '300 seconds',"
               " 'failed')", (retried.id,))
    make_job(app, status="aborted", completed_at=ago(0))  # cancelled: never an attempt
    points = app.throughput(minutes=10)
    assert len(points) == 10
    assert points[0]["minute"] < points[-1]["minute"]
    assert all(p["minute"].second == 0 for p in points)
    assert sum(p["processed"] for p in points) == 4
    assert sum(p["failed"] for p in points) == 2
    assert points[-1]["processed"] + points[-2]["processed"] == 1  # the retried job's end
    assert max(p["processed"] for p in points) == 3  # five minutes ago: 2 complete, 1 failed
    assert app.throughput(minutes=1)[0]["minute"] == points[-1]["minute"]


@pytest.mark.parametrize("minutes", [0, 1441, 1.5, True, "60"])
def test_throughput__bad_window_is_a_value_error(app: Werk, minutes: Any) -> None:
    with pytest.raises(ValueError, match="minutes"):
        app.throughput(minutes=minutes)
