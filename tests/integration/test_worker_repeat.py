"""``_repeat``: after each success the job is enqueued again, exactly ``times`` more runs,
each waiting the interval asked for."""

from __future__ import annotations

from itertools import pairwise

import pytest

from pgwerk import Job, JobStatus, Repeat, Werk
from tests import worker_jobs
from tests.helpers import eventually
from tests.worker_support import create_events_table, running_worker, seconds_between


@pytest.fixture(autouse=True)
def _events(app: Werk) -> None:
    create_events_table(app)


def runs_of(app: Werk, function: str, count: int) -> list[Job]:
    """Wait for ``count`` complete runs of ``function``; return them oldest first."""

    def complete() -> list[Job] | None:
        jobs = app.list_jobs(function=function, status=JobStatus.Complete)
        return sorted(jobs, key=lambda j: j.id) if len(jobs) >= count else None

    return eventually(complete, timeout=15, message=f"{count} runs of {function}")


def spacing(runs: list[Job]) -> list[float]:
    return [seconds_between(a.completed_at, b.started_at) for a, b in pairwise(runs)]


def test_worker__repeat_runs_exactly_times_more_spaced_by_the_interval(app: Werk) -> None:
    with running_worker(app, concurrency=2):
        first = app.enqueue(worker_jobs.record, label="tick", value=7,
                            _repeat=Repeat(times=2, interval=0.4))
        assert first is not None
        runs = runs_of(app, "tests.worker_jobs.record", 3)
    # The worker has stopped: every repeat it was going to enqueue is enqueued.

    every = app.list_jobs(function="tests.worker_jobs.record")
    assert len(every) == 3
    assert runs[0].id == first.id
    assert all(r.result == 7 and r.kwargs == {"label": "tick", "value": 7} for r in runs)
    for gap in spacing(runs):
        assert 0.4 <= gap < 1.5, spacing(runs)


def test_worker__repeat_intervals_set_each_delay_and_the_last_one_repeats(app: Werk) -> None:
    with running_worker(app, concurrency=1):
        first = app.enqueue(worker_jobs.double, 5, _repeat=Repeat(times=3, intervals=[0.2, 0.6]))
        assert first is not None
        runs = runs_of(app, "tests.worker_jobs.double", 4)

    assert len(app.list_jobs(function="tests.worker_jobs.double")) == 4
    assert [r.result for r in runs] == [10] * 4
    for gap, delay in zip(spacing(runs), [0.2, 0.6, 0.6], strict=True):
        assert delay <= gap < delay + 1.0, spacing(runs)


def test_worker__a_failed_run_ends_the_repetition(app: Werk) -> None:
    with running_worker(app):
        job = app.enqueue(worker_jobs.fail, _repeat=Repeat(times=3, interval=0))
        assert job is not None
        assert app.wait_for(job, timeout=10).status is JobStatus.Failed

    assert len(app.list_jobs(function="tests.worker_jobs.fail")) == 1
