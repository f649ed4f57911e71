"""``_depends_on`` at enqueue: a Job, an id, a Dependency or a list of them."""

from __future__ import annotations

import pytest

from pgwerk import Dependency, JobStatus, Werk
from tests import jobs
from tests.helpers import count_rows, make_job, query


def upstream_ids(app: Werk, job_id: int) -> list[tuple[int, bool]]:
    return [(d["id"], d["allow_failure"]) for d in app.get_job_dependencies(job_id)]


def test_depends_on__job_makes_the_dependent_wait(app: Werk) -> None:
    first = app.enqueue(jobs.noop)
    assert first is not None
    second = app.enqueue(jobs.noop, _depends_on=first)
    assert second is not None
    assert second.status is JobStatus.Waiting
    assert app.get_job(second.id) == second
    assert upstream_ids(app, second.id) == [(first.id, False)]


def test_depends_on__job_id(app: Werk) -> None:
    first = make_job(app)
    second = app.enqueue(jobs.noop, _depends_on=first.id)
    assert second is not None and second.status is JobStatus.Waiting
    assert upstream_ids(app, second.id) == [(first.id, False)]


def test_depends_on__dependency_with_allow_failure(app: Werk) -> None:
    first = make_job(app)
    second = app.enqueue(jobs.noop, _depends_on=Dependency(first, allow_failure=True))
    assert second is not None and second.status is JobStatus.Waiting
    assert upstream_ids(app, second.id) == [(first.id, True)]


def test_depends_on__list_of_mixed_kinds(app: Werk) -> None:
    a, b, c = make_job(app), make_job(app), make_job(app)
    job = app.enqueue(jobs.noop, _depends_on=[a, b.id, Dependency(c, allow_failure=True)])
    assert job is not None and job.status is JobStatus.Waiting
    assert upstream_ids(app, job.id) == [(a.id, False), (b.id, False), (c.id, True)]


def test_depends_on__marks_the_upstream_as_having_dependents(app: Werk) -> None:
    first = make_job(app)
    assert query(app, "SELECT has_dependents FROM {jobs} WHERE id = %s", [first.id]) == [
        {"has_dependents": False}]
    app.enqueue(jobs.noop, _depends_on=first)
    assert query(app, "SELECT has_dependents FROM {jobs} WHERE id = %s", [first.id]) == [
        {"has_dependents": True}]


def test_depends_on__chain_waits_at_every_step(app: Werk) -> None:
    a = make_job(app)
    b = app.enqueue(jobs.noop, _depends_on=a)
    assert b is not None
    c = app.enqueue(jobs.noop, _depends_on=b)
    assert c is not None and c.status is JobStatus.Waiting


def test_depends_on__already_complete_dependency_is_queued_at_once(app: Werk) -> None:
    done = make_job(app, status="complete")
    job = app.enqueue(jobs.noop, _depends_on=done)
    assert job is not None
    assert job.status is JobStatus.Queued
    assert app.get_job(job.id) == job


def test_depends_on__complete_dependency_with_delay_is_scheduled(app: Werk) -> None:
    done = make_job(app, status="complete")
    job = app.enqueue(jobs.noop, _depends_on=done, _delay=60)
    assert job is not None and job.status is JobStatus.Scheduled


@pytest.mark.parametrize("status", ["failed", "aborted", "expired"])
def test_depends_on__already_failed_dependency_fails_the_dependent(app: Werk, status: str) -> None:
    broken = make_job(app, status=status)
    job = app.enqueue(jobs.noop, _depends_on=broken)
    assert job is not None
    assert job.status is JobStatus.Failed
    assert job.error is not None and "DependencyFailed" in job.error
    assert f"{broken.id} ({status})" in job.error
    assert job.completed_at is not None
    assert app.get_job(job.id) == job


def test_depends_on__already_failed_dependency_with_allow_failure_is_queued(app: Werk) -> None:
    broken = make_job(app, status="failed")
    job = app.enqueue(jobs.noop, _depends_on=Dependency(broken, allow_failure=True))
    assert job is not None and job.status is JobStatus.Queued


def test_depends_on__one_pending_dependency_keeps_it_waiting(app: Werk) -> None:
    done = make_job(app, status="complete")
    pending = make_job(app)
    job = app.enqueue(jobs.noop, _depends_on=[done, pending])
    assert job is not None and job.status is JobStatus.Waiting


def test_depends_on__missing_job_is_a_value_error_and_writes_nothing(app: Werk) -> None:
    with pytest.raises(ValueError, match="do not exist: 987654"):
        app.enqueue(jobs.noop, _depends_on=987654)
    assert count_rows(app) == 0
    assert count_rows(app, "job_deps") == 0


def test_depends_on__key_collision_links_nothing(app: Werk) -> None:
    upstream = make_job(app)
    app.enqueue(jobs.noop, _key="once")
    assert app.enqueue(jobs.noop, _key="once", _depends_on=upstream) is None
    assert count_rows(app) == 2
    assert count_rows(app, "job_deps") == 0
    assert query(app, "SELECT has_dependents FROM {jobs} WHERE id = %s", [upstream.id]) == [
        {"has_dependents": False}]
