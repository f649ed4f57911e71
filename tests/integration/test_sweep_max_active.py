"""The sweep's staleness rule for jobs that do not heartbeat: ``max_active_secs``, or the
job's own ``_timeout`` plus a minute when that is longer."""

from __future__ import annotations

from pgwerk import JobStatus, Werk
from tests import jobs
from tests.conftest import MakeApp
from tests.helpers import query


def _running_under_live_worker(app: Werk, job_id: int, seconds_ago: float) -> None:
    query(app, "INSERT INTO {workers} (id, hostname, pid, queues, concurrency, pool) "
               "VALUES ('alive', 'h', 1, ARRAY['default'], 1, 'thread')")
    query(app, "UPDATE {jobs} SET status = 'active', attempts = 1, worker_id = 'alive', "
               "started_at = now() - make_interval(secs => %s), heartbeat_at = started_at "
               "WHERE id = %s", (seconds_ago, job_id))


def test_sweep__a_touched_job_without_heartbeat_stays(make_app: MakeApp) -> None:
    app = make_app(max_active_secs=2).connect()
    job = app.enqueue(jobs.noop)
    assert job is not None
    _running_under_live_worker(app, job.id, seconds_ago=5)

    assert app.touch_job(job.id)

    assert app.sweep()["rescued"] == 0
    assert app.get_job(job.id).status is JobStatus.Active


def test_touch_job__renews_only_running_jobs(app: Werk) -> None:
    job = app.enqueue(jobs.noop)
    assert job is not None
    assert app.touch_job(job.id) is False
    assert app.get_job(job.id).heartbeat_at is None


def test_sweep__rescues_a_job_active_longer_than_max_active_secs(make_app: MakeApp) -> None:
    app = make_app(max_active_secs=2).connect()
    job = app.enqueue(jobs.noop)
    assert job is not None
    _running_under_live_worker(app, job.id, seconds_ago=5)
    assert app.sweep()["rescued"] == 1
    assert app.get_job(job.id).status is JobStatus.Queued


def test_sweep__leaves_a_job_within_max_active_secs(make_app: MakeApp) -> None:
    app = make_app(max_active_secs=60).connect()
    job = app.enqueue(jobs.noop)
    assert job is not None
    _running_under_live_worker(app, job.id, seconds_ago=5)
    assert app.sweep()["rescued"] == 0
    assert app.get_job(job.id).status is JobStatus.Active


def test_sweep__a_timeout_longer_than_max_active_secs_extends_it(make_app: MakeApp) -> None:
    app = make_app(max_active_secs=2).connect()
    job = app.enqueue(jobs.noop, _timeout=30)
    assert job is not None
    _running_under_live_worker(app, job.id, seconds_ago=5)
    assert app.sweep()["rescued"] == 0
    assert app.get_job(job.id).status is JobStatus.Active
