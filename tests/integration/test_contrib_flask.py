"""``pgwerk.contrib.flask.PgWerk`` in a real Flask app with Flask-SQLAlchemy: the example
under ``examples/flask_ext``, its tables in a schema of this test and pgwerk's in another.

Enqueue joins ``db.session``'s transaction: the job commits with the session and is gone
after its rollback. ``flask pgwerk-worker`` runs as a subprocess, as a user runs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pgwerk import ConfigurationError, JobNotFound, JobStatus
from tests.conftest import drop_schemas
from tests.helpers import count_rows

pytest.importorskip("flask_sqlalchemy")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "flask_ext"


class Shop:
    """The example app, created for one test, and what it needs to run outside it."""

    def __init__(self, module: Any, app: Any, env: dict[str, str], schema: str) -> None:
        self.module, self.app, self.env, self.schema = module, app, env, schema
        self.db, self.pgwerk = module.db, module.pgwerk

    @property
    def werk(self) -> Any:
        return self.app.extensions["pgwerk"].werk


@pytest.fixture
def shop(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shop]:
    tag = uuid.uuid4().hex[:10]
    app_schema, pgwerk_schema = f"fl_{tag}", f"pw_{tag}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(app_schema)))
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": psycopg.conninfo.make_conninfo(
            pg_dsn, options=f"-c search_path={app_schema}"),
        "PGWERK_SCHEMA": pgwerk_schema,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    })
    for key in ("DATABASE_URL", "PGWERK_SCHEMA"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import bookshop

    app = bookshop.create_app()
    with app.app_context():
        bookshop.db.create_all()
        bookshop.db.session.add_all([bookshop.Stock(item="book", quantity=10),
                                     bookshop.Stock(item="lamp", quantity=1)])
        bookshop.db.session.commit()
    found = Shop(bookshop, app, env, pgwerk_schema)
    try:
        yield found
    finally:
        found.werk.close()
        with app.app_context():
            bookshop.db.engine.dispose()
        drop_schemas(pg_dsn, [app_schema, pgwerk_schema])


def test_flask__the_werk_is_built_from_the_sqlalchemy_database_and_options(shop: Shop,
                                                                         pg_dsn: str) -> None:
    werk = shop.werk
    assert werk.config.schema == shop.schema
    assert psycopg.conninfo.conninfo_to_dict(werk.dsn)["dbname"] == \
        psycopg.conninfo.conninfo_to_dict(pg_dsn)["dbname"]
    with shop.app.app_context():
        assert shop.pgwerk.werk is werk
        assert shop.pgwerk.queue_stats() == {}  # other Werk methods act on the app's Werk


def test_flask__a_job_enqueued_in_the_session_appears_on_commit(shop: Shop) -> None:
    with shop.app.app_context():
        job = shop.pgwerk.enqueue(shop.module.fulfil_order, order_id=1)
        assert job is not None
        with pytest.raises(JobNotFound):
            shop.werk.get_job(job.id)  # pgwerk's own connection cannot see it yet
        shop.db.session.commit()
        assert shop.werk.get_job(job.id).status is JobStatus.Queued


def test_flask__a_job_enqueued_in_a_rolled_back_session_is_gone(shop: Shop) -> None:
    with shop.app.app_context():
        job = shop.pgwerk.enqueue(shop.module.fulfil_order, order_id=1)
        assert job is not None
        shop.db.session.rollback()
    assert count_rows(shop.werk) == 0


def test_flask__enqueue_many_joins_the_session_too(shop: Shop) -> None:
    from pgwerk import EnqueueParams

    with shop.app.app_context():
        jobs = shop.pgwerk.enqueue_many([EnqueueParams(func=shop.module.fulfil_order,
                                                       kwargs={"order_id": i})
                                         for i in range(3)])
        assert len(jobs) == 3
        shop.db.session.rollback()
    assert count_rows(shop.werk) == 0


def test_flask__the_order_and_its_job_commit_together(shop: Shop) -> None:
    response = shop.app.test_client().post("/orders", json={"item": "book", "quantity": 2})
    assert response.status_code == 201
    body = response.json
    job = shop.werk.get_job(body["job_id"])
    assert (job.function, job.kwargs) == ("bookshop.fulfil_order",
                                          {"order_id": body["order_id"]})


def test_flask__a_rolled_back_order_leaves_neither_order_nor_job(shop: Shop) -> None:
    client = shop.app.test_client()
    response = client.post("/orders", json={"item": "lamp", "quantity": 5})
    assert response.status_code == 409
    assert count_rows(shop.werk) == 0
    with shop.app.app_context():
        assert shop.db.session.query(shop.module.Order).count() == 0


@pytest.mark.parametrize("pool", ["thread", "fork"])
def test_flask__flask_pgwerk_worker_runs_the_job_in_an_app_context(shop: Shop,
                                                                  pool: str) -> None:
    client = shop.app.test_client()
    body = client.post("/orders", json={"item": "book", "quantity": 1}).json
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "bookshop",
                             "pgwerk-worker", "--burst", "-c", "2", "--pool", pool],
                            cwd=EXAMPLE, env=shop.env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    job = shop.werk.get_job(body["job_id"])
    assert (job.status, job.result) == (JobStatus.Complete, f"order {body['order_id']} shipped")
    assert client.get(f"/orders/{body['order_id']}").json["status"] == "shipped"


def test_flask__with_a_dsn_of_its_own_enqueue_does_not_join_the_session(shop: Shop,
                                                                       pg_dsn: str) -> None:
    app = shop.module.create_app({"PGWERK_DSN": pg_dsn})
    try:
        with app.app_context():
            job = shop.pgwerk.enqueue(shop.module.fulfil_order, order_id=1)
            assert job is not None
            shop.db.session.rollback()
            assert shop.pgwerk.get_job(job.id).status is JobStatus.Queued
    finally:
        app.extensions["pgwerk"].werk.close()


@pytest.mark.parametrize(("config", "message"), [
    ({"PGWERK_OPTIONS": ["schema"]}, "PGWERK_OPTIONS must be a dict"),
    ({"PGWERK_OPTIONS": {"shema": "x"}}, r"unknown Werk option\(s\) shema"),
    ({"PGWERK_TRANSACTIONAL": "yes"}, "PGWERK_TRANSACTIONAL must be True or False"),
    ({"SQLALCHEMY_DATABASE_URI": "sqlite://"}, "not a PostgreSQL database"),
])
def test_flask__bad_configuration_is_a_clear_error(shop: Shop, config: dict[str, Any],
                                                   message: str) -> None:
    with pytest.raises((ConfigurationError, TypeError), match=message):
        shop.module.create_app(config)


def test_flask__using_the_extension_on_an_app_without_init_app_says_so(shop: Shop) -> None:
    from flask import Flask

    with Flask("other").app_context():
        with pytest.raises(RuntimeError, match=r"not initialised for the app 'other'"):
            shop.pgwerk.enqueue(shop.module.fulfil_order, order_id=1)


def test_flask__the_dsn_is_read_from_any_postgresql_driver_url() -> None:
    from pgwerk.contrib.flask import _postgresql_uri

    dsn = _postgresql_uri(
        "postgresql+psycopg2://app:p%40ss@db.internal:5433/shop?sslmode=require&connect_timeout=3")
    assert dsn is not None
    assert psycopg.conninfo.conninfo_to_dict(dsn) == {
        "user": "app", "password": "p@ss", "host": "db.internal", "port": "5433",
        "dbname": "shop", "sslmode": "require", "connect_timeout": "3"}
    from sqlalchemy import URL

    url = URL.create("postgresql+psycopg", username="app", password="secret",
                     database="shop", query={"host": "/run/postgresql"})
    assert psycopg.conninfo.conninfo_to_dict(_postgresql_uri(url) or "") == {
        "user": "app", "password": "secret", "dbname": "shop", "host": "/run/postgresql"}
    assert _postgresql_uri("sqlite:///shop.db") is None
    assert _postgresql_uri(None) is None
