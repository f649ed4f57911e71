"""Bad rows fail only their own job: a payload that cannot be decoded, a function that
cannot be imported. The worker keeps going."""

from __future__ import annotations

import pytest

from pgwerk import JobStatus, Werk
from tests import worker_jobs
from tests.helpers import set_columns
from tests.worker_support import run_burst, wait_all_terminal

POOLS = ["thread", "fork", "process"]


@pytest.mark.parametrize("pool", POOLS)
def test_worker__undecodable_payload_fails_only_that_job(app: Werk, pool: str) -> None:
    before = app.enqueue(worker_jobs.double, 1)
    bad = app.enqueue(worker_jobs.double, 2, _retry=2)
    after = app.enqueue(worker_jobs.double, 3)
    assert before and bad and after
    set_columns(app, bad.id, payload="{not json at all")

    run_burst(app, pool=pool, concurrency=1)

    first, broken, last = wait_all_terminal(app, [before, bad, after], timeout=5)
    assert (first.status, first.result) == (JobStatus.Complete, 2)
    assert (last.status, last.result) == (JobStatus.Complete, 6)
    assert broken.status is JobStatus.Failed
    assert "payload cannot be decoded" in (broken.error or "")
    assert "JSONSerializer" in (broken.error or "")
    assert broken.attempts == 1  # _retry=2, but no retry could decode it


@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("path", [
    "tests.worker_jobs.no_such_function",
    "no_such_package.tasks.job",
    "tests.worker_jobs.EVENTS_TABLE",  # exists, but is not callable
])
def test_worker__unknown_function_fails_only_that_job(app: Werk, pool: str, path: str) -> None:
    bad = app.enqueue(path, 1)
    good = app.enqueue(worker_jobs.double, 5)
    assert bad is not None and good is not None

    run_burst(app, pool=pool, concurrency=1)

    broken, fine = wait_all_terminal(app, [bad, good], timeout=5)
    assert broken.status is JobStatus.Failed and broken.attempts == 1
    assert path in (broken.error or "")
    assert (fine.status, fine.result) == (JobStatus.Complete, 10)


def test_worker__result_that_cannot_be_encoded_fails_the_job_with_a_clear_error(
        app: Werk) -> None:
    job = app.enqueue("tests.worker_jobs.pid")
    bad = app.enqueue("os.getcwdb")  # returns bytes: not JSON
    assert job is not None and bad is not None

    run_burst(app)

    fine, broken = wait_all_terminal(app, [job, bad], timeout=5)
    assert fine.status is JobStatus.Complete
    assert broken.status is JobStatus.Failed
    assert "cannot be encoded by JSONSerializer" in (broken.error or "")
