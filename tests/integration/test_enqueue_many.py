"""``enqueue_many``: one INSERT for the whole list, results in input order, None on a
key collision."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from pgwerk import Dependency, EnqueueParams, JobStatus, Retry, Werk
from tests import jobs
from tests.helpers import ChannelSpy, count_rows, job_ids, query


def inserted_by_one_statement(app: Werk, ids: list[int]) -> bool:
    """Rows written by one statement share its transaction (xmin) and command id (cmin)."""
    rows = query(app, "SELECT count(DISTINCT (xmin::text, cmin::text)) AS n FROM {jobs} "
                      "WHERE id = ANY(%s)", [ids])
    return bool(rows[0]["n"] == 1)


def test_enqueue_many__whole_list_in_one_insert_statement(app: Werk,
                                                          statements: list[bytes]) -> None:
    params = [EnqueueParams(func=jobs.add, args=(i, i), queue="bulk") for i in range(500)]
    statements.clear()
    result = app.enqueue_many(params)
    assert len(statements) == 1
    assert statements[0] == app._store.queries["job_insert"]
    ids = [j.id for j in result if j is not None]
    assert len(ids) == 500
    assert inserted_by_one_statement(app, ids)
    assert count_rows(app) == 500


def test_enqueue_many__results_in_input_order(app: Werk) -> None:
    params = [EnqueueParams(func=jobs.add, args=(i, 1), priority=i % 3,
                            queue=f"q{i % 2}") for i in range(20)]
    result = app.enqueue_many(params)
    assert [j.args if j else None for j in result] == [(i, 1) for i in range(20)]
    assert [j.queue if j else None for j in result] == [f"q{i % 2}" for i in range(20)]
    ids = job_ids(result)
    assert ids == sorted(ids)  # type: ignore[type-var]
    for job in result:
        assert job is not None
        assert app.get_job(job.id) == job


def test_enqueue_many__options_reach_each_row(app: Werk) -> None:
    params = [
        EnqueueParams(func=jobs.noop, delay=timedelta(seconds=30)),
        EnqueueParams(func="tests.jobs.echo", kwargs={"a": 1}, retry=Retry(3, [1, 2]),
                      meta={"m": 1}, ttl=60, group="g", timeout=5),
        EnqueueParams(func=jobs.noop, failure_mode="delete", on_success=jobs.on_done),
    ]
    scheduled, configured, other = app.enqueue_many(params)
    assert scheduled is not None and configured is not None and other is not None
    assert scheduled.status is JobStatus.Scheduled
    assert configured.kwargs == {"a": 1} and configured.max_attempts == 3
    assert configured.retry_intervals == (1.0, 2.0) and configured.meta == {"m": 1}
    assert configured.expires_at is not None and configured.group == "g"
    assert other.failure_mode == "delete" and other.on_success is not None
    for job in (scheduled, configured, other):
        assert app.get_job(job.id) == job


def test_enqueue_many__none_where_a_key_collided(app: Werk) -> None:
    existing = app.enqueue(jobs.noop, _key="taken")
    assert existing is not None
    result = app.enqueue_many([
        EnqueueParams(func=jobs.noop, key="new-1"),
        EnqueueParams(func=jobs.noop, key="taken"),
        EnqueueParams(func=jobs.noop),
    ])
    assert result[0] is not None and result[0].key == "new-1"
    assert result[1] is None
    assert result[2] is not None
    assert count_rows(app) == 3


def test_enqueue_many__duplicate_key_inside_the_batch_keeps_the_first(app: Werk) -> None:
    result = app.enqueue_many([
        EnqueueParams(func=jobs.add, args=(1, 1), key="dup"),
        EnqueueParams(func=jobs.add, args=(2, 2), key="dup"),
        EnqueueParams(func=jobs.add, args=(3, 3), key="other"),
    ])
    assert result[0] is not None and result[0].args == (1, 1)
    assert result[1] is None
    assert result[2] is not None
    assert count_rows(app) == 2


def test_enqueue_many__all_collided_returns_all_none(app: Werk) -> None:
    app.enqueue(jobs.noop, _key="a")
    assert app.enqueue_many([EnqueueParams(func=jobs.noop, key="a")] * 2) == [None, None]
    assert count_rows(app) == 1


def test_enqueue_many__with_dependencies_inserts_jobs_in_one_statement(
    app: Werk, statements: list[bytes]
) -> None:
    upstream = app.enqueue(jobs.noop)
    done = app.enqueue(jobs.noop)
    assert upstream is not None and done is not None
    query(app, "UPDATE {jobs} SET status = 'complete' WHERE id = %s", [done.id])
    statements.clear()
    result = app.enqueue_many([
        EnqueueParams(func=jobs.noop, depends_on=upstream),
        EnqueueParams(func=jobs.noop, depends_on=[Dependency(upstream), done.id]),
        EnqueueParams(func=jobs.noop, depends_on=done),
        EnqueueParams(func=jobs.noop),
    ])
    assert statements.count(app._store.queries["job_insert"]) == 1
    assert app._store.queries["job_insert_one"] not in statements
    assert [j.status if j else None for j in result] == [
        JobStatus.Waiting, JobStatus.Waiting, JobStatus.Queued, JobStatus.Queued]
    ids = [j.id for j in result if j is not None]
    assert inserted_by_one_statement(app, ids)
    assert [d["id"] for d in app.get_job_dependencies(ids[1])] == sorted([upstream.id, done.id])
    for job in result:
        assert job is not None
        assert app.get_job(job.id) == job


def test_enqueue_many__one_notification_per_queue(app: Werk) -> None:
    with ChannelSpy(app.dsn, app._store.channel) as spy:
        app.enqueue_many([EnqueueParams(func=jobs.noop, queue=q) for q in "abab"]
                         + [EnqueueParams(func=jobs.noop, queue="c", delay=60)])
        assert sorted(spy.payloads()) == ["q:a", "q:b"]


def test_enqueue_many__single_item_list(app: Werk) -> None:
    [job] = app.enqueue_many([EnqueueParams(func=jobs.noop, key="solo")])
    assert job is not None and job.key == "solo"
    assert app.enqueue_many([EnqueueParams(func=jobs.noop, key="solo")]) == [None]


ONE_AND_MANY_CASES = {
    "plain": {},
    "every option": dict(queue="q", priority=7, delay=30, retry=Retry(max=4, intervals=[1, 5]),
                         timeout=9, heartbeat=3, group="g", meta={"a": [1, "b"]}, ttl=600,
                         result_ttl=60, failure_ttl=120, failure_mode="delete",
                         on_success=jobs.noop, repeat=None),
    "due now": dict(at=None, delay=0),
    "keyed": dict(key="k-{n}"),
}


@pytest.mark.parametrize("options", list(ONE_AND_MANY_CASES.values()),
                         ids=list(ONE_AND_MANY_CASES))
def test_enqueue_many__the_batch_insert_stores_what_the_one_row_insert_does(
        app: Werk, options: dict[str, Any]) -> None:
    """The one-row insert and the batch insert are two statements: they must store the same
    row for the same options."""
    def params(n: int) -> EnqueueParams:
        given = {k: (v.format(n=n) if isinstance(v, str) and "{n}" in v else v)
                 for k, v in options.items()}
        return EnqueueParams(func=jobs.add, args=(n, 1), **given)

    single = app.enqueue_many([params(0)])  # one spec: the one-row statement
    batch = app.enqueue_many([params(1), params(2)])
    ids = [j.id for j in [*single, *batch] if j is not None]
    assert len(ids) == 3
    rows = query(app, "SELECT * FROM {jobs} WHERE id = ANY(%s) ORDER BY id", [ids])
    moments = ("id", "scheduled_at", "enqueued_at", "expires_at", "purge_at", "payload", "key")
    comparable = [{k: v for k, v in r.items() if k not in moments} for r in rows]
    assert comparable[0] == comparable[1] == comparable[2]
    for row in rows:  # the times are the same offsets from the enqueue
        for column in ("scheduled_at", "expires_at"):
            if row[column] is not None:
                offset = (row[column] - row["enqueued_at"]).total_seconds()
                assert offset == pytest.approx(
                    (rows[0][column] - rows[0]["enqueued_at"]).total_seconds(), abs=0.5)
