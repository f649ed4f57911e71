"""``_ttl`` (an unstarted job too old never runs: it ends ``expired``), ``_result_ttl`` /
``_failure_ttl`` (ended rows are deleted by the sweep after their time) and
``_failure_mode="delete"``."""

from __future__ import annotations

import pytest

from pgwerk import JobNotFound, JobStatus, Werk
from tests import worker_jobs
from tests.conftest import MakeApp
from tests.helpers import ago, set_columns
from tests.worker_support import (
    create_events_table,
    events,
    run_burst,
    running_worker,
    seconds_between,
    wait_status,
)


@pytest.fixture(autouse=True)
def _events(app: Werk) -> None:
    create_events_table(app)


def test_worker__never_runs_a_job_past_its_ttl_and_the_sweep_ends_it_expired(app: Werk) -> None:
    stale = app.enqueue(worker_jobs.record, label="stale", _ttl=60)
    fresh = app.enqueue(worker_jobs.record, label="fresh", _ttl=60)
    assert stale is not None and fresh is not None
    assert stale.expires_at is not None
    assert seconds_between(stale.enqueued_at, stale.expires_at) == pytest.approx(60)
    set_columns(app, stale.id, expires_at=ago(1))

    run_burst(app)

    assert app.get_job(fresh.id).status is JobStatus.Complete
    assert app.get_job(stale.id).status is JobStatus.Queued  # not claimed, not yet swept
    assert app.sweep()["expired"] == 1
    expired = app.get_job(stale.id)
    assert expired.status is JobStatus.Expired
    assert expired.attempts == 0 and expired.started_at is None
    assert "ttl" in (expired.error or "")
    assert [e["job_id"] for e in events(app)] == [fresh.id]


def test_worker__its_own_periodic_sweep_expires_stale_jobs(app: Werk) -> None:
    job = app.enqueue(worker_jobs.record, label="stale", _ttl=60, _delay=30)
    assert job is not None
    set_columns(app, job.id, expires_at=ago(1))

    with running_worker(app, sweep_interval=0.3):
        expired = wait_status(app, job, JobStatus.Expired, timeout=10)

    assert expired.started_at is None
    assert events(app) == []


def test_wait_for__an_expired_job_ends_the_wait(app: Werk) -> None:
    job = app.enqueue(worker_jobs.record, _ttl=60, _delay=30)
    assert job is not None
    set_columns(app, job.id, expires_at=ago(1))

    with running_worker(app, sweep_interval=0.3):
        assert app.wait_for(job, timeout=10).status is JobStatus.Expired


def test_sweep__deletes_a_complete_job_after_its_result_ttl(app: Werk) -> None:
    kept = app.enqueue(worker_jobs.double, 1, _result_ttl=3600)
    purged = app.enqueue(worker_jobs.double, 2, _result_ttl=3600)
    assert kept is not None and purged is not None
    run_burst(app)
    [row] = app._store.db.fetch("t", app._store.queries["job_get"], {"id": purged.id})
    assert seconds_between(row["completed_at"], row["purge_at"]) == pytest.approx(3600)

    assert app.sweep()["pruned"] == 0
    set_columns(app, purged.id, purge_at=ago(1))
    assert app.sweep()["pruned"] == 1

    with pytest.raises(JobNotFound):
        app.get_job(purged.id)
    assert app.get_job(kept.id).status is JobStatus.Complete


def test_sweep__deletes_a_failed_job_after_its_failure_ttl(app: Werk) -> None:
    job = app.enqueue(worker_jobs.fail, _failure_ttl=7200, _result_ttl=1)
    assert job is not None
    run_burst(app)
    [row] = app._store.db.fetch("t", app._store.queries["job_get"], {"id": job.id})
    assert row["status"] == "failed"
    assert seconds_between(row["completed_at"], row["purge_at"]) == pytest.approx(7200)

    assert app.sweep()["pruned"] == 0
    set_columns(app, job.id, purge_at=ago(1))
    assert app.sweep()["pruned"] == 1
    with pytest.raises(JobNotFound):
        app.get_job(job.id)


def test_worker__keeps_rows_forever_with_a_ttl_of_none(make_app: MakeApp) -> None:
    app = make_app(result_ttl=None)
    job = app.enqueue(worker_jobs.double, 1)
    assert job is not None
    run_burst(app)
    [row] = app._store.db.fetch("t", app._store.queries["job_get"], {"id": job.id})
    assert row["status"] == "complete" and row["purge_at"] is None


def test_worker__failure_mode_delete_removes_the_row_on_terminal_failure(app: Werk) -> None:
    job = app.enqueue(worker_jobs.record_and_fail, label="try", _retry=2,
                      _failure_mode="delete")
    kept = app.enqueue(worker_jobs.record_and_fail, label="kept")
    assert job is not None and kept is not None

    with running_worker(app):
        with pytest.raises(JobNotFound):
            app.wait_for(job, timeout=10)
        assert wait_status(app, kept, JobStatus.Failed).attempts == 1

    # Both attempts ran (the first failure was retried, not deleted).
    assert [e["data"]["attempt"] for e in events(app, "try")] == [1, 2]
    with pytest.raises(JobNotFound):
        app.get_job(job.id)
