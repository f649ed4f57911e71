"""Reading jobs without a worker: get_job, list_jobs, get_job_dependencies, queue_stats,
get_executions, list_workers."""

from __future__ import annotations

import pytest

from pgwerk import Dependency, Execution, JobNotFound, JobStatus, Werk
from tests import jobs
from tests.helpers import ago, make_job, query


def test_get_job__returns_the_stored_job(app: Werk) -> None:
    job = app.enqueue(jobs.add, 1, 2)
    assert job is not None
    assert app.get_job(job.id) == job


def test_get_job__missing_id_raises_job_not_found(app: Werk) -> None:
    with pytest.raises(JobNotFound) as info:
        app.get_job(424242)
    assert info.value.job_id == 424242
    assert "424242" in str(info.value)
    assert isinstance(info.value, LookupError)


def test_get_job__rejects_what_is_not_an_id(app: Werk) -> None:
    with pytest.raises(TypeError, match="job id"):
        app.get_job(1.0)  # type: ignore[arg-type]


def test_get_job__shows_result_and_error_of_ended_jobs(app: Werk) -> None:
    done = make_job(app, status="complete", result=app.serializer.dumps({"total": 3}),
                    attempts=1, started_at=ago(2), completed_at=ago(1), worker_id="w1")
    failed = make_job(app, status="failed", error="Traceback ...\nValueError: boom", attempts=1)
    assert done.result == {"total": 3}
    assert (done.worker_id, done.attempts, done.is_terminal) == ("w1", 1, True)
    assert failed.error is not None and failed.error.endswith("ValueError: boom")


def test_get_job__undecodable_payload_is_reported_not_raised(app: Werk) -> None:
    job = make_job(app, payload="{not json")
    assert job.payload_error is not None
    assert "cannot be decoded" in job.payload_error


def test_list_jobs__newest_first(app: Werk) -> None:
    ids = [make_job(app).id for _ in range(3)]
    assert [j.id for j in app.list_jobs()] == ids[::-1]


def test_list_jobs__filters_by_queue_status_and_function(app: Werk) -> None:
    a = make_job(app, "tests.jobs.add", args=(1, 2), options={"_queue": "a"})
    b = make_job(app, "tests.jobs.noop", options={"_queue": "b"})
    c = make_job(app, "tests.jobs.noop", options={"_queue": "a"}, status="failed")
    assert [j.id for j in app.list_jobs(queue="a")] == [c.id, a.id]
    assert [j.id for j in app.list_jobs(status="failed")] == [c.id]
    assert [j.id for j in app.list_jobs(status=JobStatus.Queued)] == [b.id, a.id]
    assert [j.id for j in app.list_jobs(function="tests.jobs.noop")] == [c.id, b.id]
    assert [j.id for j in app.list_jobs(function=jobs.add)] == [a.id]
    assert [j.id for j in app.list_jobs(queue="a", status="queued")] == [a.id]
    assert app.list_jobs(queue="nowhere") == []


def test_list_jobs__pages_with_limit_and_offset(app: Werk) -> None:
    ids = [make_job(app).id for _ in range(7)][::-1]
    pages = [[j.id for j in app.list_jobs(limit=3, offset=o)] for o in (0, 3, 6, 9)]
    assert pages == [ids[0:3], ids[3:6], ids[6:7], []]


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"status": "running"}, "status must be one of"),
    ({"limit": 0}, "limit must be >= 1"),
    ({"offset": -1}, "offset must be >= 0"),
    ({"offset": 2**63}, "offset must be >= 0 and <= 9223372036854775807"),
])
def test_list_jobs__bad_filter_is_a_value_error(app: Werk, kwargs: dict[str, object],
                                                words: str) -> None:
    with pytest.raises(ValueError, match=words):
        app.list_jobs(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs", [{"limit": "10"}, {"offset": True}])
def test_list_jobs__limit_or_offset_that_is_not_an_int_is_a_type_error(
        app: Werk, kwargs: dict[str, object]) -> None:
    with pytest.raises(TypeError, match=f"{next(iter(kwargs))} must be an int"):
        app.list_jobs(**kwargs)  # type: ignore[arg-type]


def test_get_job_dependencies__lists_upstream_jobs_with_their_status(app: Werk) -> None:
    a = make_job(app, status="complete")
    b = make_job(app)
    job = app.enqueue(jobs.noop, _depends_on=[a, Dependency(b, allow_failure=True)])
    assert job is not None
    assert app.get_job_dependencies(job.id) == [
        {"id": a.id, "allow_failure": False, "status": "complete"},
        {"id": b.id, "allow_failure": True, "status": "queued"},
    ]


def test_get_job_dependencies__deleted_upstream_has_no_status(app: Werk) -> None:
    a = make_job(app)
    job = app.enqueue(jobs.noop, _depends_on=a)
    assert job is not None
    app.delete_job(a.id)
    assert app.get_job_dependencies(job.id) == [{"id": a.id, "allow_failure": False,
                                                 "status": None}]


def test_get_job_dependencies__none_for_an_independent_job(app: Werk) -> None:
    assert app.get_job_dependencies(make_job(app).id) == []


def test_get_job_dependencies__missing_job_raises_job_not_found(app: Werk) -> None:
    with pytest.raises(JobNotFound):
        app.get_job_dependencies(99999)


def test_queue_stats__counts_by_queue_and_status(app: Werk) -> None:
    assert app.queue_stats() == {}
    make_job(app, options={"_queue": "a"})
    make_job(app, options={"_queue": "a"})
    make_job(app, options={"_queue": "a", "_delay": 60})
    make_job(app, options={"_queue": "b"}, status="failed")
    stats = app.queue_stats()
    assert stats["a"]["oldest_queued_age"] >= 0
    assert stats == {"a": {"queued": 2, "scheduled": 1,
                           "oldest_queued_age": stats["a"]["oldest_queued_age"]},
                     "b": {"failed": 1, "oldest_queued_age": 0.0}}


def test_get_executions__none_before_the_first_attempt(app: Werk) -> None:
    assert app.get_executions(make_job(app).id) == []


def test_get_executions__running_attempt_is_shown_as_active(app: Werk) -> None:
    job = make_job(app, status="active", attempts=1, worker_id="w1", started_at=ago(5))
    [run] = app.get_executions(job.id)
    assert run == Execution(job_id=job.id, attempt=1, worker_id="w1", started_at=job.started_at,
                            finished_at=None, outcome="active", error=None)


def test_get_executions__one_record_per_attempt_oldest_first(app: Werk) -> None:
    job = make_job(app, status="failed", attempts=2, worker_id="w2", started_at=ago(10),
                   completed_at=ago(9), error="second")
    query(app, "INSERT INTO {executions} (job_id, attempt, worker_id, started_at, finished_at,"
               " outcome, error) VALUES (%s, 1, 'w1', now() - interval '20 s',"
               " now() - interval '19 s', 'failed', 'first')", [job.id])
    runs = app.get_executions(job.id)
    assert [(r.attempt, r.worker_id, r.outcome, r.error) for r in runs] == [
        (1, "w1", "failed", "first"), (2, "w2", "failed", "second")]


def test_get_executions__missing_job_raises_job_not_found(app: Werk) -> None:
    with pytest.raises(JobNotFound):
        app.get_executions(99999)


def test_list_workers__shows_registered_workers(app: Werk) -> None:
    assert app.list_workers() == []
    query(app, "INSERT INTO {workers} (id, hostname, pid, queues, concurrency, pool)"
               " VALUES ('w1', 'host', 123, ARRAY['a', 'b'], 4, 'thread')")
    make_job(app, status="active", worker_id="w1", attempts=1, started_at=ago(1))
    [worker] = app.list_workers()
    assert (worker.id, worker.hostname, worker.pid, worker.queues) == ("w1", "host", 123,
                                                                       ("a", "b"))
    assert (worker.concurrency, worker.pool, worker.active_jobs) == (4, "thread", 1)
    assert worker.heartbeat_age >= 0 and not worker.stopping
