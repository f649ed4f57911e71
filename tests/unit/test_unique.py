"""``Unique`` and the key ``_unique`` makes: what is allowed, and which jobs share a key
(no database)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from pgwerk import EnqueueParams, JobStatus, Unique, WerkConfig
from pgwerk.options import UniqueKey, build_spec, unique_key
from pgwerk.serializers import PickleSerializer
from tests import jobs

UNENDED = ("scheduled", "queued", "waiting", "active", "aborting")


def key_of(func: Any = jobs.add, *args: Any, _unique: Any = True, _queue: str = "default",
           **kwargs: Any) -> str:
    spec = build_spec(EnqueueParams(func=func, args=args, kwargs=kwargs, queue=_queue,
                                    unique=_unique), WerkConfig())
    assert spec.unique is not None
    return spec.unique.key


# -- Unique ----------------------------------------------------------------------------------


def test_unique__defaults_are_function_queue_arguments_and_every_unended_status() -> None:
    assert Unique() == Unique(by=("function", "queue", "args"), states=UNENDED, period=None)


def test_unique__states_are_kept_in_one_order_whatever_the_order_given() -> None:
    made = Unique(states=("complete", "aborting", "active", "waiting", "queued", "scheduled"))
    assert made.states == (*UNENDED, "complete")
    assert made == Unique(states=(*Unique.REQUIRED_STATES, "complete"))


@pytest.mark.parametrize("states", [
    ("queued", "scheduled", "active"), ("active", "queued", "scheduled", "complete"),
    ("queued", "scheduled", "active", "waiting"),
])
def test_unique__waiting_and_aborting_are_added_to_queued_scheduled_active(states: Any) -> None:
    made = Unique(states=states)
    assert made.states[:len(UNENDED)] == UNENDED
    assert set(made.states) == {*UNENDED, *states}


def test_unique__the_issue_example_is_the_default_set_with_a_period() -> None:
    made = Unique(by=("function", "args"), states=("queued", "scheduled", "active"),
                  period=3600)
    assert made.states == Unique().states == UNENDED
    assert made.period == 3600


def test_unique__job_status_members_are_statuses_too() -> None:
    assert Unique(states=[JobStatus(s) for s in UNENDED]).states == UNENDED


def test_unique__a_single_string_is_one_field() -> None:
    assert Unique(by="function").by == ("function",)


def test_unique__a_field_named_twice_counts_once() -> None:
    assert Unique(by=("args", "function", "args")).by == ("args", "function")


def test_unique__period_takes_seconds_or_a_timedelta() -> None:
    assert Unique(period=timedelta(hours=1)).period == 3600.0
    assert Unique(period=1).period == 1.0


@pytest.mark.parametrize(("by", "error"), [
    ((), TypeError), ("", ValueError), ("payload", ValueError), (("function", 3), TypeError),
    ("kwargs:", ValueError), ("kwargs:_queue", ValueError), ("args:0", ValueError),
    (None, TypeError), (5, TypeError), (b"args", TypeError),
])
def test_unique__by_outside_the_fields_is_refused_naming_it(by: Any, error: type) -> None:
    with pytest.raises(error, match=r"Unique\.by") as info:
        Unique(by=by)
    assert "'function'" in str(info.value) or "field" in str(info.value)


@pytest.mark.parametrize("states", [
    ("queued", "scheduled"), ("complete",), "queued", ("scheduled", "queued", "waiting",
                                                     "aborting", "failed"),
])
def test_unique__states_without_every_unended_status_are_refused_saying_why(states: Any) -> None:
    with pytest.raises(ValueError, match=r"Unique\.states must include") as info:
        Unique(states=states)
    assert "REQUIRED_STATES" in str(info.value)


@pytest.mark.parametrize(("states", "error"), [
    ((*UNENDED, "deleted"), ValueError), ((*UNENDED, "Complete"), ValueError),
    ((*UNENDED, None), TypeError), ((), TypeError), (None, TypeError), (7, TypeError),
])
def test_unique__states_that_are_not_statuses_are_refused_naming_them(states: Any,
                                                                      error: type) -> None:
    with pytest.raises(error, match=r"Unique\.states"):
        Unique(states=states)


@pytest.mark.parametrize(("period", "error"), [
    (0, ValueError), (0.5, ValueError), (-1, ValueError), (float("nan"), ValueError),
    (float("inf"), ValueError), (1e300, ValueError), (timedelta(0), ValueError),
    ("60", TypeError), (True, TypeError),
])
def test_unique__period_below_a_second_or_not_a_duration_is_refused(period: Any,
                                                                   error: type) -> None:
    with pytest.raises(error, match=r"Unique\.period"):
        Unique(period=period)


def test_unique__is_frozen() -> None:
    with pytest.raises(AttributeError):
        Unique().period = 5  # type: ignore[misc]


# -- the key ---------------------------------------------------------------------------------


def test_unique_key__none_and_false_mean_not_unique() -> None:
    assert unique_key(None, "m.f", "default", (), {}) is None
    assert unique_key(False, "m.f", "default", (), {}) is None


def test_unique_key__true_is_the_default_unique() -> None:
    made = unique_key(True, "m.f", "default", (1,), {"a": 2})
    assert made == unique_key(Unique(), "m.f", "default", (1,), {"a": 2})
    assert isinstance(made, UniqueKey)
    assert made.states == UNENDED and made.period is None
    assert len(made.key) == 64 and int(made.key, 16) >= 0  # a SHA-256, in hex


@pytest.mark.parametrize("value", [1, 0, "yes", Unique, [Unique()], {"by": "args"}])
def test_unique_key__anything_else_is_a_type_error_naming_unique(value: Any) -> None:
    with pytest.raises(TypeError, match="_unique must be True, False, None or a Unique"):
        unique_key(value, "m.f", "default", (), {})


def test_unique_key__same_call_same_key_whatever_the_keyword_order() -> None:
    assert key_of(jobs.echo, 1, a=1, b={"x": 1, "y": [1, 2]}) == key_of(
        "tests.jobs.echo", 1, b={"y": [1, 2], "x": 1}, a=1)


def test_unique_key__tuples_and_lists_are_the_same_json() -> None:
    assert key_of(jobs.echo, (1, 2)) == key_of(jobs.echo, [1, 2])


@pytest.mark.parametrize(("one", "other"), [
    (((1,), {}), ((2,), {})),
    (((1,), {}), ((), {"a": 1})),  # positional and keyword are not the same call
    (((1,), {}), ((1.0,), {})),
    (((1,), {}), ((True,), {})),
    (((), {"a": None}), ((), {})),
])
def test_unique_key__different_arguments_different_keys(one: Any, other: Any) -> None:
    assert key_of(jobs.echo, *one[0], **one[1]) != key_of(jobs.echo, *other[0], **other[1])


def test_unique_key__default_fields_are_function_queue_and_arguments() -> None:
    base = key_of(jobs.echo, 1)
    assert key_of(jobs.add, 1) != base
    assert key_of(jobs.echo, 1, _queue="other") != base


def test_unique_key__by_function_ignores_queue_and_arguments() -> None:
    by = Unique(by="function")
    assert key_of(jobs.echo, 1, _unique=by) == key_of(jobs.echo, 2, a=3, _queue="q", _unique=by)
    assert key_of(jobs.noop, _unique=by) != key_of(jobs.echo, _unique=by)


def test_unique_key__by_one_keyword_argument_ignores_the_others() -> None:
    by = Unique(by=("function", "kwargs:user"))
    assert key_of(jobs.echo, user=1, note="a", _unique=by) == key_of(
        jobs.echo, 9, user=1, note="b", _unique=by)
    assert key_of(jobs.echo, user=1, _unique=by) != key_of(jobs.echo, user=2, _unique=by)
    # a job without the argument matches the others without it, not one with None
    assert key_of(jobs.echo, _unique=by) == key_of(jobs.echo, 5, _unique=by)
    assert key_of(jobs.echo, _unique=by) != key_of(jobs.echo, user=None, _unique=by)


def test_unique_key__the_statuses_and_the_period_are_part_of_the_key() -> None:
    keys = {key_of(jobs.echo, 1, _unique=u) for u in (
        Unique(), Unique(states=(*UNENDED, "complete")), Unique(period=60),
        Unique(period=3600), Unique(by=("function", "args", "queue")))}
    assert len(keys) == 4  # the last is the default, in another order


def test_unique_key__any_json_value_makes_a_key_the_database_can_store() -> None:
    made = unique_key(True, "m.f", "default", ("\ud800", "\x00", float("nan")), {})
    assert made is not None and made.key.isascii() and len(made.key) == 64


@pytest.mark.parametrize("args", [
    (object(),), ({1: "a", "b": 2},), (10**5000,), (b"bytes",),
])
def test_unique_key__arguments_that_are_not_json_are_a_type_error_naming_unique(
        args: Any) -> None:
    with pytest.raises(TypeError, match="_unique by function, queue, args"):
        unique_key(True, "m.f", "default", args, {})


def test_unique_key__not_json_arguments_outside_the_fields_are_fine() -> None:
    spec = build_spec(EnqueueParams(func=jobs.echo, kwargs={"when": object(), "user": 1},
                                    unique=Unique(by=("function", "kwargs:user"))),
                      WerkConfig(serializer=PickleSerializer()))
    assert spec.unique is not None


def test_build_spec__key_and_unique_together_are_refused() -> None:
    with pytest.raises(ValueError, match="_key and _unique cannot be used together"):
        build_spec(EnqueueParams(func=jobs.noop, key="k", unique=True), WerkConfig())


def test_build_spec__not_unique_makes_no_unique_key() -> None:
    assert build_spec(EnqueueParams(func=jobs.noop), WerkConfig()).unique is None
