"""Bad input to ``Werk.enqueue``/``enqueue_many`` raises a helpful error and writes nothing."""

from __future__ import annotations

import functools
from datetime import datetime, timezone
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
    ("bad dependency", jobs.noop, {"_depends_on": "x"}, TypeError, "_depends_on"),
    ("bad conn", jobs.noop, {"_conn": object()}, TypeError, "_conn must be"),
]


@pytest.mark.parametrize(("func", "kwargs", "error", "words"),
                         [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_enqueue__bad_input_raises_and_writes_nothing(
    app: Werk, func: Any, kwargs: dict[str, Any], error: type[Exception], words: str
) -> None:
    app.enqueue(jobs.noop)
    with ChannelSpy(app.dsn, app.channel) as spy:
        with pytest.raises(error, match=words):
            app.enqueue(func, **kwargs)
        assert spy.payloads() == []
    assert count_rows(app) == 1


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
