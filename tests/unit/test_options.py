"""Enqueue options turned into a validated row (pgwerk.options): pure, no database."""

from __future__ import annotations

import functools
import json
import math
import types
from dataclasses import fields
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from pgwerk import (
    Callback,
    Dependency,
    EnqueueParams,
    Job,
    JobStatus,
    JSONSerializer,
    Repeat,
    Retry,
    WerkConfig,
)
from pgwerk.job import CallbackRef
from pgwerk.options import (
    OPTION_NAMES,
    build_spec,
    function_path,
    params_from_call,
    repeat_spec,
)
from pgwerk.store.statements import INSERT_COLUMNS
from tests import jobs

CONFIG = WerkConfig()


def spec_of(func: Any = "tests.jobs.noop", *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The insert row ``enqueue(func, *args, **kwargs)`` would write."""
    params, _conn = params_from_call(func, args, kwargs)
    return build_spec(params, CONFIG).row


# -- the function --------------------------------------------------------------------------


def test_function_path__module_level_function_is_its_dotted_path() -> None:
    assert function_path(jobs.add) == "tests.jobs.add"


def test_function_path__dotted_string_is_kept_without_importing() -> None:
    assert function_path("myapp.tasks.cleanup") == "myapp.tasks.cleanup"


def test_function_path__staticmethod_and_classmethod_are_importable() -> None:
    assert function_path(jobs.Tasks.static_noop) == "tests.jobs.Tasks.static_noop"
    assert function_path(jobs.Tasks.class_noop) == "tests.jobs.Tasks.class_noop"


def test_function_path__lambda_is_rejected() -> None:
    with pytest.raises(ValueError, match="lambda"):
        function_path(lambda: None)


def test_function_path__nested_function_is_rejected() -> None:
    def inner() -> None:
        pass

    with pytest.raises(ValueError, match="inside another function"):
        function_path(inner)


def test_function_path__method_bound_to_an_instance_is_rejected() -> None:
    with pytest.raises(ValueError, match="bound to an instance"):
        function_path(jobs.Tasks().method_noop)


def test_function_path__partial_is_rejected() -> None:
    with pytest.raises(ValueError, match="no importable name"):
        function_path(functools.partial(jobs.add, 1))


def test_function_path__callable_instance_is_rejected() -> None:
    class Handler:
        def __call__(self) -> None:
            pass

    with pytest.raises(ValueError, match="no importable name"):
        function_path(Handler())


def test_function_path__function_not_found_again_by_its_path_is_rejected() -> None:
    ghost = types.FunctionType(jobs.noop.__code__, {}, "ghost")
    ghost.__module__ = "tests.jobs"
    ghost.__qualname__ = "ghost"
    with pytest.raises(ValueError, match="cannot be found again"):
        function_path(ghost)


@pytest.mark.parametrize("text", ["cleanup", "my app.tasks", "1st.task", "a..b", ""])
def test_function_path__string_that_is_not_a_dotted_path_is_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="dotted import path"):
        function_path(text)


def test_function_path__non_callable_is_rejected() -> None:
    with pytest.raises(TypeError, match="callable or a dotted path"):
        function_path(42)  # type: ignore[arg-type]


# -- option names ------------------------------------------------------------------------------

DOCUMENTED_OPTIONS = (
    "_queue", "_priority", "_delay", "_at", "_retry", "_timeout", "_heartbeat", "_key",
    "_group", "_meta", "_ttl", "_result_ttl", "_failure_ttl", "_failure_mode", "_on_success",
    "_on_failure", "_on_stopped", "_repeat", "_depends_on", "_unique", "_conn",
)


def test_options__every_documented_option_is_accepted() -> None:
    assert sorted(OPTION_NAMES) == sorted(DOCUMENTED_OPTIONS)


def test_options__enqueue_params_has_one_field_per_option() -> None:
    names = {f.name for f in fields(EnqueueParams)} - {"func", "args", "kwargs"}
    assert {f"_{n}" for n in names} == set(DOCUMENTED_OPTIONS) - {"_conn"}


def test_options__unknown_option_is_a_type_error_listing_the_valid_ones() -> None:
    with pytest.raises(TypeError) as info:
        params_from_call(jobs.noop, (), {"_queu": "high"})
    message = str(info.value)
    assert "_queu" in message
    for name in DOCUMENTED_OPTIONS:
        assert name in message


def test_options__keywords_without_underscore_are_the_payload() -> None:
    params, conn = params_from_call(jobs.add, (1,), {"b": 2, "_queue": "high"})
    assert params.args == (1,)
    assert params.kwargs == {"b": 2}
    assert params.queue == "high"
    assert conn is None


def test_options__conn_is_split_off() -> None:
    marker = object()
    params, conn = params_from_call(jobs.noop, (), {"_conn": marker})
    assert conn is marker


# -- the row ---------------------------------------------------------------------------------


def test_build_spec__defaults() -> None:
    row = spec_of(jobs.add, 1, b=2)
    assert row["function"] == "tests.jobs.add"
    assert row["queue"] == "default"
    assert row["priority"] == 0
    assert json.loads(row["payload"]) == {"args": [1], "kwargs": {"b": 2}}
    assert row["max_attempts"] == 1  # no _retry: one attempt, no retries
    assert row["retry_intervals"] is None
    assert row["delay"] is None and row["at"] is None
    assert row["key"] is None and row["group_key"] is None and row["meta"] is None
    assert row["timeout"] is None and row["heartbeat"] is None and row["ttl"] is None
    assert row["result_ttl"] == CONFIG.result_ttl
    assert row["failure_ttl"] == CONFIG.failure_ttl
    assert row["failure_mode"] == "hold"
    assert row["callbacks"] is None and row["repeat"] is None
    assert set(row) == set(INSERT_COLUMNS)


def test_build_spec__every_option_reaches_the_row() -> None:
    at = datetime(2030, 6, 1, 9, 0, tzinfo=timezone.utc)
    row = spec_of(
        jobs.noop, _queue="high", _priority=10, _at=at, _retry=Retry(max=4, intervals=[10, 60]),
        _timeout=120, _heartbeat=30, _key="k", _group="g", _meta={"source": "api"}, _ttl=60,
        _result_ttl=3600, _failure_ttl=86400, _failure_mode="delete",
        _on_success=jobs.on_done, _on_failure="tests.jobs.on_error",
        _on_stopped=Callback(func=jobs.on_error, timeout=10), _repeat=Repeat(times=2, interval=5),
    )
    assert row["queue"] == "high"
    assert row["priority"] == 10
    assert row["at"] == at
    assert row["max_attempts"] == 4
    assert json.loads(row["retry_intervals"]) == [10.0, 60.0]
    assert (row["timeout"], row["heartbeat"], row["ttl"]) == (120.0, 30.0, 60.0)
    assert (row["key"], row["group_key"]) == ("k", "g")
    assert json.loads(row["meta"]) == {"source": "api"}
    assert (row["result_ttl"], row["failure_ttl"]) == (3600.0, 86400.0)
    assert row["failure_mode"] == "delete"
    assert json.loads(row["callbacks"]) == {
        "success": {"path": "tests.jobs.on_done", "timeout": None},
        "failure": {"path": "tests.jobs.on_error", "timeout": None},
        "stopped": {"path": "tests.jobs.on_error", "timeout": 10},
    }
    # stored compactly: the last delay applies to every later run
    assert json.loads(row["repeat"]) == {"times": 2, "intervals": [5.0], "index": 0}


def test_build_spec__durations_accept_timedelta() -> None:
    row = spec_of(jobs.noop, _delay=timedelta(minutes=1), _timeout=timedelta(seconds=90),
                  _ttl=timedelta(hours=1), _result_ttl=timedelta(days=1))
    assert (row["delay"], row["timeout"], row["ttl"], row["result_ttl"]) == (
        60.0, 90.0, 3600.0, 86400.0)


def test_build_spec__retry_int_is_total_attempts() -> None:
    assert spec_of(jobs.noop, _retry=3)["max_attempts"] == 3


def test_build_spec__none_queue_and_priority_fall_back_to_defaults() -> None:
    row = spec_of(jobs.noop, _queue=None, _priority=None, _failure_mode=None)
    assert (row["queue"], row["priority"], row["failure_mode"]) == ("default", 0, "hold")


def test_build_spec__ttls_default_to_the_app_config() -> None:
    params, _ = params_from_call(jobs.noop, (), {})
    row = build_spec(params, WerkConfig(result_ttl=10, failure_ttl=None)).row
    assert (row["result_ttl"], row["failure_ttl"]) == (10, None)


def test_build_spec__dependencies_are_collected() -> None:
    params, _ = params_from_call(
        jobs.noop, (), {"_depends_on": [1, Dependency(2, allow_failure=True)]})
    deps = build_spec(params, CONFIG).depends_on
    assert [(d.job_id, d.allow_failure) for d in deps] == [(1, False), (2, True)]


def test_build_spec__single_dependency_id_is_a_list_of_one() -> None:
    params, _ = params_from_call(jobs.noop, (), {"_depends_on": 7})
    assert [d.job_id for d in build_spec(params, CONFIG).depends_on] == [7]


# -- bad values --------------------------------------------------------------------------------

NAIVE = datetime(2030, 1, 1, 12, 0)
AWARE = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"_delay": 5, "_at": AWARE}, ValueError, "_delay and _at"),
        ({"_at": NAIVE}, ValueError, "timezone-aware"),
        ({"_at": "2030-01-01"}, TypeError, "_at"),
        ({"_delay": -1}, ValueError, "_delay must be >= 0"),
        ({"_delay": timedelta(seconds=-1)}, ValueError, "_delay"),
        ({"_delay": math.nan}, ValueError, "_delay"),
        ({"_delay": "5"}, TypeError, "_delay"),
        ({"_delay": True}, TypeError, "_delay"),
        ({"_timeout": -5}, ValueError, "_timeout must be > 0"),
        ({"_timeout": 0}, ValueError, "_timeout must be > 0"),
        ({"_heartbeat": -1}, ValueError, "_heartbeat"),
        ({"_ttl": 0}, ValueError, "_ttl"),
        ({"_result_ttl": -1}, ValueError, "_result_ttl"),
        ({"_failure_ttl": -1}, ValueError, "_failure_ttl"),
        ({"_retry": 0}, ValueError, "_retry must be >= 1"),
        ({"_retry": -2}, ValueError, "_retry"),
        ({"_retry": "3"}, TypeError, "_retry"),
        ({"_failure_mode": "drop"}, ValueError, "_failure_mode must be one of"),
        ({"_priority": "high"}, TypeError, "_priority must be an int"),
        ({"_priority": 2**31}, ValueError, "_priority"),
        ({"_priority": 1.5}, TypeError, "_priority"),
        ({"_priority": True}, TypeError, "_priority"),
        ({"_queue": ""}, ValueError, "_queue"),
        ({"_queue": 5}, ValueError, "_queue"),
        ({"_key": ""}, ValueError, "_key"),
        ({"_key": "k" * 1001}, ValueError, "_key"),
        ({"_group": ""}, ValueError, "_group"),
        ({"_meta": ["a"]}, TypeError, "_meta must be a dict"),
        ({"_meta": {"x": object()}}, TypeError, "_meta must be JSON-encodable"),
        ({"_repeat": 3}, TypeError, "_repeat must be a Repeat"),
        ({"_on_success": lambda ctx: None}, ValueError, "_on_success is a lambda"),
        ({"_on_failure": "not a path"}, ValueError, "_on_failure"),
        ({"_depends_on": "job-1"}, ValueError, "_depends_on: 'job-1' is not a job id"),
        ({"_depends_on": 1.5}, TypeError, "_depends_on"),
        ({"_depends_on": []}, ValueError, "_depends_on is an empty list"),
        ({"_depends_on": 0}, ValueError, "_depends_on"),
        ({"_depends_on": True}, TypeError, "_depends_on"),
    ],
    ids=lambda v: None if not isinstance(v, dict) else ",".join(v),
)
def test_build_spec__bad_option_is_rejected_with_a_message_naming_it(
    options: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        spec_of(jobs.noop, **options)


DURATION_OPTIONS = ["_delay", "_timeout", "_heartbeat", "_ttl", "_result_ttl", "_failure_ttl"]


@pytest.mark.parametrize("option", DURATION_OPTIONS)
@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan, 1e300, 315576000.5,
                                 timedelta(days=3653), 10**400])
def test_build_spec__duration_out_of_range_names_option_value_and_range(
        option: str, bad: Any) -> None:
    with pytest.raises(ValueError) as info:
        spec_of(jobs.noop, **{option: bad})
    assert str(info.value).startswith(f"{option} must be ")
    assert "<= 315576000 seconds (ten years)" in str(info.value)
    assert str(info.value).endswith(f"got {bad!r}")


@pytest.mark.parametrize("option", DURATION_OPTIONS)
def test_build_spec__duration_at_the_cap_is_accepted(option: str) -> None:
    row = spec_of(jobs.noop, **{option: timedelta(days=3652, hours=12)})
    column = {"_heartbeat": "heartbeat", "_delay": "delay"}.get(option, option[1:])
    assert row[column] == 315_576_000.0


@pytest.mark.parametrize("at", [
    datetime(1969, 12, 31, 23, 59, tzinfo=timezone.utc),
    datetime(9999, 1, 1, tzinfo=timezone.utc),
    datetime.max.replace(tzinfo=timezone.utc),
    datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5))),
    datetime.min.replace(tzinfo=timezone(timedelta(hours=5))),
], ids=["before-1970", "year-9999", "max", "after-9999-in-utc", "before-year-1-in-utc"])
def test_build_spec__at_out_of_range_is_a_value_error(at: datetime) -> None:
    with pytest.raises(ValueError, match=r"^_at must be from 1970-01-01 to before 9999-01-01 "
                                         r"\(UTC\), got datetime"):
        spec_of(jobs.noop, _at=at)


def test_build_spec__at_in_the_past_or_far_ahead_within_range_is_kept() -> None:
    for at in (datetime(1970, 1, 1, tzinfo=timezone.utc),
               datetime(9998, 12, 31, 18, 0, tzinfo=timezone(timedelta(hours=-5)))):
        assert spec_of(jobs.noop, _at=at)["at"] == at


@pytest.mark.parametrize(("retry", "error"), [(2**31, ValueError), (True, TypeError)])
def test_build_spec__retry_count_beyond_int32_or_bool_is_rejected(
        retry: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="_retry"):
        spec_of(jobs.noop, _retry=retry)


def test_build_spec__failure_mode_message_lists_allowed_values() -> None:
    with pytest.raises(ValueError) as info:
        spec_of(jobs.noop, _failure_mode="drop")
    assert "'hold'" in str(info.value) and "'delete'" in str(info.value)
    assert "'drop'" in str(info.value)


def test_build_spec__unserializable_payload_is_a_clear_error() -> None:
    with pytest.raises(TypeError) as info:
        spec_of(jobs.echo, when=object())
    message = str(info.value)
    assert "tests.jobs.echo" in message
    assert "JSONSerializer" in message


def test_build_spec__nan_in_payload_is_rejected_by_json() -> None:
    with pytest.raises(TypeError, match="cannot be encoded"):
        spec_of(jobs.echo, math.inf)


def test_build_spec__serializer_returning_bytes_is_rejected() -> None:
    class Bytes:
        def dumps(self, obj: Any) -> bytes:
            return b"x"

        def loads(self, data: str) -> Any:
            return None

    params, _ = params_from_call(jobs.noop, (), {})
    with pytest.raises(TypeError, match="must return str"):
        build_spec(params, WerkConfig(serializer=Bytes()))  # type: ignore[arg-type]


def test_build_spec__enqueue_params_with_bad_args_or_kwargs_are_rejected() -> None:
    with pytest.raises(TypeError, match="args must be a list"):
        build_spec(EnqueueParams(func=jobs.noop, args="abc"), CONFIG)
    with pytest.raises(TypeError, match="kwargs must be a dict"):
        build_spec(EnqueueParams(func=jobs.noop, kwargs=[1]), CONFIG)  # type: ignore[arg-type]


# -- the next run of a repeating job ------------------------------------------------------------


def _repeating_job(index: int) -> Job:
    now = datetime.now(timezone.utc)
    return Job(id=1, function="tests.jobs.add", queue="q", status=JobStatus.Complete, priority=3,
               args=(1,), kwargs={"b": 2}, attempts=1, max_attempts=2, retry_intervals=(5.0,),
               scheduled_at=now, enqueued_at=now, group="g", meta={"m": 1}, timeout=9.0,
               repeat=Repeat(times=3, intervals=[60, 300]), repeat_index=index,
               on_success=CallbackRef("tests.jobs.on_done", 4.0))


def test_repeat_spec__next_run_keeps_the_options_and_waits_its_interval() -> None:
    row = repeat_spec(_repeating_job(0), JSONSerializer())
    assert row is not None
    r = row.row
    assert (r["function"], r["queue"], r["priority"], r["group_key"]) == (
        "tests.jobs.add", "q", 3, "g")
    assert json.loads(r["payload"]) == {"args": [1], "kwargs": {"b": 2}}
    assert (r["max_attempts"], json.loads(r["retry_intervals"]), r["timeout"]) == (2, [5.0], 9.0)
    assert r["delay"] == 60.0
    assert r["key"] is None
    assert json.loads(r["repeat"]) == {"times": 3, "intervals": [60.0, 300.0], "index": 1}
    assert json.loads(r["callbacks"]) == {"success": {"path": "tests.jobs.on_done", "timeout": 4.0}}


def test_repeat_spec__later_runs_use_later_intervals() -> None:
    row = repeat_spec(_repeating_job(2), JSONSerializer())
    assert row is not None and row.row["delay"] == 300.0


def test_repeat_spec__none_after_the_last_repeat() -> None:
    assert repeat_spec(_repeating_job(3), JSONSerializer()) is None
