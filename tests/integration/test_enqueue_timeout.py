"""``enqueue_timeout``: a call of the app (``enqueue`` from a web request, ``get_job`` ...)
gives up with ``DatabaseUnavailable`` within its time budget during an outage, however
many reconnect attempts are configured; workers keep retrying on their own."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from pgwerk import ConfigurationError, DatabaseUnavailable, JobStatus, Werk
from tests import jobs
from tests.conftest import unique_schema
from tests.pgbouncer_support import free_port
from tests.worker_support import running_worker, wait_status

MARGIN = 1.5  # seconds: scheduling on a busy machine, and one last connect attempt


def elapsed_failing(call: Any) -> float:
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable):
        call()
    return time.monotonic() - started


def test_enqueue__a_closed_port_fails_within_the_budget_not_after_every_attempt() -> None:
    app = Werk(f"postgresql://postgres@127.0.0.1:{free_port()}/test", enqueue_timeout=1.0,
               connect_attempts=1000)
    try:
        assert elapsed_failing(lambda: app.enqueue(jobs.noop)) < 1.0 + MARGIN
        assert elapsed_failing(lambda: app.get_job(1)) < 1.0 + MARGIN
    finally:
        app.close()


@pytest.mark.slow
def test_enqueue__the_default_budget_is_five_seconds() -> None:
    app = Werk(f"postgresql://postgres@127.0.0.1:{free_port()}/test", connect_attempts=1000)
    try:
        assert app.config.enqueue_timeout == 5.0
        # It stops early when the next backoff would end past the budget.
        assert elapsed_failing(lambda: app.enqueue(jobs.noop)) < 5.0 + MARGIN
    finally:
        app.close()


@pytest.mark.parametrize("value", [0, -1, "5", float("inf"), float("nan"), True, 10**9])
def test_enqueue_timeout__bad_values_are_a_configuration_error(value: object) -> None:
    with pytest.raises(ConfigurationError, match="enqueue_timeout"):
        Werk("postgresql://localhost/db", enqueue_timeout=value)


@pytest.fixture
def private_server() -> Iterator[Any]:
    """An embedded PostgreSQL of this test only, so that it can be stopped."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        base = tempfile.mkdtemp(prefix="pgwerk-stop-")
        server = pgserver.get_server(os.path.join(base, "pgdata"), cleanup_mode="delete")
    try:
        yield server
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


def stop(server: Any) -> None:
    from pgserver._commands import pg_ctl

    pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user)


@pytest.mark.slow
def test_enqueue__a_stopped_server_fails_within_the_budget(private_server: Any) -> None:
    app = Werk(private_server.get_uri(), schema=unique_schema("stopped"), enqueue_timeout=2.0,
               connect_attempts=1000, min_pool_size=2)
    try:
        app.connect()
        assert app.enqueue(jobs.noop) is not None  # the pool holds live connections
        stop(private_server)
        assert elapsed_failing(lambda: app.enqueue(jobs.noop)) < 2.0 + MARGIN
        assert elapsed_failing(lambda: app.enqueue(jobs.noop)) < 2.0 + MARGIN
    finally:
        app.close()


def test_worker__keeps_working_with_a_short_budget(app: Werk, make_app: Any) -> None:
    # The budget bounds each call; a worker's loops retry around it and are unaffected.
    worker_app = make_app(schema=app.config.schema, enqueue_timeout=0.5)
    with running_worker(worker_app):
        job = app.enqueue(jobs.add, 1, 2)
        assert job is not None
        assert wait_status(app, job, JobStatus.Complete).result == 3


def test_enqueue_with_conn__the_first_connect_is_within_the_budget_too(pg_dsn: str) -> None:
    app = Werk(f"postgresql://postgres@127.0.0.1:{free_port()}/test", enqueue_timeout=1.0,
               connect_attempts=1000)
    try:
        with psycopg.connect(pg_dsn) as conn:
            assert elapsed_failing(lambda: app.enqueue(jobs.noop, _conn=conn)) < 1.0 + MARGIN
    finally:
        app.close()
