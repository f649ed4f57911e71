"""What a worker logs about jobs: a ``started`` line per job and every claim and batch at
DEBUG, the fields of an attempt's end, and a job id on every line about one job."""

from __future__ import annotations

import logging

import pytest

from pgwerk import JobStatus, Werk
from tests import jobs
from tests.helpers import eventually
from tests.worker_support import running_worker, wait_status


def _about(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


def test_debug__started_line_per_job_and_claims_and_batches(
        app: Werk, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pgwerk")
    job = app.enqueue(jobs.add, 1, 2)
    failed = app.enqueue(jobs.fail, "bad input")
    assert job is not None and failed is not None
    with running_worker(app, concurrency=2):
        wait_status(app, job, JobStatus.Complete)
        wait_status(app, failed, JobStatus.Failed)
    started = _about(caplog, f"job {job.id} tests.jobs.add started")
    assert [r.levelno for r in started] == [logging.DEBUG]
    assert started[0].job_id == job.id and started[0].attempt == 1  # type: ignore[attr-defined]
    assert _about(caplog, "claimed ") and _about(caplog, "outcome(s) in one batch")
    end = _about(caplog, f"job {failed.id} tests.jobs.fail: error")[0]
    assert end.attempt == 1 and end.duration >= 0  # type: ignore[attr-defined]
    assert end.worker_id.count(".") >= 2  # type: ignore[attr-defined]
    assert "ValueError: bad input" in end.job_error  # type: ignore[attr-defined]


def test_abandoned_thread__its_warnings_carry_the_job_id(
        app: Werk, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pgwerk")
    with running_worker(app, concurrency=1, timeout_grace=0.2):
        job = app.enqueue(jobs.sleep_for, 1.5, _timeout=0.2)  # time.sleep: blocked in C
        assert job is not None
        wait_status(app, job, JobStatus.Failed)
        eventually(lambda: _about(caplog, "finally returned"), timeout=10)
    # (the start-up warning names the schema, which holds this test's name)
    lines = [r for r in _about(caplog, "abandoned") if r.name != "pgwerk._allowlist"]
    assert len(lines) == 3  # abandoned, recorded as timed out, finally returned
    assert all(r.job_id == job.id for r in lines)  # type: ignore[attr-defined]
