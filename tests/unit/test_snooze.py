"""``Snooze``: its delay is checked like every duration, it survives pickling (a process
child's outcome), and an attempt that ends with it spends nothing. Pure: no database."""

from __future__ import annotations

import dataclasses
import math
import pickle
from datetime import timedelta
from typing import Any

import pytest

from pgwerk import Job, JobStatus, Snooze
from pgwerk._execute import ERROR, SNOOZED, Outcome, settle
from pgwerk._validate import MAX_SECONDS
from tests.helpers import job_record


def _job(**changes: object) -> Job:
    """A running job's record (its first attempt)."""
    return job_record(**{"status": JobStatus.Active, "attempts": 1, **changes})


@pytest.mark.parametrize(("delay", "seconds"), [
    (30, 30.0), (0, 0.0), (0.25, 0.25), (timedelta(minutes=2), 120.0), (MAX_SECONDS, MAX_SECONDS),
])
def test_snooze__takes_seconds_or_a_timedelta(delay: Any, seconds: float) -> None:
    assert Snooze(delay).delay == seconds


@pytest.mark.parametrize(("delay", "error"), [
    (-1, ValueError), (timedelta(seconds=-1), ValueError), (MAX_SECONDS + 1, ValueError),
    (math.nan, ValueError), (math.inf, ValueError), (True, TypeError), ("30", TypeError),
    (None, TypeError),
])
def test_snooze__a_bad_delay_is_refused_naming_it(delay: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"^Snooze.delay must be"):
        Snooze(delay)


def test_snooze__survives_pickling() -> None:
    again = pickle.loads(pickle.dumps(Snooze(timedelta(seconds=90))))
    assert type(again) is Snooze and again.delay == 90.0
    assert str(again) == "snoozed for 90s"


def test_snooze__settles_as_snoozed_with_its_delay_and_no_callback() -> None:
    settlement = settle(_job(), Outcome(SNOOZED, delay=30.0))
    assert (settlement.status, settlement.delay, settlement.callback) == ("snoozed", 30.0, None)
    assert (settlement.result, settlement.error) == (None, None)


def test_snooze__earlier_snoozes_do_not_count_against_max_attempts() -> None:
    # Third attempt, two of them snoozed: only one real attempt spent out of two.
    job = _job(attempts=3, snoozed=2, max_attempts=2)
    assert settle(job, Outcome(ERROR, error="boom")).status == "queued"
    assert settle(dataclasses.replace(job, snoozed=1), Outcome(ERROR, error="boom")).status \
        == "failed"
