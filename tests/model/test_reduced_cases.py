"""The smallest reproductions of what the model-based test found, one test each.

A case marked ``xfail(strict=True)`` is a known defect of the library: when it is fixed the
test passes, the strict mark fails the suite, and the mark (and the matching exclusion in
``test_job_lifecycle.py``) must go.
"""

from __future__ import annotations

import pytest

from pgwerk import JobStatus, Werk, Worker


def claim_one(app: Werk) -> list[int]:
    worker = Worker(app, name="reduced")
    worker._register()
    return [job.id for job in worker._claim(1)]


@pytest.mark.parametrize("end_it", ["cancel_job", "abort_job"])
def test_requeue__a_dependent_whose_parent_has_not_ended_waits_again(app: Werk,
                                                                     end_it: str) -> None:
    parent = app.enqueue("tests.jobs.noop", _delay=3600)
    assert parent is not None
    child = app.enqueue("tests.jobs.noop", _depends_on=parent)
    assert child is not None and child.status is JobStatus.Waiting
    assert getattr(app, end_it)(child.id)  # ends 'aborted' without running

    assert app.requeue_job(child.id)

    assert app.get_job(child.id).status is JobStatus.Waiting
    assert claim_one(app) == []


def test_requeue__a_dependent_whose_parent_ended_runs_again(app: Werk) -> None:
    """The other side of the case above: once the parent ended, a requeued dependent runs."""
    parent = app.enqueue("tests.jobs.noop")
    assert parent is not None
    child = app.enqueue("tests.jobs.noop", _depends_on=parent, _delay=3600)
    assert child is not None and app.cancel_job(child.id)
    assert app.cancel_job(parent.id)  # the parent ends too (aborted)

    assert app.requeue_job(child.id)

    assert app.get_job(child.id).status is JobStatus.Queued
    assert claim_one(app) == [child.id]
