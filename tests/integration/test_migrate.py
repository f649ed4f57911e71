"""Schema creation and migration: on first connect, under an advisory lock, or by hand."""

from __future__ import annotations

import multiprocessing
from typing import Any

import psycopg
import pytest

from pgwerk import SchemaError, Werk
from pgwerk.store.statements import migrations
from tests import jobs
from tests.helpers import connect_in_child, query


def schema_exists(dsn: str, schema: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s",
                           [schema]).fetchone()
    return bool(row and row[0])


def applied(app: Werk) -> list[int]:
    return [r["version"] for r in query(app, "SELECT version FROM {migrations} ORDER BY 1")]


def test_connect__creates_the_schema_and_tables(make_app: Any) -> None:
    app = make_app()
    assert not schema_exists(app.dsn, app.config.schema)
    app.connect()
    assert schema_exists(app.dsn, app.config.schema)
    assert applied(app) == [v for v, _n, _s in migrations()]
    tables = {r["tablename"] for r in query(
        app, "SELECT tablename FROM pg_tables WHERE schemaname = %s", [app.config.schema])}
    assert {"_pgwerk_jobs", "_pgwerk_job_deps", "_pgwerk_executions", "_pgwerk_workers",
            "_pgwerk_migrations"} <= tables


def test_migrate__returns_how_many_ran_and_is_idempotent(make_app: Any) -> None:
    app = make_app()
    assert app.migrate() == len(migrations())
    assert app.migrate() == 0
    app.connect()
    assert applied(app) == [v for v, _n, _s in migrations()]


def test_migrate__two_prefixes_share_a_schema(make_app: Any) -> None:
    a = make_app(prefix="one").connect()
    b = make_app(schema=a.config.schema, prefix="two").connect()
    job = a.enqueue(jobs.noop)
    assert job is not None
    assert b.list_jobs() == []
    assert a.list_jobs() == [job]


def test_migrate__auto_migrate_false_on_missing_schema_is_a_schema_error(make_app: Any) -> None:
    app = make_app(auto_migrate=False)
    with pytest.raises(SchemaError) as info:
        app.connect()
    message = str(info.value)
    assert "pgwerk migrate" in message
    assert repr(app.config.schema) in message
    assert not schema_exists(app.dsn, app.config.schema)  # nothing was created


def test_migrate__auto_migrate_false_enqueue_is_a_schema_error_too(make_app: Any) -> None:
    app = make_app(auto_migrate=False)
    with pytest.raises(SchemaError, match="pgwerk migrate"):
        app.enqueue(jobs.noop)


def test_migrate__auto_migrate_false_works_once_migrated_by_hand(make_app: Any) -> None:
    app = make_app(auto_migrate=False)
    with psycopg.connect(app.dsn, autocommit=True) as conn:
        conn.execute(app.migration_sql().encode())  # what a DBA would run
    app.connect()
    assert app.enqueue(jobs.noop) is not None
    assert applied(app) == [v for v, _n, _s in migrations()]


def test_migrate__sql_is_idempotent_and_does_not_touch_other_schemas(make_app: Any) -> None:
    app = make_app().connect()
    job = app.enqueue(jobs.noop)
    with psycopg.connect(app.dsn, autocommit=True) as conn:
        conn.execute(app.migration_sql().encode())
    assert app.list_jobs() == [job]
    assert f'"{app.config.schema}"' in app.migration_sql()


@pytest.mark.slow
def test_migrate__eight_processes_connecting_at_once_migrate_once(make_app: Any) -> None:
    app = make_app()  # names the schema and drops it afterwards; never connects itself
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(8)
    children = [ctx.Process(target=connect_in_child, args=(app.dsn, app.config.schema, barrier))
                for _ in range(8)]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=90)
    assert [c.exitcode for c in children] == [0] * 8
    counts = query(app, "SELECT version, count(*) AS n FROM {migrations} GROUP BY 1 ORDER BY 1")
    assert counts == [{"version": v, "n": 1} for v, _n, _s in migrations()]
    assert len(query(app, "SELECT id FROM {jobs}")) == 8
