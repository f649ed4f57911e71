"""Every duration argument of ``Retry``, ``Repeat``, ``Callback``, ``Worker`` and
``CronScheduler`` goes through the one validator: finite, not negative, at most ten years.
No database: building these objects does not connect."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest

from pgwerk import Callback, Repeat, Retry, Werk, Worker
from pgwerk.cron import CronScheduler

CAP = 315_576_000.0
OUT_OF_RANGE = [math.inf, math.nan, 1e300, -1, CAP + 1, timedelta(days=3653)]
NOT_A_NUMBER = [True, "5", [5]]


def _message_ok(text: str, name: str, value: Any) -> bool:
    return (text.startswith(f"{name} must be ") and "315576000 seconds (ten years)" in text
            and text.endswith(f"got {value!r}"))


@pytest.fixture(scope="module")
def app() -> Werk:
    return Werk("postgresql://nowhere.invalid/db")


# -- Retry, Repeat, Callback -----------------------------------------------------------------


@pytest.mark.parametrize("bad", OUT_OF_RANGE)
@pytest.mark.parametrize(("name", "make"), [
    ("Retry.intervals", lambda v: Retry(max=2, intervals=v)),
    ("Retry.intervals[1]", lambda v: Retry(max=2, intervals=[1, v])),
    ("Repeat.interval", lambda v: Repeat(times=2, interval=v)),
    ("Repeat.intervals[0]", lambda v: Repeat(times=2, intervals=[v])),
    ("Callback.timeout", lambda v: Callback(func="tests.jobs.on_done", timeout=v)),
])
def test_option_objects__duration_out_of_range_is_rejected(name: str, make: Any,
                                                           bad: Any) -> None:
    with pytest.raises(ValueError) as info:
        make(bad)
    assert _message_ok(str(info.value), name, bad)


@pytest.mark.parametrize("make", [
    lambda v: Retry(max=2, intervals=[v]), lambda v: Repeat(times=2, interval=v),
    lambda v: Callback(func="tests.jobs.on_done", timeout=v),
])
@pytest.mark.parametrize("bad", NOT_A_NUMBER)
def test_option_objects__duration_that_is_not_a_number_is_a_type_error(make: Any,
                                                                       bad: Any) -> None:
    with pytest.raises(TypeError, match="must be a number of seconds"):
        make(bad)


def test_option_objects__timedeltas_become_seconds_and_the_cap_is_allowed() -> None:
    cap = timedelta(days=3652, hours=12)
    assert Retry(max=2, intervals=[cap]).intervals == [CAP]
    assert Repeat(times=2, interval=cap).schedule() == [CAP, CAP]
    assert Repeat(times=1, intervals=[timedelta(minutes=1)]).schedule() == [60.0]
    assert Callback(func="tests.jobs.on_done", timeout=timedelta(seconds=90)).timeout == 90.0


@pytest.mark.parametrize(("make", "words"), [
    (lambda: Retry(max=2**31), r"^Retry.max must be >= 1 and <= 2147483647 \(total attempts\)"),
    (lambda: Repeat(times=2**31), r"^Repeat.times must be >= 1 and <= 2147483647"),
])
def test_option_objects__counts_beyond_int32_are_rejected(make: Any, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        make()


# -- Worker ----------------------------------------------------------------------------------

WORKER_DURATIONS = ["poll_interval", "heartbeat_interval", "sweep_interval",
                    "shutdown_timeout", "timeout_grace", "flush_interval"]


@pytest.mark.parametrize("name", WORKER_DURATIONS)
@pytest.mark.parametrize("bad", OUT_OF_RANGE)
def test_worker__duration_out_of_range_is_rejected(app: Werk, name: str, bad: Any) -> None:
    with pytest.raises(ValueError) as info:
        Worker(app, **{name: bad})
    assert _message_ok(str(info.value), name, bad)


@pytest.mark.parametrize("name", WORKER_DURATIONS)
@pytest.mark.parametrize("bad", NOT_A_NUMBER)
def test_worker__duration_that_is_not_a_number_is_a_type_error(app: Werk, name: str,
                                                               bad: Any) -> None:
    with pytest.raises(TypeError, match=f"^{name} must be a number of seconds"):
        Worker(app, **{name: bad})


@pytest.mark.parametrize("name", ["poll_interval", "heartbeat_interval", "sweep_interval"])
def test_worker__zero_interval_is_rejected(app: Werk, name: str) -> None:
    with pytest.raises(ValueError, match=f"^{name} must be > 0"):
        Worker(app, **{name: 0})


def test_worker__durations_at_the_cap_are_accepted(app: Werk) -> None:
    capped = [name for name in WORKER_DURATIONS if name != "flush_interval"]
    worker = Worker(app, **{name: timedelta(days=3652, hours=12) for name in capped})
    assert {getattr(worker, name) for name in capped} == {CAP}


def test_worker__flush_interval_is_at_most_a_second(app: Werk) -> None:
    assert Worker(app, flush_interval=1.0).flush_interval == 1.0
    with pytest.raises(ValueError, match="flush_interval must be at most 1 second"):
        Worker(app, flush_interval=timedelta(days=1))


@pytest.mark.parametrize(("options", "error"), [
    ({"concurrency": True}, TypeError), ({"concurrency": 0}, ValueError),
    ({"prefetch": True}, ValueError), ({"prefetch": -1}, ValueError),
])
def test_worker__counts_reject_bools_and_out_of_range(app: Werk, options: dict[str, Any],
                                                      error: type[Exception]) -> None:
    with pytest.raises(error, match=next(iter(options))):
        Worker(app, **options)


# -- CronScheduler ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["retry_interval", "poll_interval", "misfire_grace"])
@pytest.mark.parametrize("bad", OUT_OF_RANGE)
def test_cron_scheduler__duration_out_of_range_is_rejected(app: Werk, name: str,
                                                           bad: Any) -> None:
    with pytest.raises(ValueError) as info:
        CronScheduler(app, **{name: bad})
    assert _message_ok(str(info.value), name, bad)


@pytest.mark.parametrize("bad", OUT_OF_RANGE)
def test_cron_register__interval_out_of_range_is_rejected(app: Werk, bad: Any) -> None:
    with pytest.raises(ValueError) as info:
        CronScheduler(app).register("tests.jobs.noop", interval=bad)
    assert _message_ok(str(info.value), "interval", bad)
