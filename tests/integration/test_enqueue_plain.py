"""Jobs enqueued without options take statements of their own (``job_insert_plain``, and
``job_insert_plain_many`` for ``enqueue_many``): two parameters, the app's defaults
composed into them as constants. They must write the rows, and return the jobs, that the
general inserts (``job_insert_one``, ``job_insert``) do."""

from __future__ import annotations

from typing import Any

import pytest

from pgwerk import EnqueueParams, JobStatus, Werk
from tests import jobs
from tests.conftest import MakeApp
from tests.helpers import query
from tests.worker_support import running_worker, wait_status

ROW = """
    SELECT to_jsonb(j) - ARRAY['id', 'payload', 'scheduled_at', 'enqueued_at', 'expires_at']
               AS rest,
           scheduled_at - enqueued_at AS delay, expires_at - enqueued_at AS ttl
    FROM {jobs} j WHERE id = %(id)s"""


def written(app: Werk, job_id: int) -> dict[str, Any]:
    [row] = query(app, ROW, {"id": job_id})
    return row


@pytest.mark.parametrize("settings", [{}, {"result_ttl": 5, "failure_ttl": 3600}])
def test_enqueue_plain__writes_the_row_the_general_insert_writes(make_app: MakeApp,
                                                                  settings: dict[str, Any]
                                                                  ) -> None:
    app = make_app(**settings).connect()
    plain = app.enqueue(jobs.add, 1, b=2)
    general = app.enqueue(jobs.add, 1, b=2, _priority=0)  # an option: job_insert_one
    assert plain is not None and general is not None
    assert written(app, plain.id) == written(app, general.id)
    assert written(app, plain.id)["delay"].total_seconds() == 0


def test_enqueue_plain__returns_the_job_as_stored(app: Werk) -> None:
    returned = app.enqueue(jobs.add, 1, b=2)
    assert returned is not None
    assert returned == app.get_job(returned.id)
    assert returned.status is JobStatus.Queued and returned.args == (1,)
    assert returned.scheduled_at == returned.enqueued_at and returned.expires_at is None


def test_enqueue_plain__jobs_do_not_share_their_mutable_parts(app: Werk) -> None:
    first, second = app.enqueue(jobs.noop), app.enqueue(jobs.noop)
    assert first is not None and second is not None and first.id != second.id
    assert first.meta is not second.meta and first.kwargs is not second.kwargs


def test_enqueue_many_plain__writes_the_rows_the_general_insert_writes(app: Werk) -> None:
    plain = app.enqueue_many([EnqueueParams(jobs.add, args=(i,), kwargs={"b": 1})
                              for i in range(3)])
    general = app.enqueue_many([EnqueueParams(jobs.add, args=(i,), kwargs={"b": 1},
                                              priority=0) for i in range(3)])
    assert all(plain) and all(general)
    assert [written(app, j.id) for j in plain] == [written(app, j.id) for j in general]


def test_enqueue_many_plain__returns_each_job_as_stored_in_input_order(app: Werk) -> None:
    made = app.enqueue_many([EnqueueParams(jobs.add, args=(i,), kwargs={"b": i})
                             for i in range(50)])
    assert [job.args for job in made if job] == [(i,) for i in range(50)]
    assert all(job == app.get_job(job.id) for job in made if job)
    stored = query(app, "SELECT id, payload FROM {jobs} ORDER BY id")
    assert [r["id"] for r in stored] == [job.id for job in made if job]


def test_enqueue_many_plain__with_one_job_with_options_takes_the_general_insert(
        app: Werk, statements: list[bytes]) -> None:
    app.enqueue(jobs.noop)
    statements.clear()
    made = app.enqueue_many([EnqueueParams(jobs.noop), EnqueueParams(jobs.noop, queue="q")])
    assert [job.queue for job in made if job] == ["default", "q"]
    assert statements == [app._store.queries["job_insert"]]


def test_enqueue_plain__sends_the_plain_statement_with_two_parameters(
        app: Werk, statements: list[bytes]) -> None:
    app.enqueue(jobs.noop)
    statements.clear()
    app.enqueue(jobs.add, 1, 2)
    app.enqueue_many([EnqueueParams(jobs.add, args=(3, 4))])
    app.enqueue_many([EnqueueParams(jobs.add, args=(3, 4))] * 2)
    app.enqueue(jobs.add, 1, 2, _queue="q")
    assert app._store._plain is not None
    _, one, many, _ = app._store._plain
    assert statements == [one, one, many, app._store.queries["job_insert_one"]]
    assert all(q.count(b"%s") == 2 and b"%(" not in q for q in (one, many))


def test_enqueue_plain__wakes_a_worker_and_runs(app: Werk) -> None:
    with running_worker(app):
        job = app.enqueue(jobs.add, 2, 3)
        assert job is not None
        assert wait_status(app, job, "complete").result == 5


def test_enqueue_plain__two_apps_on_one_schema_write_their_own_defaults(make_app: MakeApp
                                                                        ) -> None:
    app = make_app().connect()
    first = app.enqueue(jobs.noop)
    other = make_app(schema=app.config.schema, result_ttl=7).connect()
    second = other.enqueue(jobs.noop)
    assert first is not None and second is not None
    assert (first.result_ttl, second.result_ttl) == (86400.0, 7.0)
    assert [r["result_ttl"] for r in query(app, "SELECT result_ttl FROM {jobs} ORDER BY id")
            ] == [86400.0, 7.0]
