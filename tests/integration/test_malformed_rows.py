"""A row whose stored data cannot be decoded (written by hand, or by another version)
fails its own job with the reason; the claim that brought it, the other jobs of that
claim and every listing go on."""

from __future__ import annotations

import pytest

from pgwerk import JobStatus, Werk
from tests import worker_jobs
from tests.helpers import set_columns
from tests.worker_support import run_burst, wait_all_terminal

MALFORMED = {
    "repeat": '{"count": 2}',
    "callbacks": '{"success": {"timeout": 1}}',
    "retry_intervals": '["soon"]',
    "meta": '[1, 2]',
}


@pytest.mark.parametrize("column", sorted(MALFORMED))
def test_worker__a_malformed_row_fails_alone_and_the_claim_goes_on(
        app: Werk, column: str) -> None:
    before = app.enqueue(worker_jobs.double, 1)
    bad = app.enqueue(worker_jobs.double, 2)
    after = app.enqueue(worker_jobs.double, 3)
    assert before and bad and after
    set_columns(app, bad.id, **{column: MALFORMED[column]})

    listed = {job.id: job for job in app.list_jobs()}
    assert column in (listed[bad.id].payload_error or "")

    run_burst(app, concurrency=4)

    first, broken, last = wait_all_terminal(app, [before, bad, after], timeout=10)
    assert (first.result, last.result) == (2, 6)
    assert broken.status is JobStatus.Failed
    assert f"{column} cannot be decoded" in (broken.error or "")
