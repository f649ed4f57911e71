"""``sweep()`` on rows built by hand in the states a crash or the clock leaves them in."""

from __future__ import annotations

import psycopg
import pytest

from pgwerk import JobNotFound, JobStatus, Werk
from pgwerk._sweep import leader_lock_key
from tests import jobs
from tests.helpers import ChannelSpy, ago, make_job, query


def test_sweep__expires_unstarted_job_past_its_ttl(app: Werk) -> None:
    stale = make_job(app, options={"_ttl": 60}, expires_at=ago(1))
    fresh = make_job(app, options={"_ttl": 60})
    with ChannelSpy(app.dsn, app._store.channel) as spy:
        assert app.sweep()["expired"] == 1
        assert spy.payloads() == [f"d:{stale.id}"]
    expired = app.get_job(stale.id)
    assert expired.status is JobStatus.Expired
    assert expired.completed_at is not None
    assert expired.error is not None and "ttl" in expired.error
    assert app.get_job(fresh.id).status is JobStatus.Queued


@pytest.mark.parametrize("options", [{"_delay": 60}, {}], ids=["scheduled", "queued"])
def test_sweep__expires_scheduled_and_queued_jobs(app: Werk, options: dict[str, object]) -> None:
    job = make_job(app, options={"_ttl": 30, **options}, expires_at=ago(1))
    app.sweep()
    assert app.get_job(job.id).status is JobStatus.Expired


def test_sweep__does_not_expire_a_started_job(app: Werk) -> None:
    query(app, "INSERT INTO {workers} (id, hostname, pid, queues, concurrency, pool)"
               " VALUES ('w1', 'h', 1, ARRAY['default'], 1, 'thread')")
    job = make_job(app, options={"_ttl": 30}, expires_at=ago(1), status="active",
                   worker_id="w1", attempts=1, started_at=ago(2), heartbeat_at=ago(0))
    assert app.sweep()["expired"] == 0
    assert app.get_job(job.id).status is JobStatus.Active


def test_sweep__expiry_fails_waiting_dependents(app: Werk) -> None:
    upstream = make_job(app, options={"_ttl": 30}, expires_at=ago(1))
    dependent = app.enqueue(jobs.noop, _depends_on=upstream)
    assert dependent is not None
    app.sweep()
    failed = app.get_job(dependent.id)
    assert failed.status is JobStatus.Failed
    assert failed.error is not None and "DependencyFailed" in failed.error


def test_sweep__deletes_rows_past_their_retention(app: Werk) -> None:
    gone = make_job(app, status="complete", completed_at=ago(20), purge_at=ago(1))
    kept = make_job(app, status="complete", completed_at=ago(20), purge_at=ago(-3600))
    forever = make_job(app, status="failed", completed_at=ago(20), purge_at=None)
    assert app.sweep()["pruned"] == 1
    with pytest.raises(JobNotFound):
        app.get_job(gone.id)
    assert app.get_job(kept.id).status is JobStatus.Complete
    assert app.get_job(forever.id).status is JobStatus.Failed


def test_sweep__requeues_an_active_job_whose_worker_is_gone(app: Werk) -> None:
    job = make_job(app, options={"_queue": "q"}, status="active", attempts=1,
                   worker_id="dead-worker", started_at=ago(30), heartbeat_at=ago(30))
    with ChannelSpy(app.dsn, app._store.channel) as spy:
        assert app.sweep()["rescued"] == 1
        assert "q:q" in spy.payloads()
    rescued = app.get_job(job.id)
    assert rescued.status is JobStatus.Queued
    assert (rescued.lost, rescued.worker_id) == (1, None)
    [run] = app.get_executions(job.id)
    assert (run.attempt, run.worker_id, run.outcome) == (1, "dead-worker", "lost")


def test_sweep__fails_a_job_lost_too_many_times(make_app: object) -> None:
    app: Werk = make_app(max_lost=1).connect()  # type: ignore[operator]
    job = make_job(app, status="active", attempts=2, lost=1, worker_id="dead",
                   started_at=ago(30))
    app.sweep()
    failed = app.get_job(job.id)
    assert failed.status is JobStatus.Failed
    assert failed.error is not None and "lost" in failed.error


def test_sweep__aborting_job_of_a_dead_worker_ends_aborted(app: Werk) -> None:
    job = make_job(app, status="aborting", attempts=1, worker_id="dead", started_at=ago(30))
    app.sweep()
    assert app.get_job(job.id).status is JobStatus.Aborted


def test_sweep__leaves_jobs_of_a_live_worker_alone(app: Werk) -> None:
    query(app, "INSERT INTO {workers} (id, hostname, pid, queues, concurrency, pool)"
               " VALUES ('alive', 'h', 1, ARRAY['default'], 1, 'thread')")
    job = make_job(app, status="active", attempts=1, worker_id="alive", started_at=ago(1),
                   heartbeat_at=ago(0))
    assert app.sweep()["rescued"] == 0
    assert app.get_job(job.id) == job


def test_sweep__promotes_waiting_job_whose_dependency_ended(app: Werk) -> None:
    upstream = make_job(app)
    dependent = app.enqueue(jobs.noop, _depends_on=upstream)
    assert dependent is not None
    # the upstream ended without anyone resolving its dependents (a crash in between)
    query(app, "UPDATE {jobs} SET status = 'complete', completed_at = now() WHERE id = %s",
          [upstream.id])
    assert app.sweep()["resolved"] == 1
    assert app.get_job(dependent.id).status is JobStatus.Queued


def test_sweep__skips_when_another_process_is_sweeping(app: Werk) -> None:
    stale = make_job(app, options={"_ttl": 60}, expires_at=ago(1))
    with psycopg.connect(app.dsn) as other:
        other.execute("SELECT pg_advisory_xact_lock(%s)", [leader_lock_key(app._store)])
        assert app.sweep() == {}
        other.rollback()
    assert app.get_job(stale.id).status is JobStatus.Queued
    assert app.sweep()["expired"] == 1


def test_sweep__on_an_empty_queue_changes_nothing(app: Werk) -> None:
    assert set(app.sweep().values()) == {0}


def test_sweep__vacuums_the_jobs_table_once_dead_rows_pile_up(app: Werk) -> None:
    from pgwerk._sweep import vacuum_jobs
    from tests.helpers import eventually, query

    with app._store.db.connection() as conn:
        assert vacuum_jobs(app._store, conn) == 0  # nothing dead yet
    query(app, "INSERT INTO {jobs} (function, status, payload) "
               "SELECT 'tests.jobs.noop', 'complete', '{{}}' FROM generate_series(1, 30000)")
    query(app, "DELETE FROM {jobs}")
    dead = "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = %s::regclass"
    name = f'"{app.config.schema}"."{app.config.prefix}_jobs"'
    eventually(lambda: query(app, dead, (name,))[0]["n_dead_tup"] >= 30000, timeout=15)

    assert app.sweep()["vacuumed"] == 1
    assert query(app, "SELECT last_vacuum FROM pg_stat_user_tables "
                      "WHERE relid = %s::regclass", (name,))[0]["last_vacuum"] is not None
    assert app.sweep()["vacuumed"] == 0  # not again within the interval


def test_sweep__each_step_runs_alone_as_of_a_chosen_moment(app: Werk) -> None:
    """The maintenance steps take the moment to act at: a pass "an hour from now" expires
    a job whose ttl ends in half an hour and rescues a job of a worker that heartbeats now,
    while a pass at the database's clock touches neither."""
    from datetime import datetime, timedelta, timezone

    from pgwerk._sweep import run_sweep

    store = app._store
    query(app, "INSERT INTO {workers} (id, hostname, pid, queues, concurrency, pool)"
               " VALUES ('w1', 'h', 1, ARRAY['default'], 1, 'thread')")
    later = make_job(app, options={"_ttl": 1800})
    running = make_job(app, status="active", worker_id="w1", attempts=1, started_at=ago(1),
                       heartbeat_at=ago(0))
    assert store.expire() == 0 and store.rescue_orphans() == []
    in_an_hour = datetime.now(timezone.utc) + timedelta(hours=1)
    assert store.expire(now=in_an_hour) == 1
    assert [r["id"] for r in store.rescue_orphans(now=in_an_hour)] == [running.id]
    assert app.get_job(later.id).status is JobStatus.Expired
    assert app.get_job(running.id).status is JobStatus.Queued
    # A whole pass as of then prunes what has been kept until before it.
    kept = make_job(app, status="complete", completed_at=ago(20), purge_at=ago(-1800))
    assert run_sweep(store, now=in_an_hour)["pruned"] == 1
    with pytest.raises(JobNotFound):
        app.get_job(kept.id)
