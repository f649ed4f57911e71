"""Every option of ENQUEUE.md is stored on the row and visible on the returned Job and on
``get_job``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from pgwerk import Callback, Job, JobStatus, Repeat, Retry, Werk
from pgwerk.job import CallbackRef
from tests import jobs
from tests.helpers import query


def enqueue_and_fetch(app: Werk, func: Any = jobs.noop, *args: Any,
                      **kwargs: Any) -> tuple[Job, dict[str, Any]]:
    """Enqueue, check the returned Job equals what ``get_job`` reads back, return both the
    Job and the raw row."""
    job = app.enqueue(func, *args, **kwargs)
    assert job is not None
    assert app.get_job(job.id) == job
    [row] = query(app, "SELECT * FROM {jobs} WHERE id = %s", [job.id])
    return job, row


def test_enqueue__function_and_payload(app: Werk) -> None:
    job, row = enqueue_and_fetch(app, jobs.add, 1, b=2)
    assert job.function == row["function"] == "tests.jobs.add"
    assert job.args == (1,)
    assert job.kwargs == {"b": 2}
    assert job.status is JobStatus.Queued
    assert row["status"] == "queued"
    assert job.attempts == 0


def test_enqueue__dotted_path_string_needs_no_import(app: Werk) -> None:
    job, row = enqueue_and_fetch(app, "myapp.tasks.cleanup", days=3)
    assert job.function == row["function"] == "myapp.tasks.cleanup"
    assert job.kwargs == {"days": 3}


def test_enqueue__defaults(app: Werk) -> None:
    job, row = enqueue_and_fetch(app)
    assert (job.queue, job.priority) == ("default", 0)
    assert job.max_attempts == row["max_attempts"] == 1
    assert job.retry_intervals == ()
    assert job.scheduled_at == job.enqueued_at
    assert job.expires_at is None and job.key is None and job.group is None
    assert job.meta == {}
    assert job.failure_mode == "hold"
    assert (job.result_ttl, job.failure_ttl) == (app.config.result_ttl, app.config.failure_ttl)
    assert job.on_success is None and job.repeat is None


def test_enqueue__queue_and_priority(app: Werk) -> None:
    job, row = enqueue_and_fetch(app, _queue="high", _priority=10)
    assert job.queue == row["queue"] == "high"
    assert job.priority == row["priority"] == 10


def test_enqueue__delay_makes_it_scheduled_in_the_future(app: Werk) -> None:
    job, row = enqueue_and_fetch(app, _delay=30)
    assert job.status is JobStatus.Scheduled
    assert row["status"] == "scheduled"
    assert job.scheduled_at - job.enqueued_at == timedelta(seconds=30)


def test_enqueue__delay_as_timedelta(app: Werk) -> None:
    job, _ = enqueue_and_fetch(app, _delay=timedelta(minutes=2))
    assert job.status is JobStatus.Scheduled
    assert job.scheduled_at - job.enqueued_at == timedelta(minutes=2)


def test_enqueue__zero_delay_is_queued_now(app: Werk) -> None:
    job, _ = enqueue_and_fetch(app, _delay=0)
    assert job.status is JobStatus.Queued


def test_enqueue__at_in_the_future_is_scheduled_then(app: Werk) -> None:
    at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=30)
    job, row = enqueue_and_fetch(app, _at=at)
    assert job.status is JobStatus.Scheduled
    assert job.scheduled_at == row["scheduled_at"] == at


def test_enqueue__at_in_another_timezone_is_the_same_instant(app: Werk) -> None:
    at = datetime(2040, 6, 1, 11, 0, tzinfo=timezone(timedelta(hours=2)))
    job, _ = enqueue_and_fetch(app, _at=at)
    assert job.scheduled_at == datetime(2040, 6, 1, 9, 0, tzinfo=timezone.utc)


def test_enqueue__at_in_the_past_is_queued_at_once(app: Werk) -> None:
    at = datetime(2020, 1, 1, tzinfo=timezone.utc)
    job, _ = enqueue_and_fetch(app, _at=at)
    assert job.status is JobStatus.Queued
    assert job.scheduled_at == at


def test_enqueue__retry_int_is_total_attempts(app: Werk) -> None:
    job, row = enqueue_and_fetch(app, _retry=3)
    assert job.max_attempts == row["max_attempts"] == 3
    assert job.retry_intervals == ()


def test_enqueue__retry_with_intervals(app: Werk) -> None:
    job, row = enqueue_and_fetch(app, _retry=Retry(max=4, intervals=[10, 60, 300]))
    assert job.max_attempts == row["max_attempts"] == 4
    assert job.retry_intervals == (10.0, 60.0, 300.0)
    assert row["retry_intervals"] == [10.0, 60.0, 300.0]


def test_enqueue__retry_with_uniform_interval(app: Werk) -> None:
    job, _ = enqueue_and_fetch(app, _retry=Retry(max=5, intervals=30))
    assert job.retry_intervals == (30.0,)


def test_enqueue__timeout_and_heartbeat(app: Werk) -> None:
    job, row = enqueue_and_fetch(app, _timeout=120, _heartbeat=30)
    assert job.timeout == row["timeout"] == 120.0
    assert job.heartbeat == row["heartbeat"] == 30.0


def test_enqueue__key(app: Werk) -> None:
    job, row = enqueue_and_fetch(app, _key="invoice:42")
    assert job.key == row["key"] == "invoice:42"


def test_enqueue__group(app: Werk) -> None:
    job, row = enqueue_and_fetch(app, _group="user:99")
    assert job.group == row["group_key"] == "user:99"


def test_enqueue__meta(app: Werk) -> None:
    meta = {"source": "api", "request_id": "abc", "n": [1, 2]}
    job, row = enqueue_and_fetch(app, _meta=meta)
    assert job.meta == row["meta"] == meta


def test_enqueue__ttl_sets_expires_at(app: Werk) -> None:
    job, row = enqueue_and_fetch(app, _ttl=60)
    assert job.expires_at is not None
    assert job.expires_at == row["expires_at"]
    assert job.expires_at - job.enqueued_at == timedelta(seconds=60)


def test_enqueue__result_ttl_and_failure_ttl(app: Werk) -> None:
    job, row = enqueue_and_fetch(app, _result_ttl=3600, _failure_ttl=timedelta(days=1))
    assert job.result_ttl == row["result_ttl"] == 3600.0
    assert job.failure_ttl == row["failure_ttl"] == 86400.0


def test_enqueue__app_defaults_for_ttls(make_app: Any) -> None:
    app = make_app(result_ttl=5, failure_ttl=None)
    job, row = enqueue_and_fetch(app)
    assert (job.result_ttl, job.failure_ttl) == (5.0, None)
    assert (row["result_ttl"], row["failure_ttl"]) == (5.0, None)


@pytest.mark.parametrize("mode", ["hold", "delete"])
def test_enqueue__failure_mode(app: Werk, mode: str) -> None:
    job, row = enqueue_and_fetch(app, _failure_mode=mode)
    assert job.failure_mode == row["failure_mode"] == mode


def test_enqueue__callbacks_as_callable_dotted_path_and_callback(app: Werk) -> None:
    job, row = enqueue_and_fetch(
        app, _on_success=jobs.on_done, _on_failure="tests.jobs.on_error",
        _on_stopped=Callback(func=jobs.on_error, timeout=10))
    assert job.on_success == CallbackRef("tests.jobs.on_done", None)
    assert job.on_failure == CallbackRef("tests.jobs.on_error", None)
    assert job.on_stopped == CallbackRef("tests.jobs.on_error", 10)
    assert row["callbacks"] == {
        "success": {"path": "tests.jobs.on_done", "timeout": None},
        "failure": {"path": "tests.jobs.on_error", "timeout": None},
        "stopped": {"path": "tests.jobs.on_error", "timeout": 10},
    }


def test_enqueue__callback_with_dotted_path_in_callback(app: Werk) -> None:
    job, _ = enqueue_and_fetch(app, _on_success=Callback(func="tests.jobs.on_done", timeout=2.5))
    assert job.on_success == CallbackRef("tests.jobs.on_done", 2.5)


def test_enqueue__repeat_with_uniform_interval(app: Werk) -> None:
    job, row = enqueue_and_fetch(app, _repeat=Repeat(times=5, interval=3600))
    assert job.repeat is not None
    assert job.repeat.times == 5
    assert job.repeat.schedule() == [3600.0] * 5
    assert job.repeat_index == 0
    assert row["repeat"] == {"times": 5, "intervals": [3600.0], "index": 0}  # the last repeats


def test_enqueue__repeat_with_custom_intervals(app: Werk) -> None:
    job, _ = enqueue_and_fetch(app, _repeat=Repeat(times=3, intervals=[60, 300, 3600]))
    assert job.repeat is not None
    assert job.repeat.schedule() == [60.0, 300.0, 3600.0]


def test_enqueue__every_option_at_once(app: Werk) -> None:
    at = datetime(2040, 1, 1, tzinfo=timezone.utc)
    job, _ = enqueue_and_fetch(
        app, jobs.echo, "x", y=1, _queue="q", _priority=-3, _at=at, _retry=Retry(2, 5),
        _timeout=1, _heartbeat=2, _key="all", _group="grp", _meta={"a": 1}, _ttl=3,
        _result_ttl=4, _failure_ttl=5, _failure_mode="delete", _on_success=jobs.on_done,
        _repeat=Repeat(times=1))
    assert (job.queue, job.priority, job.scheduled_at, job.max_attempts) == ("q", -3, at, 2)
    assert (job.key, job.group, job.meta) == ("all", "grp", {"a": 1})
    assert (job.timeout, job.heartbeat, job.result_ttl, job.failure_ttl) == (1.0, 2.0, 4.0, 5.0)


def test_enqueue__returns_an_immutable_job(app: Werk) -> None:
    job = app.enqueue(jobs.noop)
    assert job is not None
    with pytest.raises(AttributeError):
        job.queue = "other"  # type: ignore[misc]


def test_enqueue__ids_increase_in_enqueue_order(app: Werk) -> None:
    ids = [j.id for j in (app.enqueue(jobs.noop) for _ in range(5)) if j is not None]
    assert ids == sorted(ids) and len(set(ids)) == 5


def test_enqueue__notifies_the_queue_of_a_runnable_job_only(app: Werk) -> None:
    from tests.helpers import ChannelSpy

    with ChannelSpy(app.dsn, app._store.channel) as spy:
        app.enqueue(jobs.noop, _queue="mail")
        app.enqueue(jobs.noop, _queue="later", _delay=60)
        assert spy.payloads() == ["q:mail"]


def test_enqueue__pickle_serializer_round_trips_python_objects(make_app: Any) -> None:
    from pgwerk import PickleSerializer

    app = make_app(serializer=PickleSerializer())
    when = datetime(2030, 1, 1, tzinfo=timezone.utc)
    job = app.enqueue(jobs.echo, (1, 2), when=when)
    assert job is not None
    assert app.get_job(job.id).args == ((1, 2),)
    assert app.get_job(job.id).kwargs == {"when": when}
