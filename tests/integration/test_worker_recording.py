"""The completion writer records every outcome, whatever the outcome holds: one outcome
that cannot be written fails that job alone, and the writer goes on. A job's next run
(``_repeat``) and its dependents' promotion commit with its outcome."""

from __future__ import annotations

import json
import threading

import psycopg
import pytest
from psycopg import sql

from pgwerk import JobStatus, Repeat, Werk
from pgwerk.options import repeat_spec
from pgwerk.store.core import OutcomeBatch
from tests import worker_jobs
from tests.helpers import ago, eventually, query, set_columns, table
from tests.worker_support import run_burst, running_worker, wait_all_terminal


def test_worker__records_an_error_holding_a_nul_character(app: Werk) -> None:
    bad = app.enqueue(worker_jobs.fail_with_nul)
    assert bad is not None

    with running_worker(app, concurrency=1):
        failed = app.wait_for(bad, timeout=10)
        later = app.enqueue(worker_jobs.double, 4)
        assert later is not None
        assert app.wait_for(later, timeout=10).result == 8

    assert failed.status is JobStatus.Failed
    assert "bad byte \\x00 in the middle" in (failed.error or "")


def test_worker__an_outcome_that_cannot_be_written_fails_only_its_job(app: Werk) -> None:
    good = [app.enqueue("tests.worker_jobs.double", i) for i in range(5)]
    bad = app.enqueue("tests.worker_jobs.fail", _retry=3)
    assert bad is not None and all(good)
    set_columns(app, bad.id, retry_intervals="[1e300]")  # the retry's time is out of range

    run_burst(app, concurrency=8, flush_interval=0.05)

    jobs = wait_all_terminal(app, [*good, bad], timeout=10)  # type: ignore[list-item]
    assert [j.status for j in jobs[:-1]] == [JobStatus.Complete] * 5
    broken = jobs[-1]
    assert broken.status is JobStatus.Failed
    assert "could not be recorded" in (broken.error or "")


@pytest.mark.parametrize("column", ["result_ttl", "failure_ttl", "timeout", "heartbeat"])
def test_huge_stored_durations__are_capped_and_every_sweep_goes_on(app: Werk, column: str) -> None:
    ok = app.enqueue("tests.worker_jobs.double", 1)
    failing = app.enqueue("tests.worker_jobs.fail")
    assert ok and failing
    for job in (ok, failing):
        set_columns(app, job.id, **{column: 1e300})
    stuck = app.enqueue("tests.worker_jobs.double", 2)
    assert stuck is not None
    set_columns(app, stuck.id, status="active", attempts=1, worker_id="gone.1.x",
                started_at=ago(7200), heartbeat_at=ago(7200), **{column: 1e300})

    run_burst(app)
    assert app.sweep()["rescued"] == 1

    assert app.get_job(ok.id).status is JobStatus.Complete
    assert app.get_job(failing.id).status is JobStatus.Failed
    assert app.sweep() is not None  # and again


def _log_transactions(app: Werk) -> None:
    """A trigger of the test's own that notes the transaction of every write to jobs."""
    app.connect()
    log = sql.Identifier(app.config.schema, "test_txlog")
    func = sql.Identifier(app.config.schema, "test_txlog_write")
    with psycopg.connect(app.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL(
            "CREATE TABLE {} (job_id bigint, op text, status text, tx bigint)").format(log))
        conn.execute(sql.SQL(
            "CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "INSERT INTO {} VALUES (NEW.id, TG_OP, NEW.status, txid_current()); "
            "RETURN NEW; END $$").format(func, log))
        conn.execute(sql.SQL(
            "CREATE TRIGGER test_txlog AFTER INSERT OR UPDATE ON {} "
            "FOR EACH ROW EXECUTE FUNCTION {}()").format(table(app), func))


def test_worker__writes_the_next_run_of_a_repeat_with_the_outcome(app: Werk) -> None:
    _log_transactions(app)
    first = app.enqueue(worker_jobs.double, 2, _repeat=Repeat(times=1))
    assert first is not None

    run_burst(app)

    rows = query(app, "SELECT * FROM {jobs} ORDER BY id")
    assert [r["status"] for r in rows] == ["complete", "complete"]
    log = query(app, f"SELECT * FROM {app.config.schema}.test_txlog ORDER BY tx")
    completed = [r["tx"] for r in log if r["job_id"] == first.id and r["status"] == "complete"]
    next_run = [r["tx"] for r in log if r["job_id"] == rows[1]["id"] and r["op"] == "INSERT"]
    assert completed == next_run


def test_worker__promotes_dependents_with_the_outcome(app: Werk) -> None:
    parent = app.enqueue(worker_jobs.double, 1)
    assert parent is not None
    child = app.enqueue(worker_jobs.double, 2, _depends_on=parent)
    assert child is not None
    _log_transactions(app)

    run_burst(app, concurrency=1)

    assert app.get_job(child.id).status is JobStatus.Complete
    log = query(app, f"SELECT * FROM {app.config.schema}.test_txlog")
    completed = [r["tx"] for r in log if r["job_id"] == parent.id and r["status"] == "complete"]
    promoted = [r["tx"] for r in log if r["job_id"] == child.id and r["status"] == "queued"]
    assert completed == promoted


@pytest.mark.parametrize("pipelined", [True, False])
def test_record_outcomes__writes_every_part_with_or_without_libpq_pipelines(
        app: Werk, pipelined: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The outcomes' transaction is pipelined where libpq can (14 and later), sent a
    statement at a time otherwise: the same parts are written either way."""
    if not pipelined:
        monkeypatch.setattr(psycopg.Pipeline, "is_supported", classmethod(lambda cls: False))
    parent = app.enqueue(worker_jobs.double, 1, _repeat=Repeat(times=1))
    assert parent is not None
    child = app.enqueue(worker_jobs.double, 2, _depends_on=parent)
    assert child is not None
    [claimed] = app._store.claim("priority", ["default"], 1, "w1").jobs
    spec = repeat_spec(claimed, app._store.serializer)
    assert spec is not None
    app._store.record_progress("w1", json.dumps([[claimed.id, 1, 0.5, "half"]]))

    recorded = app._store.record_outcomes("w1", OutcomeBatch(
        json.dumps([[claimed.id, 1, "complete", "null", None, 0.0, 0.0, "success"]]),
        next_runs={claimed.id: spec}, progress=json.dumps([[claimed.id, 1, 1.0, "done"]])))

    assert recorded == {claimed.id}
    done = app.get_job(claimed.id)
    assert done.status is JobStatus.Complete and done.progress == 1.0
    assert app.get_job(child.id).status is JobStatus.Queued  # promoted with the outcome
    rows = query(app, "SELECT status FROM {jobs} WHERE id NOT IN (%s, %s)",
                 [claimed.id, child.id])
    assert [r["status"] for r in rows] == ["queued"]  # the next run of the repeat


def test_record_outcomes__promotes_a_dependent_another_transaction_has_locked(app: Werk) -> None:
    """The sweep's safety net (or another worker ending a second dependency) may hold the
    waiting dependent's row at that moment, judging it with the dependency still running:
    the outcome waits for that row rather than skipping it, or the dependent would wait
    for the next sweep (and a burst worker would exit with it never run)."""
    parent = app.enqueue(worker_jobs.double, 1)
    assert parent is not None
    child = app.enqueue(worker_jobs.double, 2, _depends_on=parent)
    assert child is not None
    [claimed] = app._store.claim("priority", ["default"], 1, "w1").jobs
    outcome = OutcomeBatch(json.dumps([[claimed.id, 1, "complete", "null", None, 0.0, 0.0,
                                        "success"]]))
    recorded: list[set[int]] = []
    with psycopg.connect(app.dsn) as other:
        other.execute(sql.SQL("SELECT id FROM {} WHERE id = %s FOR UPDATE").format(table(app)),
                      [child.id])
        writer = threading.Thread(
            target=lambda: recorded.append(app._store.record_outcomes("w1", outcome)))
        writer.start()
        eventually(lambda: lock_waits(app) > 0, timeout=10, message="the outcome waits")
        other.commit()
        writer.join(10)

    assert recorded == [{claimed.id}]
    assert app.get_job(child.id).status is JobStatus.Queued


def lock_waits(app: Werk) -> int:
    rows = query(app, "SELECT count(*) AS n FROM pg_locks WHERE NOT granted")
    return int(rows[0]["n"])
