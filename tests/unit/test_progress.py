"""``ctx.progress`` checks its arguments wherever it is called; the throttle between the
reports and the database; the sender that carries reports out of a fork or process child.
Pure: no database."""

from __future__ import annotations

import math
import os
import pickle
import select
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import pytest

from pgwerk import Context, Job, JobStatus
from pgwerk._process_pools import ProgressFrame, _ProgressSender, _read_frame, _write_frame
from pgwerk._progress import Throttle
from pgwerk.job import PROGRESS_MESSAGE_MAX
from tests.helpers import job_record


def _job(**changes: object) -> Job:
    """A running job's record (its first attempt)."""
    return job_record(**{"status": JobStatus.Active, "attempts": 1, **changes})


def _context(received: list[tuple[Any, ...]] | None = None) -> Context:
    sink = None if received is None else (lambda *report: received.append(report))
    return Context(app=None, job=_job(), _progress=sink)  # type: ignore[arg-type]


# -- ctx.progress: the arguments ------------------------------------------------------------


@pytest.mark.parametrize(("fraction", "message"), [
    (0, None), (1, "done"), (0.25, "step 2 of 8"), (Fraction(1, 3), None),
    (0.5, "\N{GRINNING FACE}" * PROGRESS_MESSAGE_MAX),
])
def test_progress__real_numbers_from_0_to_1_reach_the_worker(fraction: Any,
                                                            message: str | None) -> None:
    received: list[tuple[Any, ...]] = []
    ctx = _context(received)
    ctx.progress(fraction, message)
    assert received == [(ctx.job, float(fraction), message)]
    assert type(received[0][1]) is float


def test_progress__outside_a_worker_is_checked_and_goes_nowhere() -> None:
    ctx = _context()  # no worker: a Context made by hand, as in a handler's unit test
    assert ctx.worker is None
    ctx.progress(0.5, "half")  # nothing to see, nothing raised
    with pytest.raises(ValueError, match="fraction"):
        ctx.progress(2)


@pytest.mark.parametrize(("fraction", "error"), [
    (True, TypeError), (False, TypeError), ("0.5", TypeError), (None, TypeError),
    (0.5j, TypeError), (-0.01, ValueError), (1.0001, ValueError), (2, ValueError),
    (math.nan, ValueError), (math.inf, ValueError), (10**400, ValueError),
])
def test_progress__a_fraction_that_is_not_a_real_number_from_0_to_1_is_refused(
        fraction: Any, error: type[Exception]) -> None:
    received: list[tuple[Any, ...]] = []
    with pytest.raises(error, match=r"^ctx.progress\(\): fraction must be"):
        _context(received).progress(fraction)
    assert received == []


@pytest.mark.parametrize(("message", "error", "says"), [
    (7, TypeError, "must be a string or None"),
    (b"step", TypeError, "must be a string or None"),
    ("", ValueError, "non-empty string of at most 500 characters"),
    ("x" * (PROGRESS_MESSAGE_MAX + 1), ValueError, "at most 500 characters"),
    ("a\x00b", ValueError, "NUL character"),
    ("\ud800", ValueError, "lone surrogate"),
])
def test_progress__a_message_that_cannot_be_stored_is_refused(
        message: Any, error: type[Exception], says: str) -> None:
    received: list[tuple[Any, ...]] = []
    with pytest.raises(error, match=r"^ctx.progress\(\): message ") as raised:
        _context(received).progress(0.5, message)
    assert says in str(raised.value)
    assert received == []


# -- the throttle ----------------------------------------------------------------------------


class Pending:
    """Counts the throttle's calls of ``on_pending``."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def test_throttle__the_first_report_is_due_at_once() -> None:
    throttle = Throttle()
    assert throttle.wait(now=100.0) is None
    throttle.report(7, 1, (0.1, "a"), now=100.0)
    assert throttle.wait(now=100.0) == pytest.approx(-100.0)  # due since ever
    assert throttle.take_due(now=100.0) == [(7, 1, 0.1, "a")]
    assert throttle.wait(now=100.0) is None


def test_throttle__reports_within_a_second_of_a_write_wait_and_the_newest_wins() -> None:
    throttle = Throttle()
    throttle.report(7, 1, (0.1, "a"), now=100.0)
    throttle.take_due(now=100.0)
    for step in range(2, 50):
        throttle.report(7, 1, (step / 100, f"step {step}"), now=100.0 + step / 100)
    assert throttle.wait(now=100.5) == pytest.approx(0.5)
    assert throttle.take_due(now=100.5) == []
    assert throttle.take_due(now=101.0) == [(7, 1, 0.49, "step 49")]
    assert throttle.take_due(now=102.0) == []  # nothing new


def test_throttle__jobs_are_throttled_each_on_its_own() -> None:
    throttle = Throttle()
    throttle.report(1, 1, (0.1, None), now=10.0)
    throttle.take_due(now=10.0)
    throttle.report(1, 1, (0.2, None), now=10.2)
    throttle.report(2, 1, (0.9, None), now=10.2)
    assert throttle.take_due(now=10.2) == [(2, 1, 0.9, None)]
    assert throttle.take_due(now=11.0) == [(1, 1, 0.2, None)]


def test_throttle__tells_the_writer_only_when_a_job_gets_something_to_write() -> None:
    pending = Pending()
    throttle = Throttle(pending)
    for step in range(5):
        throttle.report(7, 1, (step / 10, None), now=10.0)
    assert pending.calls == 1
    throttle.take_due(now=10.0)
    throttle.report(7, 1, (0.9, None), now=10.1)
    throttle.report(7, 1, (1.0, None), now=10.2)
    assert pending.calls == 2


def test_throttle__the_value_left_when_the_attempt_ends_goes_with_its_outcome() -> None:
    throttle = Throttle()
    throttle.report(7, 1, (0.1, "a"), now=10.0)
    throttle.written(throttle.take_due(now=10.0))
    throttle.report(7, 1, (1.0, "done"), now=10.3)
    assert throttle.finish(7, 1) == (1.0, "done")
    assert throttle.take_due(now=20.0) == []  # forgotten: nothing written twice
    assert throttle.finish(7, 1) is None


def test_throttle__a_written_value_is_not_written_again_with_the_outcome() -> None:
    throttle = Throttle()
    throttle.report(7, 1, (0.5, None), now=10.0)
    throttle.written(throttle.take_due(now=10.0))
    assert throttle.finish(7, 1) is None  # no statement spent on it
    throttle.report(8, 1, (0.5, None), now=10.0)
    throttle.written(throttle.take_due(now=10.0))
    assert throttle.take_due(now=11.5) == []  # and forgotten once a second passed
    assert throttle.finish(8, 1) is None


def test_throttle__a_value_on_its_way_is_written_with_the_outcome_too() -> None:
    throttle = Throttle()
    throttle.report(7, 1, (0.5, "half"), now=10.0)
    rows = throttle.take_due(now=10.0)  # the writer has it; the attempt ends meanwhile
    assert throttle.finish(7, 1) == (0.5, "half")
    throttle.unwritten(rows)  # and its write fails: nothing left to do
    assert throttle.take_due(now=20.0) == []


def test_throttle__a_new_attempt_starts_afresh() -> None:
    throttle = Throttle()
    throttle.report(7, 1, (0.8, None), now=10.0)
    throttle.take_due(now=10.0)
    throttle.report(7, 2, (0.1, None), now=10.1)  # attempt 1 was lost; attempt 2 reports
    assert throttle.take_due(now=10.1) == [(7, 2, 0.1, None)]
    assert throttle.finish(7, 1) is None
    assert throttle.finish(7, 2) == (0.1, None)


def test_throttle__values_that_could_not_be_written_wait_for_the_next_turn() -> None:
    throttle = Throttle()
    throttle.report(7, 1, (0.1, None), now=10.0)
    throttle.report(8, 1, (0.2, None), now=10.0)
    rows = throttle.take_due(now=10.0)
    throttle.report(8, 1, (0.3, None), now=10.1)  # newer than what failed
    throttle.unwritten(rows)
    assert throttle.take_due(now=10.5) == []
    assert sorted(throttle.take_due(now=11.0)) == [(7, 1, 0.1, None), (8, 1, 0.3, None)]


# -- out of a child --------------------------------------------------------------------------


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read, write = os.pipe()
    yield read, write
    os.close(read)
    os.close(write)


def _next_frame(fd: int, timeout: float = 5.0) -> Any:
    readable, _, _ = select.select([fd], [], [], timeout)
    assert readable, f"no frame within {timeout}s"
    return _read_frame(fd)


def test_sender__sends_the_first_report_and_the_newest_of_the_next_second(
        pipe: tuple[int, int]) -> None:
    read, write = pipe
    sender = _ProgressSender(write)
    job = _job()
    sender.begin(job)
    for step in range(1, 101):
        sender.report(job, step / 100, f"step {step}")
    assert _next_frame(read) == ProgressFrame(0.01, "step 1")
    assert _next_frame(read) == ProgressFrame(1.0, "step 100")  # sent by its own thread
    sender.end()


def test_sender__sends_what_waits_before_the_outcome_and_nothing_after_for_that_job(
        pipe: tuple[int, int]) -> None:
    read, write = pipe
    sender = _ProgressSender(write)
    job, next_job = _job(), _job(id=8)
    sender.begin(job)
    sender.report(job, 0.1, None)
    sender.report(job, 0.9, "almost")  # within the second: waits
    sender.end()
    sender.report(job, 1.0, "late")  # a thread the handler left behind
    _write_frame(write, "outcome")
    sender.begin(next_job)
    sender.report(job, 1.0, "later")  # ... still reporting while the next job runs
    sender.report(next_job, 0.2, "next")
    assert _next_frame(read) == ProgressFrame(0.1, None)
    assert _next_frame(read) == ProgressFrame(0.9, "almost")
    assert _next_frame(read) == "outcome"
    assert _next_frame(read) == ProgressFrame(0.2, "next")


def test_sender__the_largest_report_fits_in_one_atomic_pipe_write() -> None:
    frame = ProgressFrame(1 / 3, "\N{GRINNING FACE}" * PROGRESS_MESSAGE_MAX)
    assert 4 + len(pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)) <= select.PIPE_BUF
