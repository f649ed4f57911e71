"""The option objects users pass (Retry, Repeat, Callback, Dependency) and the records they
get back (Job, JobStatus): pure, no database."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from pgwerk import Callback, Dependency, JobStatus, Repeat, Retry
from pgwerk.job import TERMINAL_STATUSES

# -- Retry ---------------------------------------------------------------------------------
from tests.helpers import job_record


def test_retry__delay_walks_the_intervals_and_repeats_the_last() -> None:
    retry = Retry(max=6, intervals=[10, 60, 300])
    assert [retry.delay(n) for n in range(1, 6)] == [10.0, 60.0, 300.0, 300.0, 300.0]


def test_retry__single_interval_is_a_uniform_delay() -> None:
    retry = Retry(max=4, intervals=15)
    assert retry.intervals == [15.0]
    assert [retry.delay(n) for n in (1, 2, 3)] == [15.0, 15.0, 15.0]


def test_retry__without_intervals_retries_at_once() -> None:
    assert Retry(max=3).delay(1) == 0.0


def test_retry__intervals_accept_timedelta() -> None:
    assert Retry(max=2, intervals=[timedelta(minutes=2)]).delay(1) == 120.0  # type: ignore[list-item]


@pytest.mark.parametrize("bad", [0, -1])
def test_retry__max_below_one_is_rejected(bad: int) -> None:
    with pytest.raises(ValueError, match=r"Retry.max must be >= 1"):
        Retry(max=bad)


@pytest.mark.parametrize("bad", [1.5, "3", True, None])
def test_retry__max_that_is_not_an_int_is_rejected(bad: object) -> None:
    with pytest.raises(TypeError, match="Retry.max must be an int"):
        Retry(max=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bad", "error"), [(-1, ValueError), ([10, -5], ValueError), ([], TypeError),
                       ("10", TypeError), ([float("nan")], ValueError)])
def test_retry__bad_intervals_are_rejected(bad: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="Retry.intervals"):
        Retry(max=3, intervals=bad)  # type: ignore[arg-type]


# -- Repeat --------------------------------------------------------------------------------


def test_repeat__uniform_interval_schedule() -> None:
    assert Repeat(times=5, interval=3600).schedule() == [3600.0] * 5


def test_repeat__custom_intervals_schedule() -> None:
    assert Repeat(times=3, intervals=[60, 300, 3600]).schedule() == [60.0, 300.0, 3600.0]


def test_repeat__short_interval_list_repeats_its_last_value() -> None:
    assert Repeat(times=4, intervals=[60, 300]).schedule() == [60.0, 300.0, 300.0, 300.0]


def test_repeat__without_interval_repeats_at_once() -> None:
    assert Repeat(times=2).schedule() == [0.0, 0.0]


@pytest.mark.parametrize("bad", [0, -3])
def test_repeat__times_below_one_is_rejected(bad: int) -> None:
    with pytest.raises(ValueError, match=r"Repeat.times must be >= 1"):
        Repeat(times=bad)


def test_repeat__times_that_is_not_an_int_is_rejected() -> None:
    with pytest.raises(TypeError, match="Repeat.times"):
        Repeat(times="5")  # type: ignore[arg-type]


def test_repeat__interval_and_intervals_together_are_rejected() -> None:
    with pytest.raises(ValueError, match="not both"):
        Repeat(times=2, interval=5, intervals=[5])


def test_repeat__negative_interval_is_rejected() -> None:
    with pytest.raises(ValueError, match="Repeat.interval"):
        Repeat(times=2, interval=-1)
    with pytest.raises(ValueError, match=r"Repeat.intervals\[1\]"):
        Repeat(times=2, intervals=[1, -1])


# -- Callback and Dependency ---------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1])
def test_callback__timeout_must_be_positive(bad: float) -> None:
    with pytest.raises(ValueError, match="Callback.timeout"):
        Callback(func="tests.jobs.on_done", timeout=bad)


_job = job_record


def test_dependency__job_id_of_a_job_or_an_id() -> None:
    assert Dependency(_job()).job_id == 7
    assert Dependency(12, allow_failure=True).job_id == 12


# -- Job and JobStatus -----------------------------------------------------------------------


def test_job__is_immutable() -> None:
    job = _job()
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.status = JobStatus.Complete  # type: ignore[misc]
    assert dataclasses.is_dataclass(job)


def test_job_status__has_exactly_the_nine_statuses() -> None:
    assert [s.value for s in JobStatus] == [
        "scheduled", "queued", "waiting", "active", "aborting",
        "complete", "failed", "aborted", "expired",
    ]


def test_job_status__the_last_four_are_terminal() -> None:
    assert {s.value for s in TERMINAL_STATUSES} == {"complete", "failed", "aborted", "expired"}
    assert [s.is_terminal for s in JobStatus] == [False] * 5 + [True] * 4
    assert _job(status=JobStatus.Failed).is_terminal


def test_job_status__compares_and_prints_as_its_value() -> None:
    assert JobStatus("queued") is JobStatus.Queued
    assert JobStatus.Queued == "queued"
    assert str(JobStatus.Aborting) == "aborting"
