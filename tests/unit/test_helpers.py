"""The test helpers themselves: ``eventually`` waits on a condition, never on a guess."""

from __future__ import annotations

import itertools
import time

import pytest

from tests.helpers import eventually


def test_eventually__returns_the_first_truthy_value() -> None:
    counter = itertools.count()
    assert eventually(lambda: next(counter) >= 3 and "done", interval=0) == "done"


def test_eventually__assertion_errors_mean_not_yet() -> None:
    calls = itertools.count()

    def condition() -> int:
        n = next(calls)
        assert n >= 2, "not yet"
        return n

    assert eventually(condition, interval=0) == 2


def test_eventually__gives_up_after_the_timeout_with_a_message() -> None:
    started = time.monotonic()
    expected = r"not true after 0.1s: jobs finished \(last value: 0\)"
    with pytest.raises(AssertionError, match=expected):
        eventually(lambda: 0, timeout=0.1, message="jobs finished")
    assert time.monotonic() - started < 2


def test_eventually__reports_the_last_assertion() -> None:
    def condition() -> None:
        raise AssertionError("status is queued")

    with pytest.raises(AssertionError, match="last error: status is queued"):
        eventually(condition, timeout=0.05)
