"""Transactional enqueue (``_conn=``): the job is written in the caller's transaction, is
visible and wakes workers only on commit, and leaves no trace on rollback. For a psycopg 3
connection, a psycopg2 connection and SQLAlchemy (Connection, Session, raw connection)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import psycopg
import psycopg2
import pytest
import sqlalchemy
from psycopg import sql
from sqlalchemy.orm import Session

from pgwerk import EnqueueParams, Repeat, Retry, Werk
from tests import jobs
from tests.helpers import ChannelSpy, count_rows, query


class Caller:
    """The caller's connection in one driver: what to pass as ``_conn``, how to run the
    caller's own statement, commit and roll back."""

    def __init__(self, conn: Any, execute: Callable[[str], None], commit: Callable[[], None],
                 rollback: Callable[[], None], close: Callable[[], None]) -> None:
        self.conn, self.execute = conn, execute
        self.commit, self.rollback, self.close = commit, rollback, close


def psycopg3_caller(dsn: str) -> Caller:
    conn = psycopg.connect(dsn)
    return Caller(conn, lambda s: conn.execute(s.encode()) and None, conn.commit, conn.rollback,
                  conn.close)


def psycopg2_caller(dsn: str) -> Caller:
    conn = psycopg2.connect(dsn)

    def execute(statement: str) -> None:
        with conn.cursor() as cur:
            cur.execute(statement)

    return Caller(conn, execute, conn.commit, conn.rollback, conn.close)


def _engine(dsn: str) -> sqlalchemy.Engine:
    return sqlalchemy.create_engine("postgresql+psycopg2://", creator=lambda: psycopg2.connect(dsn),
                                    poolclass=sqlalchemy.pool.NullPool)


def sqlalchemy_connection_caller(dsn: str) -> Caller:
    engine = _engine(dsn)
    conn = engine.connect()

    def close() -> None:
        conn.close()
        engine.dispose()

    # The enqueue comes first, before SQLAlchemy has begun a transaction of its own.
    return Caller(conn, lambda s: conn.execute(sqlalchemy.text(s)) and None, conn.commit,
                  conn.rollback, close)


def sqlalchemy_session_caller(dsn: str) -> Caller:
    engine = _engine(dsn)
    session = Session(engine)

    def close() -> None:
        session.close()
        engine.dispose()

    return Caller(session, lambda s: session.execute(sqlalchemy.text(s)) and None,
                  session.commit, session.rollback, close)


def sqlalchemy_raw_connection_caller(dsn: str) -> Caller:
    engine = _engine(dsn)
    raw = engine.raw_connection()  # the pool-proxied DB-API connection

    def execute(statement: str) -> None:
        cur = raw.cursor()
        try:
            cur.execute(statement)
        finally:
            cur.close()

    def close() -> None:
        raw.close()
        engine.dispose()

    return Caller(raw, execute, raw.commit, raw.rollback, close)


CALLERS = {
    "psycopg3": psycopg3_caller,
    "psycopg2": psycopg2_caller,
    "sqlalchemy-connection": sqlalchemy_connection_caller,
    "sqlalchemy-session": sqlalchemy_session_caller,
    "sqlalchemy-raw": sqlalchemy_raw_connection_caller,
}


@pytest.fixture(params=list(CALLERS))
def caller(request: pytest.FixtureRequest, app: Werk) -> Iterator[Caller]:
    with psycopg.connect(app.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (id int)").format(
            sql.Identifier(app.config.schema, "orders")))
    made = CALLERS[request.param](app.dsn)
    yield made
    made.close()


def orders(app: Werk) -> int:
    return len(query(app, f'SELECT * FROM "{app.config.schema}".orders'))


def insert_order(app: Werk, caller: Caller) -> None:
    caller.execute(f'INSERT INTO "{app.config.schema}".orders VALUES (1)')


def test_enqueue__with_conn_is_visible_and_wakes_workers_only_after_commit(
    app: Werk, caller: Caller
) -> None:
    with ChannelSpy(app.dsn, app._store.channel) as spy:
        job = app.enqueue(jobs.add, 1, 2, _conn=caller.conn, _queue="tx")
        insert_order(app, caller)
        assert job is not None
        assert count_rows(app) == 0  # another session sees nothing yet
        assert spy.payloads() == []
        caller.commit()
        assert spy.payloads() == ["q:tx"]
    assert app.get_job(job.id) == job
    assert orders(app) == 1


def test_enqueue__with_conn_as_the_only_statement_commits(app: Werk, caller: Caller) -> None:
    # SQLAlchemy begins its transaction on its own first execute; here there is none.
    job = app.enqueue(jobs.noop, _conn=caller.conn)
    assert job is not None
    caller.commit()
    caller.close()
    assert app.get_job(job.id) == job


def test_enqueue__with_conn_leaves_no_trace_after_rollback(app: Werk, caller: Caller) -> None:
    with ChannelSpy(app.dsn, app._store.channel) as spy:
        insert_order(app, caller)
        job = app.enqueue(jobs.add, 1, 2, _conn=caller.conn)
        assert job is not None
        caller.rollback()
        assert spy.payloads() == []
    assert count_rows(app) == 0
    assert orders(app) == 0


def test_enqueue__with_conn_and_dependencies(app: Werk, caller: Caller) -> None:
    upstream = app.enqueue(jobs.noop)
    assert upstream is not None
    job = app.enqueue(jobs.noop, _depends_on=upstream, _conn=caller.conn)
    assert job is not None and job.status.value == "waiting"
    caller.commit()
    assert [d["id"] for d in app.get_job_dependencies(job.id)] == [upstream.id]


def test_enqueue__with_conn_key_collision_returns_none(app: Werk, caller: Caller) -> None:
    app.enqueue(jobs.noop, _key="k")
    assert app.enqueue(jobs.noop, _key="k", _conn=caller.conn) is None
    caller.commit()
    assert count_rows(app) == 1


def test_enqueue_many__with_conn_commits_with_the_caller(app: Werk, caller: Caller) -> None:
    with ChannelSpy(app.dsn, app._store.channel) as spy:
        result = app.enqueue_many(
            [EnqueueParams(func=jobs.add, args=(i, i), queue="m") for i in range(3)]
            + [EnqueueParams(func=jobs.noop, queue="n")], _conn=caller.conn)
        assert all(j is not None for j in result)
        assert count_rows(app) == 0
        assert spy.payloads() == []
        caller.commit()
        assert sorted(spy.payloads()) == ["q:m", "q:n"]
    assert count_rows(app) == 4
    assert [app.get_job(j.id) for j in result if j] == result


def test_enqueue_many__with_conn_rolls_back_with_the_caller(app: Werk, caller: Caller) -> None:
    with ChannelSpy(app.dsn, app._store.channel) as spy:
        app.enqueue_many([EnqueueParams(func=jobs.noop) for _ in range(3)], _conn=caller.conn)
        caller.rollback()
        assert spy.payloads() == []
    assert count_rows(app) == 0


def test_enqueue__with_closed_conn_is_rejected(app: Werk) -> None:
    conn = psycopg.connect(app.dsn)
    conn.close()
    with pytest.raises(ValueError, match="_conn is closed"):
        app.enqueue(jobs.noop, _conn=conn)
    assert count_rows(app) == 0


def test_enqueue__with_autocommit_conn_is_visible_at_once(app: Werk) -> None:
    with psycopg.connect(app.dsn, autocommit=True) as conn:
        job = app.enqueue(jobs.noop, _conn=conn)
    assert job is not None
    assert app.get_job(job.id) == job


def test_enqueue__with_conn_stores_every_option_like_the_pool_does(
    app: Werk, caller: Caller
) -> None:
    at = datetime(2040, 1, 1, 12, 30, tzinfo=timezone.utc)
    options = dict(_queue="q", _priority=4, _at=at, _retry=Retry(3, [5, 10]), _timeout=9,
                   _heartbeat=3, _key="opts", _group="g", _meta={"m": [1, "x"]}, _ttl=60,
                   _result_ttl=10, _failure_ttl=None, _failure_mode="delete",
                   _on_success=jobs.on_done, _repeat=Repeat(times=2, interval=7))
    job = app.enqueue(jobs.echo, 1, "two", three=3.0, _conn=caller.conn, **options)
    caller.commit()
    assert job is not None
    assert app.get_job(job.id) == job
    assert (job.scheduled_at, job.max_attempts, job.retry_intervals) == (at, 3, (5.0, 10.0))
    assert (job.args, job.kwargs, job.meta) == ((1, "two"), {"three": 3.0}, {"m": [1, "x"]})
    assert job.repeat is not None and job.repeat.schedule() == [7.0, 7.0]
    many = app.enqueue_many([EnqueueParams(func=jobs.noop, at=at, meta={"a": 1}, delay=None)],
                            _conn=caller.conn)
    caller.commit()
    assert many[0] is not None and app.get_job(many[0].id) == many[0]
