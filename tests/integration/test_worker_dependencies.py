"""``_depends_on``: a dependent waits until every dependency ended; a failed dependency
without ``allow_failure`` fails its dependents with ``DependencyFailed`` down the chain;
with ``allow_failure`` the dependent runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgwerk import Dependency, JobStatus, Werk
from tests import worker_jobs
from tests.helpers import eventually
from tests.worker_support import (
    create_events_table,
    events,
    running_worker,
    seconds_between,
    wait_all_terminal,
    wait_status,
)


@pytest.fixture(autouse=True)
def _events(app: Werk) -> None:
    create_events_table(app)


def test_worker__dependent_waits_until_every_dependency_ended(app: Werk, tmp_path: Path) -> None:
    gate = tmp_path / "open"
    with running_worker(app, concurrency=4):
        slow = app.enqueue(worker_jobs.wait_for_file, path=str(gate))
        quick = app.enqueue(worker_jobs.double, 1)
        assert slow is not None and quick is not None
        dependent = app.enqueue(worker_jobs.record, label="dependent", _depends_on=[slow, quick])
        assert dependent is not None and dependent.status is JobStatus.Waiting

        wait_status(app, quick, JobStatus.Complete)
        eventually(lambda: events(app, "gate-start", slow.id), timeout=10)
        # One dependency ended, the other runs: still waiting, with a free worker slot.
        assert app.get_job(dependent.id).status is JobStatus.Waiting
        gate.touch()
        done = wait_status(app, dependent, JobStatus.Complete, timeout=10)

    slow_done, quick_done = app.get_job(slow.id), app.get_job(quick.id)
    # Started after both ended (to within the few ms between a statement's now() and the
    # moment it saw the data).
    assert seconds_between(slow_done.completed_at, done.started_at) > -0.1
    assert seconds_between(quick_done.completed_at, done.started_at) > -0.1


def test_worker__failed_dependency_fails_the_chain_with_dependency_failed(app: Werk) -> None:
    with running_worker(app, concurrency=2):
        root = app.enqueue(worker_jobs.fail, "root cause", _delay=0.3)
        assert root is not None
        middle = app.enqueue(worker_jobs.record, label="middle", _depends_on=root)
        assert middle is not None
        leaf = app.enqueue(worker_jobs.record, label="leaf", _depends_on=Dependency(middle))
        assert leaf is not None
        assert (middle.status, leaf.status) == (JobStatus.Waiting, JobStatus.Waiting)
        ended = wait_all_terminal(app, [root, middle, leaf], timeout=10)

    assert [j.status for j in ended] == [JobStatus.Failed] * 3
    _, middle_done, leaf_done = ended
    assert "DependencyFailed" in (middle_done.error or "")
    assert f"dependency {root.id} (failed)" in (middle_done.error or "")
    assert "DependencyFailed" in (leaf_done.error or "")
    assert f"dependency {middle.id} (failed)" in (leaf_done.error or "")
    assert all(j.attempts == 0 and j.started_at is None for j in (middle_done, leaf_done))
    assert events(app) == []


def test_worker__allow_failure_runs_the_dependent_after_a_failed_dependency(app: Werk) -> None:
    with running_worker(app, concurrency=2):
        root = app.enqueue(worker_jobs.fail, _delay=0.3)
        assert root is not None
        tolerant = app.enqueue(worker_jobs.record, label="tolerant", value="ran",
                               _depends_on=Dependency(root, allow_failure=True))
        strict = app.enqueue(worker_jobs.record, label="strict", _depends_on=root.id)
        assert tolerant is not None and strict is not None
        ended = wait_all_terminal(app, [root, tolerant, strict], timeout=10)

    assert [j.status for j in ended] == [JobStatus.Failed, JobStatus.Complete, JobStatus.Failed]
    assert ended[1].result == "ran"
    assert [e["label"] for e in events(app)] == ["tolerant"]


def test_worker__a_cancelled_dependency_fails_its_dependents(
        app: Werk) -> None:
    with running_worker(app):
        root = app.enqueue(worker_jobs.double, 1, _delay=60)
        assert root is not None
        dependent = app.enqueue(worker_jobs.record, _depends_on=root)
        assert dependent is not None
        assert app.cancel_job(root.id)
        done = wait_status(app, dependent, JobStatus.Failed)

    assert "DependencyFailed" in (done.error or "") and "(aborted)" in (done.error or "")
