"""Batches (``app.batch``): the members and the batch are written together when the block
ends; the database counts every way a member ends and enqueues each callback exactly once
when the last one ends, serialising members that end at the same instant."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pgwerk import (
    Callback,
    EnqueueParams,
    Job,
    JobStatus,
    Retry,
    Werk,
    WerkError,
)
from pgwerk.exceptions import BatchNotFound
from pgwerk.job import Batch
from pgwerk.store.core import OutcomeBatch
from tests import jobs
from tests.conftest import MakeApp
from tests.helpers import ago, count_rows, eventually, query, set_columns, table
from tests.worker_support import run_burst

DONE = "tests.jobs.on_done"
ERROR = "tests.jobs.on_error"


def members(batch: Any) -> list[Job]:
    found = [job for job in batch.jobs if job is not None]
    assert len(found) == len(batch.jobs)
    return found


def claim(app: Werk, worker_id: str, queue: str, limit: int = 100) -> list[dict[str, Any]]:
    """Claim jobs of ``queue`` exactly as a worker named ``worker_id`` would."""
    return app._store.db.fetch("claim", app._store.queries["job_claim_priority"],
                               {"queues": [queue], "limit": limit, "worker": worker_id})


def record(app: Werk, worker_id: str, job_id: int, status: str, attempt: int = 1,
           batch_ids: list[int] | None = None) -> set[int]:
    """Record an outcome the way the completion writer does."""
    return app._store.record_outcomes(worker_id, OutcomeBatch(
        json.dumps([[job_id, attempt, status, "null", None, 0.0, 0.0, "error"]]),
        batches=batch_ids or []))


def callback_rows(app: Werk) -> list[dict[str, Any]]:
    return query(app, "SELECT id, function, status, meta FROM {jobs} WHERE batch_id IS NULL "
                      "AND meta ? 'batch' ORDER BY id")


# -- writing a batch -------------------------------------------------------------------------


def test_batch__members_are_written_with_the_batch_when_the_block_ends(app: Werk) -> None:
    with app.batch(on_complete=DONE, description="nightly import") as batch:
        batch.enqueue(jobs.add, 1, 2)
        batch.enqueue("tests.jobs.add", 3, 4, _queue="other", _priority=5)
        batch.enqueue_many([EnqueueParams(func=jobs.noop) for _ in range(3)])
        assert len(batch) == 5 and batch.id is None
        assert count_rows(app) == 0 and count_rows(app, "batches") == 0

    assert batch.id is not None
    written = members(batch)
    assert [j.batch_id for j in written] == [batch.id] * 5
    assert [j.function for j in written] == ["tests.jobs.add"] * 2 + ["tests.jobs.noop"] * 3
    assert written[1].queue == "other" and written[1].priority == 5
    assert app.get_job(written[0].id).batch_id == batch.id
    assert inserted_in_one_transaction(app, [j.id for j in written], batch.id)
    found = app.get_batch(batch.id)
    assert (found.total, found.pending, found.complete, found.failed) == (5, 5, 0, 0)
    assert (found.status, found.finished_at, found.description) == ("active", None,
                                                                    "nightly import")
    assert found.callbacks == {"complete": DONE} and found.callback_jobs == {}


def inserted_in_one_transaction(app: Werk, job_ids: list[int], batch_id: int) -> bool:
    rows = query(app, "SELECT xmin::text AS x FROM {jobs} WHERE id = ANY(%s) "
                      "UNION SELECT xmin::text FROM {batches} WHERE id = %s", [job_ids, batch_id])
    return len(rows) == 1


def test_batch__an_exception_inside_the_block_writes_nothing(app: Werk) -> None:
    with pytest.raises(RuntimeError, match="changed my mind"):
        with app.batch(on_complete=DONE) as batch:
            batch.enqueue(jobs.noop)
            raise RuntimeError("changed my mind")

    assert count_rows(app) == 0 and count_rows(app, "batches") == 0
    assert batch.id is None and batch.jobs == []
    with pytest.raises(WerkError, match="ended with an exception"):
        batch.enqueue(jobs.noop)


def test_batch__a_bad_member_option_raises_inside_the_block_and_nothing_is_written(
        app: Werk) -> None:
    with pytest.raises(ValueError, match="_priority"):
        with app.batch(on_complete=DONE) as batch:
            batch.enqueue(jobs.noop)
            batch.enqueue(jobs.noop, _priority=2**40)
    assert count_rows(app) == 0 and count_rows(app, "batches") == 0


def test_batch__is_used_in_one_block_only(app: Werk) -> None:
    batch = app.batch()
    with pytest.raises(WerkError, match="before its `with` block"):
        batch.enqueue(jobs.noop)
    with batch:
        batch.enqueue(jobs.noop)
    with pytest.raises(WerkError, match="written already"):
        batch.enqueue(jobs.noop)
    with pytest.raises(WerkError, match="one `with` block"):
        with batch:
            pass
    assert count_rows(app) == 1


def test_enqueue_many__with_batch_adds_the_jobs_to_it(app: Werk) -> None:
    params = [EnqueueParams(func=jobs.add, args=(i, i)) for i in range(4)]
    with app.batch() as batch:
        assert app.enqueue_many(params, batch=batch) == []
        batch.enqueue(jobs.noop)
    assert [j.args for j in members(batch)] == [(0, 0), (1, 1), (2, 2), (3, 3), ()]
    assert app.get_batch(batch.id).total == 5  # type: ignore[arg-type]


def test_enqueue_many__batch_and_conn_together_are_refused(app: Werk) -> None:
    with app.batch() as batch, psycopg.connect(app.dsn) as conn:
        with pytest.raises(TypeError, match="_conn or batch"):
            app.enqueue_many([EnqueueParams(func=jobs.noop)], conn, batch=batch)
        with pytest.raises(TypeError, match="what app.batch"):
            app.enqueue_many([EnqueueParams(func=jobs.noop)], batch="nope")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="_conn"):
            batch.enqueue(jobs.noop, _conn=conn)
    assert count_rows(app) == 0


def test_batch__a_member_whose_key_collided_is_not_a_member(app: Werk) -> None:
    existing = app.enqueue(jobs.noop, _key="only-once")
    with app.batch() as batch:
        batch.enqueue(jobs.noop, _key="only-once")
        batch.enqueue(jobs.noop)
    assert batch.jobs[0] is None and batch.jobs[1] is not None
    assert app.get_batch(batch.id).total == 1  # type: ignore[arg-type]
    assert existing is not None and app.get_job(existing.id).batch_id is None


def test_batch__an_empty_batch_finishes_at_once(app: Werk) -> None:
    with app.batch(on_complete=DONE, on_success=DONE, on_failure=ERROR) as batch:
        pass
    assert batch.id is not None
    found = app.get_batch(batch.id)
    assert (found.total, found.pending, found.status) == (0, 0, "complete")
    assert found.finished_at is not None
    assert sorted(found.callback_jobs) == ["complete", "success"]


def test_batch__a_member_failed_by_a_failed_dependency_as_it_is_written_counts(
        app: Werk) -> None:
    upstream = app.enqueue(jobs.noop)
    assert upstream is not None
    set_columns(app, upstream.id, status="failed", completed_at=ago(1))
    with app.batch(on_complete=DONE, on_failure=ERROR) as batch:
        batch.enqueue(jobs.noop, _depends_on=upstream)
    [member] = members(batch)
    assert member.status is JobStatus.Failed
    found = app.get_batch(member.batch_id)  # type: ignore[arg-type]
    assert (found.total, found.pending, found.failed, found.status) == (1, 0, 1, "failed")
    assert sorted(found.callback_jobs) == ["complete", "failure"]


def test_batch__members_may_depend_on_jobs_outside_it(app: Werk) -> None:
    upstream = app.enqueue(jobs.noop, _queue="up")
    assert upstream is not None
    with app.batch(on_complete=DONE) as batch:
        batch.enqueue(jobs.noop, _depends_on=upstream)
    [member] = members(batch)
    assert member.status is JobStatus.Waiting
    run_burst(app, queues=["up", "default"])
    found = app.get_batch(member.batch_id)  # type: ignore[arg-type]
    assert (found.complete, found.status) == (1, "complete")


# -- the callbacks -----------------------------------------------------------------------------


def test_batch__callbacks_come_once_when_the_last_member_completes(app: Werk) -> None:
    with app.batch(on_complete=DONE, on_success=jobs.on_done, on_failure=ERROR) as batch:
        for i in range(5):
            batch.enqueue(jobs.add, i, 1)

    run_burst(app)

    found = app.get_batch(batch.id)  # type: ignore[arg-type]
    assert (found.total, found.pending, found.complete, found.failed) == (5, 0, 5, 0)
    assert found.status == "complete" and found.finished_at is not None
    assert sorted(found.callback_jobs) == ["complete", "success"]
    rows = callback_rows(app)
    assert [r["id"] for r in rows] == [found.callback_jobs["complete"],
                                       found.callback_jobs["success"]]
    assert [r["status"] for r in rows] == ["complete", "complete"]  # the burst ran them too
    assert rows[0]["meta"]["batch"] == {
        "id": batch.id, "callback": "complete", "total": 5, "complete": 5, "failed": 0,
        "aborted": 0, "expired": 0}
    assert rows[1]["meta"]["batch"]["callback"] == "success"


def test_batch__failed_members_are_counted_and_bring_on_failure(app: Werk) -> None:
    with app.batch(on_complete=DONE, on_success=DONE, on_failure=ERROR) as batch:
        for i in range(6):
            batch.enqueue(jobs.fail if i % 3 == 0 else jobs.noop)
        batch.enqueue(jobs.fail, _retry=Retry(max=2))  # fails twice: one end

    run_burst(app)

    found = app.get_batch(batch.id)  # type: ignore[arg-type]
    assert (found.total, found.pending, found.complete, found.failed) == (7, 0, 4, 3)
    assert found.status == "failed"
    assert sorted(found.callback_jobs) == ["complete", "failure"]
    failure = app.get_job(found.callback_jobs["failure"])
    assert failure.function == ERROR
    assert failure.meta["batch"]["failed"] == 3 and failure.meta["batch"]["complete"] == 4


def test_batch__a_callback_given_as_enqueue_params_keeps_its_arguments_and_options(
        app: Werk) -> None:
    done = EnqueueParams(func=jobs.echo, args=(1,), kwargs={"to": "ops"}, queue="reports",
                         priority=7, delay=timedelta(hours=1), retry=Retry(max=3, intervals=5),
                         meta={"team": "data"}, timeout=30)
    with app.batch(on_complete=done, on_failure=Callback(ERROR, timeout=9)) as batch:
        pass
    found = app.get_batch(batch.id)  # type: ignore[arg-type]
    callback = app.get_job(found.callback_jobs["complete"])
    assert (callback.function, callback.args, callback.kwargs) == ("tests.jobs.echo", (1,),
                                                                   {"to": "ops"})
    assert (callback.queue, callback.priority, callback.max_attempts, callback.timeout) == (
        "reports", 7, 3, 30.0)
    assert callback.status is JobStatus.Scheduled
    assert 3500 < (callback.scheduled_at - callback.enqueued_at).total_seconds() <= 3600
    assert callback.meta["team"] == "data" and callback.meta["batch"]["id"] == batch.id
    assert "failure" not in found.callback_jobs  # every member (none) completed


def test_batch__callback_wakes_idle_workers(app: Werk) -> None:
    from tests.helpers import ChannelSpy

    with app.batch(on_complete=EnqueueParams(func=DONE, queue="after")) as batch:
        batch.enqueue(jobs.noop)
    [member] = members(batch)
    [row] = claim(app, "w1", "default")
    with ChannelSpy(app.dsn, app._store.channel) as spy:
        record(app, "w1", row["id"], "complete", batch_ids=[batch.id])  # type: ignore[list-item]
        assert "q:after" in spy.payloads()
    assert member.id == row["id"]


# -- every way a member ends ---------------------------------------------------------------------

#: Each ends the job ``member`` (enqueued alone in queue "target") in one of the ways the
#: database ends jobs, and returns the status the batch counts it as.
Ending = Callable[[Werk, Job], str]


def _complete(app: Werk, member: Job) -> str:
    [row] = claim(app, "w1", "target")
    assert record(app, "w1", row["id"], "complete") == {member.id}
    return "complete"


def _fail(app: Werk, member: Job) -> str:
    claim(app, "w1", "target")
    record(app, "w1", member.id, "failed")
    return "failed"


def _fail_deleted(app: Werk, member: Job) -> str:
    claim(app, "w1", "target")
    record(app, "w1", member.id, "deleted")  # _failure_mode="delete"
    assert query(app, "SELECT id FROM {jobs} WHERE id = %s", [member.id]) == []
    return "failed"


def _cancel(app: Werk, member: Job) -> str:
    assert app.cancel_job(member.id)
    return "aborted"


def _bulk_cancel(app: Werk, member: Job) -> str:
    assert app.bulk_cancel_jobs(queue="target") == 1
    return "aborted"


def _delete_unstarted(app: Werk, member: Job) -> str:
    assert app.delete_job(member.id)
    return "aborted"


def _expire(app: Werk, member: Job) -> str:
    set_columns(app, member.id, expires_at=ago(1))
    assert app.sweep()["expired"] == 1
    return "expired"


def _lost_too_often(app: Werk, member: Job) -> str:
    claim(app, "ghost", "target")
    set_columns(app, member.id, lost=app.config.max_lost)
    assert app.sweep()["rescued"] == 1  # "ghost" has no worker row: presumed dead
    return "failed"


def _lost_while_aborting(app: Werk, member: Job) -> str:
    claim(app, "ghost", "target")
    set_columns(app, member.id, status="aborting")
    assert app.sweep()["rescued"] == 1
    return "aborted"


def _released_while_aborting(app: Werk, member: Job) -> str:
    claim(app, "w1", "target")
    set_columns(app, member.id, status="aborting")
    assert [r["status"] for r in app._store.release("w1", [member.id])] == ["aborted"]
    return "aborted"


def _unclaimed_while_aborting(app: Werk, member: Job) -> str:
    claim(app, "w1", "target")
    set_columns(app, member.id, status="aborting")
    assert [r["status"] for r in app._store.unclaim("w1", [member.id])] == ["aborted"]
    return "aborted"


def _unrecordable(app: Werk, member: Job) -> str:
    claim(app, "w1", "target")
    assert app._store.fail_unrecordable("w1", member.id, 1, "cannot write it") == {member.id}
    return "failed"


def _dependency_failed(app: Werk, member: Job) -> str:
    # The member waits on a job outside the batch (see the fixture below); that job fails.
    [upstream] = claim(app, "w1", "upstream")
    record(app, "w1", upstream["id"], "failed")
    return "failed"


ENDINGS: dict[str, Ending] = {
    "complete": _complete, "failed": _fail, "failed and deleted": _fail_deleted,
    "cancelled": _cancel, "bulk cancelled": _bulk_cancel, "deleted unstarted": _delete_unstarted,
    "expired by the sweep": _expire, "lost too often": _lost_too_often,
    "lost while aborting": _lost_while_aborting, "released while aborting":
        _released_while_aborting, "unclaimed while aborting": _unclaimed_while_aborting,
    "unrecordable": _unrecordable, "failed by its dependency": _dependency_failed,
}


@pytest.mark.parametrize("way", sorted(ENDINGS))
def test_batch__every_way_a_member_ends_is_counted_once(app: Werk, way: str) -> None:
    upstream = app.enqueue(jobs.noop, _queue="upstream") if way.endswith("dependency") else None
    with app.batch(on_complete=DONE, on_success=DONE, on_failure=ERROR) as batch:
        batch.enqueue(jobs.noop, _queue="target", _depends_on=upstream,
                      _failure_mode="delete" if way == "failed and deleted" else "hold")
        batch.enqueue(jobs.noop, _queue="other")
    [member, other] = members(batch)
    batch_id = member.batch_id
    assert batch_id is not None

    counted = ENDINGS[way](app, member)

    half = app.get_batch(batch_id)
    assert (half.total, half.pending, getattr(half, counted)) == (2, 1, 1)
    assert half.callback_jobs == {} and half.finished_at is None
    [row] = claim(app, "w2", "other")
    record(app, "w2", row["id"], "complete", batch_ids=[batch_id])
    app.sweep()  # changes nothing more

    found = app.get_batch(batch_id)
    counts = {s: getattr(found, s) for s in ("complete", "failed", "aborted", "expired")}
    expected = {"complete": 1, "failed": 0, "aborted": 0, "expired": 0}
    expected[counted] += 1
    assert (found.pending, counts) == (0, expected)
    wanted = ["complete", "success"] if counted == "complete" else ["complete", "failure"]
    assert sorted(found.callback_jobs) == wanted
    assert len(callback_rows(app)) == 2


def test_batch__purging_ended_members_changes_no_count(app: Werk) -> None:
    with app.batch(on_complete=DONE) as batch:
        batch.enqueue(jobs.noop)
        batch.enqueue(jobs.fail)
    run_burst(app)
    before = app.get_batch(batch.id)  # type: ignore[arg-type]
    assert app.purge_jobs(["complete", "failed"], older_than=0) >= 2
    assert app.get_batch(batch.id) == before  # type: ignore[arg-type]


def test_batch__a_requeued_member_reopens_the_batch_and_callbacks_come_once_each(
        app: Werk) -> None:
    with app.batch(on_complete=DONE, on_success=DONE, on_failure=ERROR) as batch:
        batch.enqueue(jobs.noop)
        batch.enqueue(jobs.noop, _queue="flaky")
    [steady, flaky] = members(batch)
    run_burst(app, queues=["default"])
    [row] = claim(app, "w1", "flaky")
    record(app, "w1", row["id"], "failed")
    first = app.get_batch(batch.id)  # type: ignore[arg-type]
    assert (first.status, sorted(first.callback_jobs)) == ("failed", ["complete", "failure"])

    assert app.requeue_job(flaky.id)
    reopened = app.get_batch(batch.id)  # type: ignore[arg-type]
    assert (reopened.pending, reopened.failed, reopened.status) == (1, 0, "active")
    assert reopened.finished_at is None
    assert reopened.callback_jobs == first.callback_jobs

    [row] = claim(app, "w1", "flaky")
    record(app, "w1", row["id"], "complete", attempt=2)
    final = app.get_batch(batch.id)  # type: ignore[arg-type]
    assert (final.pending, final.complete, final.failed, final.status) == (0, 2, 0, "complete")
    assert sorted(final.callback_jobs) == ["complete", "failure", "success"]
    assert {k: final.callback_jobs[k] for k in ("complete", "failure")} == first.callback_jobs
    assert len(callback_rows(app)) == 3
    assert app.get_job(final.callback_jobs["success"]).meta["batch"]["complete"] == 2
    assert steady.batch_id == batch.id


def test_batch__members_ending_at_the_same_instant_enqueue_the_callbacks_once(
        app: Werk) -> None:
    """Two transactions end the last two members: the second waits on the batch row's
    lock, then counts on top of the first, and only it enqueues the callbacks."""
    with app.batch(on_complete=DONE, on_failure=ERROR) as batch:
        batch.enqueue(jobs.noop)
        batch.enqueue(jobs.noop)
    first, second = members(batch)
    claim(app, "w1", "default")
    done = app._store.queries["job_complete_many"]

    def outcome(job: Job) -> dict[str, Any]:
        return {"batch": json.dumps([[job.id, 1, "complete", "null", None, 0.0, 0.0]]),
                "worker": "w1", "channel": app._store.channel}

    with psycopg.connect(app.dsn) as one, psycopg.connect(app.dsn) as two:
        one.execute(done, outcome(first))  # holds the batch row until it commits
        two_pid = two.info.backend_pid
        errors: list[BaseException] = []

        def end_second() -> None:
            try:
                two.execute(done, outcome(second))
                two.commit()
            except BaseException as exc:  # noqa: B036 - reported below
                errors.append(exc)

        thread = threading.Thread(target=end_second)
        thread.start()
        eventually(lambda: query(app, "SELECT 1 FROM pg_locks WHERE pid = %s AND NOT granted",
                                 [two_pid]), message="the second transaction waits on a lock")
        assert app.get_batch(batch.id).pending == 2  # type: ignore[arg-type]
        one.commit()
        thread.join(10)
        assert not thread.is_alive() and errors == []

    found = app.get_batch(batch.id)  # type: ignore[arg-type]
    assert (found.pending, found.complete) == (0, 2)
    assert sorted(found.callback_jobs) == ["complete"]
    assert len(callback_rows(app)) == 1


def test_record_outcomes__locks_batch_rows_in_id_order_before_ending_members(
        app: Werk) -> None:
    """Outcomes for members of two batches, the later batch's first: the writer locks the
    earlier batch's row first and waits there, holding nothing else. Another transaction
    that holds that row can still take the later one (a writer ending members in row order
    would hold it and deadlock with such a transaction)."""
    made = []
    for _ in range(2):
        with app.batch() as batch:
            batch.enqueue(jobs.noop)
        made.append(batch)
    first, second = (members(b)[0] for b in made)
    claim(app, "w1", "default")
    outcomes = json.dumps([[j.id, 1, "complete", "null", None, 0.0, 0.0, "ok"]
                           for j in (second, first)])
    rows = sql.SQL("SELECT id FROM {} WHERE id = %s FOR UPDATE NOWAIT").format(
        table(app, "batches"))
    errors: list[BaseException] = []

    def write() -> None:
        try:
            app._store.record_outcomes("w1", OutcomeBatch(
                outcomes, batches=[second.batch_id, first.batch_id]))  # type: ignore[list-item]
        except BaseException as exc:  # noqa: B036 - reported below
            errors.append(exc)

    with psycopg.connect(app.dsn) as other:
        other.execute(rows, [first.batch_id])
        thread = threading.Thread(target=write)
        thread.start()
        holder = other.info.backend_pid
        eventually(lambda: query(app, "SELECT 1 FROM pg_stat_activity "
                                      "WHERE %s = ANY(pg_blocking_pids(pid))", [holder]),
                   message="the writer waits for the first batch's row")
        other.execute(rows, [second.batch_id])  # free: NOWAIT does not raise
        other.rollback()
    thread.join(10)
    assert not thread.is_alive() and errors == []
    assert [app.get_batch(b.id).complete for b in made] == [1, 1]  # type: ignore[arg-type]


def test_batch__a_crashed_worker_s_members_are_rescued_and_the_callback_comes_once(
        app: Werk) -> None:
    """The state a SIGKILLed worker leaves (built here; ``tests/acceptance/test_batches.py``
    kills a real one): members claimed by a worker with no row, some already recorded."""
    with app.batch(on_complete=DONE, on_success=DONE) as batch:
        for i in range(10):
            batch.enqueue(jobs.add, i, 1)
    held = claim(app, "dead-worker", "default", limit=6)
    for row in held[:2]:
        record(app, "dead-worker", row["id"], "complete", batch_ids=[batch.id])  # type: ignore[list-item]

    assert app.sweep()["rescued"] == 4
    assert app.get_batch(batch.id).pending == 8  # type: ignore[arg-type]
    run_burst(app)

    found = app.get_batch(batch.id)  # type: ignore[arg-type]
    assert (found.pending, found.complete, found.status) == (0, 10, "complete")
    assert sorted(found.callback_jobs) == ["complete", "success"]
    assert len(callback_rows(app)) == 2


# -- inside the caller's transaction ------------------------------------------------------------


def test_batch__in_the_callers_transaction_appears_at_commit(app: Werk) -> None:
    with psycopg.connect(app.dsn) as conn:
        with app.batch(on_complete=DONE, _conn=conn) as batch:
            batch.enqueue(jobs.noop)
        assert batch.id is not None
        assert count_rows(app, "batches") == 0  # not committed yet
        conn.commit()
    assert app.get_batch(batch.id).total == 1


def test_batch__in_the_callers_transaction_vanishes_on_rollback(app: Werk) -> None:
    with psycopg.connect(app.dsn) as conn:
        with app.batch(on_complete=DONE, _conn=conn) as batch:
            batch.enqueue(jobs.noop)
        conn.rollback()
    assert count_rows(app) == 0 and count_rows(app, "batches") == 0
    with pytest.raises(BatchNotFound):
        app.get_batch(batch.id)  # type: ignore[arg-type]


def test_batch__on_a_connection_in_autocommit_still_counts_every_member(app: Werk) -> None:
    with psycopg.connect(app.dsn, autocommit=True) as conn:
        with app.batch(on_complete=DONE, _conn=conn) as batch:
            batch.enqueue(jobs.noop)
            batch.enqueue(jobs.noop)
    run_burst(app)
    found = app.get_batch(batch.id)  # type: ignore[arg-type]
    assert (found.pending, found.complete, sorted(found.callback_jobs)) == (0, 2, ["complete"])


def test_batch__unsealed_batch_whose_members_end_early_finishes_when_sealed(app: Werk) -> None:
    """On an autocommit connection a member may end before its batch is sealed: it is
    counted then, and the seal adds the members written; no callback before the seal."""
    store = app._store
    [row] = store.fetch("batch_insert", {"description": None, "callbacks": json.dumps(
        {"complete": {"function": DONE, "queue": "default", "priority": 0, "payload": "{}",
                      "max_attempts": 1, "failure_mode": "hold"}}), "channel": store.channel})
    job = app.enqueue(jobs.noop)
    assert job is not None
    set_columns(app, job.id, batch_id=row["id"])
    assert app.cancel_job(job.id)
    early = app.get_batch(row["id"])
    assert (early.pending, early.aborted, early.callback_jobs) == (-1, 1, {})

    [sealed] = store.fetch("batch_seal", {"id": row["id"], "total": 1, "pending": 1,
                                          "failed": 0})
    assert sealed["pending"] == 0
    store.fetch("batch_finish", {"id": row["id"]})
    assert sorted(app.get_batch(row["id"]).callback_jobs) == ["complete"]


# -- checks --------------------------------------------------------------------------------------


def nested() -> None:
    def inner() -> None:
        pass
    return inner  # type: ignore[return-value]


@pytest.mark.parametrize(("options", "error", "words"), [
    ({"on_complete": lambda: None}, ValueError, "on_complete is a lambda"),
    ({"on_success": nested()}, ValueError, "on_success .* inside another function"),
    ({"on_failure": 42}, TypeError, "on_failure must be"),
    ({"on_complete": "not a path"}, ValueError, "on_complete 'not a path' is not a dotted"),
    ({"on_complete": EnqueueParams(func=DONE, key="k")}, ValueError, "on_complete: .* no key"),
    ({"on_complete": EnqueueParams(func=DONE, depends_on=1)}, ValueError,
     "on_complete: .* no depends_on"),
    ({"on_complete": EnqueueParams(func=DONE, priority="high")}, TypeError,  # type: ignore[arg-type]
     "on_complete: _priority"),
    ({"on_failure": EnqueueParams(func=DONE, delay=-1)}, ValueError, "on_failure: _delay"),
    ({"description": 7}, ValueError, "description must be a non-empty string"),
    ({"description": "x" * 1001}, ValueError, "description"),
])
def test_batch__bad_arguments_raise_naming_them_and_write_nothing(
        app: Werk, options: dict[str, Any], error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        app.batch(**options)
    assert count_rows(app) == 0 and count_rows(app, "batches") == 0


def test_batch__callbacks_outside_the_handlers_are_refused(make_app: MakeApp) -> None:
    app = make_app(handlers=["tests.jobs"]).connect()
    with pytest.raises(ValueError, match="on_failure: .*os.system.* not allowed"):
        app.batch(on_complete=DONE, on_failure="os.system")
    with app.batch(on_complete=DONE) as batch:
        with pytest.raises(ValueError, match="not allowed"):
            batch.enqueue("os.system", "true")
        batch.enqueue(jobs.noop)
    assert app.get_batch(batch.id).total == 1  # type: ignore[arg-type]


def test_get_batch__unknown_ids_raise_batch_not_found(app: Werk) -> None:
    with app.batch() as batch:
        batch.enqueue(jobs.noop)
    assert isinstance(app.get_batch(str(batch.id)), Batch)
    for missing in (batch.id + 1, "abc", "-1", 2**70):  # type: ignore[operator]
        with pytest.raises(BatchNotFound):
            app.get_batch(missing)  # type: ignore[arg-type]


def test_list_batches__newest_first(app: Werk) -> None:
    made = []
    for n in range(3):
        with app.batch(description=f"b{n}") as batch:
            batch.enqueue(jobs.noop)
        made.append(batch.id)
    assert [b.id for b in app.list_batches()] == made[::-1]
    assert [b.description for b in app.list_batches(limit=1, offset=1)] == ["b1"]
    with pytest.raises(ValueError, match="limit"):
        app.list_batches(limit=0)


def test_list_jobs__batch_filter_finds_its_members(app: Werk) -> None:
    app.enqueue(jobs.noop)
    with app.batch() as batch:
        batch.enqueue(jobs.noop)
        batch.enqueue(jobs.fail)
    ids = sorted(j.id for j in members(batch))
    assert sorted(j.id for j in app.list_jobs(batch=batch.id)) == ids
    assert app.count_jobs(batch=str(batch.id)) == 2
    assert app.count_jobs(batch=batch.id, function=jobs.fail) == 1
    with pytest.raises(ValueError, match="batch must be an id"):
        app.list_jobs(batch="x1")


def test_sweep__prunes_batches_finished_longer_ago_than_their_members_are_kept(
        make_app: MakeApp) -> None:
    app = make_app(result_ttl=60, failure_ttl=120).connect()
    with app.batch() as old:
        pass
    with app.batch() as recent:
        pass
    query(app, "UPDATE {batches} SET finished_at = now() - interval '121 seconds' "
               "WHERE id = %s", [old.id])
    assert app.sweep()["batches_pruned"] == 1
    assert [b.id for b in app.list_batches()] == [recent.id]


def trigger_calls(app: Werk, batched: bool) -> int:
    """Claim and complete one job (of a batch or not) in a transaction on a connection that
    counts calls of PL/pgSQL functions; how often the batch trigger's function ran."""
    function = f"{app.config.prefix}_batch_member_changed"
    with psycopg.connect(app.dsn) as conn:
        conn.execute("SET track_functions = 'pl'")  # superuser only: so are the tests
        queue = "batched" if batched else "plain"
        if batched:
            with app.batch() as batch:
                batch.enqueue(jobs.noop, _queue=queue)
        else:
            app.enqueue(jobs.noop, _queue=queue)
        [row] = conn.execute(app._store.queries["job_claim_priority"], {
            "queues": [queue], "limit": 1, "worker": "w1"}).fetchall()
        conn.execute(app._store.queries["job_complete_many"], {
            "batch": json.dumps([[row[0], 1, "complete", "null", None, 0.0, 0.0]]),
            "worker": "w1", "channel": app._store.channel})
        found = conn.execute("SELECT calls FROM pg_stat_xact_user_functions "
                             "WHERE schemaname = %s AND funcname = %s",
                             (app.config.schema, function)).fetchall()
        conn.rollback()
    return int(found[0][0]) if found else 0


def test_batch__ordinary_jobs_never_call_the_batch_trigger(app: Werk) -> None:
    """The trigger's WHEN clause leaves jobs without a batch alone: its function is not
    even called for them."""
    assert trigger_calls(app, batched=False) == 0
    assert trigger_calls(app, batched=True) == 1


def test_batch__recording_outcomes_of_ordinary_jobs_sends_one_statement(
        app: Werk, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[bytes] = []
    execute = psycopg.Connection.execute
    caller = threading.get_ident()

    def counting(self: psycopg.Connection[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        # This thread's statements only: the pool's threads set up new connections.
        if threading.get_ident() == caller:
            sent.append(query if isinstance(query, bytes) else str(query).encode())
        return execute(self, query, *args, **kwargs)

    app.enqueue(jobs.noop)
    [row] = claim(app, "w1", "default")
    monkeypatch.setattr(psycopg.Connection, "execute", counting)
    record(app, "w1", row["id"], "complete")
    monkeypatch.undo()
    assert [q for q in sent if not q.startswith((b"BEGIN", b"COMMIT"))] == [
        app._store.queries["job_complete_many"]]


# -- asyncio -------------------------------------------------------------------------------------


def test_async_batch__written_when_the_async_block_ends(app: Werk) -> None:
    from pgwerk.aio import AsyncWerk

    async def main() -> tuple[int | None, list[Job | None]]:
        aapp = AsyncWerk.wrap(app)
        async with aapp.batch(on_complete=DONE) as batch:
            await batch.enqueue(jobs.add, 1, 2)
            await batch.enqueue_many([EnqueueParams(func=jobs.noop)])
            assert await aapp.enqueue_many([EnqueueParams(func=jobs.noop)], batch=batch) == []
            assert count_rows(app) == 0 and batch.id is None and len(batch) == 3
        found = await aapp.get_batch(batch.id)  # type: ignore[arg-type]
        assert found.total == 3
        assert [b.id for b in await aapp.list_batches()] == [batch.id]
        return batch.id, batch.jobs

    batch_id, written = asyncio.run(main())
    assert [j.batch_id for j in written if j is not None] == [batch_id] * 3


def test_async_batch__on_an_async_connection_follows_its_transaction(app: Werk) -> None:
    from pgwerk.aio import AsyncWerk

    async def main(commit: bool) -> int | None:
        aapp = AsyncWerk.wrap(app)
        async with await psycopg.AsyncConnection.connect(app.dsn) as conn:
            async with aapp.batch(on_complete=DONE, _conn=conn) as batch:
                await batch.enqueue(jobs.noop)
            assert count_rows(app, "batches") == 0
            await (conn.commit() if commit else conn.rollback())
        return batch.id

    assert asyncio.run(main(commit=False)) is not None
    assert count_rows(app) == 0 and count_rows(app, "batches") == 0
    batch_id = asyncio.run(main(commit=True))
    assert app.get_batch(batch_id).total == 1  # type: ignore[arg-type]


def test_async_batch__an_exception_inside_the_block_writes_nothing(app: Werk) -> None:
    from pgwerk.aio import AsyncWerk

    async def main() -> None:
        async with AsyncWerk.wrap(app).batch() as batch:
            await batch.enqueue(jobs.noop)
            raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        asyncio.run(main())
    assert count_rows(app) == 0 and count_rows(app, "batches") == 0


# -- seen from the dashboard and the command line ---------------------------------------------


def finished_batch(app: Werk) -> Any:
    with app.batch(on_complete=DONE, on_success=DONE, on_failure=ERROR,
                   description="<b>nightly</b>") as batch:
        batch.enqueue(jobs.add, 1, 2)
        batch.enqueue(jobs.fail)
    run_burst(app)
    return batch


def test_dashboard__batch_pages_and_links(app: Werk) -> None:
    from pgwerk.dashboard import Dashboard
    from tests.integration.dashboard_client import Client

    batch = finished_batch(app)
    found = app.get_batch(batch.id)
    client = Client(Dashboard(app))

    page = client.get(f"/batches/{batch.id}")
    assert page.status == 200
    assert "&lt;b&gt;nightly&lt;/b&gt;" in page.text and "<b>nightly" not in page.text
    assert '<span class="badge failed">failed</span>' in page.text
    assert f'href="/jobs?batch={batch.id}&amp;status=failed">1</a>' in page.text
    assert f'<a href="/jobs/{found.callback_jobs["failure"]}">' in page.text
    assert "not enqueued (a member did not complete)" in page.text  # on_success

    member = client.get(f"/jobs/{batch.jobs[0].id}")
    assert f'<a href="/batches/{batch.id}">batch {batch.id}</a>' in member.text
    callback = client.get(f"/jobs/{found.callback_jobs['complete']}")
    assert "callback of" in callback.text and f'href="/batches/{batch.id}"' in callback.text

    listed = client.get(f"/jobs?batch={batch.id}")
    assert listed.status == 200 and ">2</strong> jobs match" in listed.text
    assert client.get("/jobs?batch=x").status == 400
    assert client.get("/batches/12345").status == 404
    assert client.get("/batches/x").status == 404
    overview = client.get("/batches")
    assert f'<a href="/batches/{batch.id}">{batch.id}</a>' in overview.text
    confirm = client.get(f"/bulk?action=retry&batch={batch.id}")
    assert "the batch filter of the list is not applied here" in confirm.text


def test_cli__batch_shows_counts_and_callbacks(app: Werk) -> None:
    from click.testing import CliRunner

    from pgwerk.cli import cli

    batch = finished_batch(app)
    found = app.get_batch(batch.id)
    db = ["--dsn", app.dsn, "--schema", app.config.schema]

    shown = CliRunner().invoke(cli, ["batch", *db, str(batch.id)])
    assert shown.exit_code == 0, shown.output
    assert "status:         failed" in shown.stdout and "failed:         1" in shown.stdout
    assert re.search(rf"on failure +{ERROR} +{found.callback_jobs['failure']} +complete",
                     shown.stdout)
    assert re.search(rf"on success +{DONE} +- +not enqueued", shown.stdout)
    as_json = json.loads(CliRunner().invoke(cli, ["batch", *db, str(batch.id), "--json"]).stdout)
    assert as_json["callback_jobs"] == found.callback_jobs and as_json["status"] == "failed"

    members = json.loads(CliRunner().invoke(
        cli, ["jobs", *db, "--batch", str(batch.id), "--json"]).stdout)
    assert sorted(j["id"] for j in members) == sorted(j.id for j in batch.jobs)
    assert {j["batch_id"] for j in members} == {batch.id}
    missing = CliRunner().invoke(cli, ["batch", *db, "999999"])
    assert missing.exit_code == 1 and "no batch with id 999999" in missing.stderr
