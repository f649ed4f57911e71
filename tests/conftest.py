"""Fixtures shared by every test: a real PostgreSQL, and apps isolated in a schema each.

The database is ``$PGWERK_TEST_DSN`` when set; otherwise a throwaway PostgreSQL from the
``embedded`` extra (pgserver), started once per test session. Under pytest-xdist every
worker process is its own session and starts its own server: nothing is shared between
workers, so there is nothing to lock or to clean up in the right order.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pgwerk import Werk

MakeApp = Callable[..., Werk]


def _start_embedded_server() -> tuple[Any, str]:
    # pgserver's import warns when XDG_RUNTIME_DIR is unset (platformdirs), and its socket
    # probe leaves a socket for the garbage collector; neither is ours to fix.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import pgserver
        except ImportError as exc:
            pytest.fail(
                f"PGWERK_TEST_DSN is not set and the embedded PostgreSQL is unavailable ({exc}):"
                " install the 'embedded' extra or point PGWERK_TEST_DSN at a PostgreSQL",
                pytrace=False,
            )

        # A short path: the server's Unix socket lives in it (sun_path is ~107 bytes).
        base = tempfile.mkdtemp(prefix="pgwerk-test-")
        server = pgserver.get_server(os.path.join(base, "pgdata"), cleanup_mode="delete")
    return server, base


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """DSN of the PostgreSQL the tests run against."""
    dsn = os.environ.get("PGWERK_TEST_DSN")
    if dsn:
        yield dsn
        return
    owner = os.getpid()
    server, base = _start_embedded_server()
    try:
        yield server.get_uri()
    finally:
        # A forked child that somehow unwinds into pytest must not stop or delete the
        # server of the process that started it.
        if os.getpid() == owner:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                server.cleanup()
            shutil.rmtree(base, ignore_errors=True)


def unique_schema(test_name: str) -> str:
    """A schema name of its own for one test: random first (channel names are cut at 63
    bytes), then the test's name to make leftovers easy to trace."""
    readable = re.sub(r"[^a-z0-9_]+", "_", test_name.lower()).strip("_")
    return f"t{uuid.uuid4().hex[:10]}_{readable}"[:60]


def drop_schemas(dsn: str, schemas: list[str]) -> None:
    if not schemas:
        return
    with psycopg.connect(dsn, autocommit=True) as conn:
        # A test that leaves a connection holding locks fails here instead of hanging.
        conn.execute("SET lock_timeout = '20s'")
        for schema in schemas:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def make_app(pg_dsn: str, request: pytest.FixtureRequest) -> Iterator[MakeApp]:
    """Factory of ``Werk`` apps with custom options, each in a fresh schema unless
    ``schema=`` is given. Every app is closed and its schema dropped afterwards."""
    made: list[Werk] = []

    def make(**options: Any) -> Werk:
        options.setdefault("schema", unique_schema(request.node.name))
        app = Werk(pg_dsn, **options)
        made.append(app)
        return app

    yield make
    for app in made:
        app.close()
    drop_schemas(pg_dsn, sorted({a.config.schema for a in made} - {"public"}))


@pytest.fixture
def app(make_app: MakeApp) -> Werk:
    """A connected app whose tables live in a schema of this test only."""
    return make_app().connect()


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """Every statement the test's thread sends through a psycopg cursor, counted on the
    client side (the database is real; only the count is taken here). The pool's own
    threads (which set up new connections) are not the caller's statements."""
    sent: list[bytes] = []
    execute = psycopg.Cursor.execute
    caller = threading.get_ident()

    def counting(self: psycopg.Cursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() == caller:
            sent.append(query if isinstance(query, bytes) else str(query).encode())
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", counting)
    yield sent
