"""Bad input to ``Werk.enqueue``/``enqueue_many`` raises a helpful error and writes nothing."""

from __future__ import annotations

import functools
import math
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from pgwerk import EnqueueParams, Repeat, Retry, Werk
from tests import jobs
from tests.helpers import ChannelSpy, count_rows


def nested() -> Any:
    def inner() -> None:
        pass

    return inner


BAD_CALLS: list[tuple[str, Any, dict[str, Any], type[Exception], str]] = [
    ("lambda", lambda: None, {}, ValueError, "lambda"),
    ("nested function", nested(), {}, ValueError, "inside another function"),
    ("bound method", jobs.Tasks().method_noop, {}, ValueError, "bound to an instance"),
    ("partial", functools.partial(jobs.add, 1), {}, ValueError, "importable name"),
    ("not a dotted path", "cleanup", {}, ValueError, "dotted import path"),
    ("unknown option", jobs.noop, {"_queu": "x"}, TypeError, "valid options: _queue"),
    ("unserializable payload", jobs.echo, {"x": object()}, TypeError, "cannot be encoded"),
    ("delay with at", jobs.noop,
     {"_delay": 1, "_at": datetime(2030, 1, 1, tzinfo=timezone.utc)}, ValueError, "_delay and _at"),
    ("naive at", jobs.noop, {"_at": datetime(2030, 1, 1)}, ValueError, "timezone-aware"),
    ("negative delay", jobs.noop, {"_delay": -1}, ValueError, "_delay must be >= 0"),
    ("negative timeout", jobs.noop, {"_timeout": -1}, ValueError, "_timeout must be > 0"),
    ("negative ttl", jobs.noop, {"_ttl": -1}, ValueError, "_ttl"),
    ("zero retry", jobs.noop, {"_retry": 0}, ValueError, "_retry must be >= 1"),
    ("bad failure mode", jobs.noop, {"_failure_mode": "keep"}, ValueError, "'hold', 'delete'"),
    ("bad priority", jobs.noop, {"_priority": "urgent"}, TypeError, "_priority must be an int"),
    ("lambda callback", jobs.noop, {"_on_failure": lambda ctx: None}, ValueError, "_on_failure"),
    ("bad meta", jobs.noop, {"_meta": "x"}, TypeError, "_meta must be a dict"),
    ("bad dependency", jobs.noop, {"_depends_on": "x"}, ValueError, "_depends_on"),
    ("dependency of a bad type", jobs.noop, {"_depends_on": 1.5}, TypeError, "_depends_on"),
    ("bad conn", jobs.noop, {"_conn": object()}, TypeError, "_conn must be"),
]


@pytest.mark.parametrize(("func", "kwargs", "error", "words"),
                         [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_enqueue__bad_input_raises_and_writes_nothing(
    app: Werk, func: Any, kwargs: dict[str, Any], error: type[Exception], words: str
) -> None:
    app.enqueue(jobs.noop)
    with ChannelSpy(app.dsn, app._store.channel) as spy:
        with pytest.raises(error, match=words):
            app.enqueue(func, **kwargs)
        assert spy.payloads() == []
    assert count_rows(app) == 1


DURATION_OPTIONS = ["_delay", "_timeout", "_heartbeat", "_ttl", "_result_ttl", "_failure_ttl"]


@pytest.mark.parametrize("option", DURATION_OPTIONS)
@pytest.mark.parametrize("bad", [math.inf, math.nan, 1e300])
def test_enqueue__duration_out_of_range_raises_and_writes_nothing(
        app: Werk, option: str, bad: Any) -> None:
    with ChannelSpy(app.dsn, app._store.channel) as spy:
        with pytest.raises(ValueError, match=rf"^{option} must be .*<= 315576000 seconds"):
            app.enqueue(jobs.noop, **{option: bad})
        with pytest.raises(ValueError, match=option):
            app.enqueue_many([EnqueueParams(func=jobs.noop),
                              EnqueueParams(func=jobs.noop, **{option[1:]: bad})])
        assert spy.payloads() == []
    assert count_rows(app) == 0


@pytest.mark.parametrize("at", [
    datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5))),
    datetime.max.replace(tzinfo=timezone.utc),
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),
    datetime(1900, 1, 1, tzinfo=timezone.utc),
], ids=["after-9999-in-utc", "max", "before-year-1-in-utc", "1900"])
def test_enqueue__at_out_of_range_raises_and_writes_nothing(app: Werk, at: datetime) -> None:
    with ChannelSpy(app.dsn, app._store.channel) as spy:
        with pytest.raises(ValueError, match="^_at must be from 1970-01-01 to before 9999-01-01"):
            app.enqueue(jobs.noop, _at=at)
        assert spy.payloads() == []
    assert count_rows(app) == 0


def test_enqueue__at_late_in_year_9998_is_stored_and_read_back(app: Werk) -> None:
    at = datetime(9998, 12, 31, 12, 0, tzinfo=timezone.utc)
    job = app.enqueue(jobs.noop, _at=at)
    assert job is not None and job.scheduled_at == at
    assert app.get_job(job.id).scheduled_at == at


@pytest.mark.parametrize(("options", "words"), [
    ({"_priority": 2**31}, "_priority must be >= -2147483647 and <= 2147483647"),
    ({"_retry": 2**31}, "_retry must be >= 1 and <= 2147483647"),
])
def test_enqueue__integer_beyond_its_column_raises_and_writes_nothing(
        app: Werk, options: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        app.enqueue(jobs.noop, **options)
    assert count_rows(app) == 0


def test_enqueue__retry_and_repeat_objects_reject_zero_before_enqueue() -> None:
    with pytest.raises(ValueError, match="Retry.max must be >= 1"):
        Retry(max=0)
    with pytest.raises(ValueError, match="Repeat.times must be >= 1"):
        Repeat(times=0)


def test_enqueue__missing_dependency_is_a_value_error_and_writes_nothing(app: Werk) -> None:
    upstream = app.enqueue(jobs.noop)
    assert upstream is not None
    with pytest.raises(ValueError, match="999999"):
        app.enqueue(jobs.noop, _depends_on=[upstream, 999999])
    assert count_rows(app) == 1
    assert count_rows(app, "job_deps") == 0
    assert app.get_job(upstream.id).status.value == "queued"


def test_enqueue_many__one_bad_item_rejects_the_whole_list(app: Werk) -> None:
    items = [EnqueueParams(func=jobs.noop), EnqueueParams(func=jobs.noop, priority="x")]  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="_priority"):
        app.enqueue_many(items)
    assert count_rows(app) == 0


def test_enqueue_many__missing_dependency_rejects_the_whole_list(app: Werk) -> None:
    items = [EnqueueParams(func=jobs.noop), EnqueueParams(func=jobs.noop, depends_on=424242)]
    with pytest.raises(ValueError, match="424242"):
        app.enqueue_many(items)
    assert count_rows(app) == 0


@pytest.mark.parametrize("bad", ["abc", EnqueueParams(func=jobs.noop), [jobs.noop], [{"func": 1}]])
def test_enqueue_many__takes_a_list_of_enqueue_params(app: Werk, bad: Any) -> None:
    with pytest.raises(TypeError, match="EnqueueParams"):
        app.enqueue_many(bad)
    assert count_rows(app) == 0


def test_enqueue_many__empty_list_is_an_empty_result(app: Werk) -> None:
    assert app.enqueue_many([]) == []
