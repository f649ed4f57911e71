"""Connecting: lazy, idempotent, thread-safe; an unreachable server fails fast and clearly."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from pgwerk import DatabaseUnavailable, Werk, WerkError
from tests import jobs


def test_connect__is_lazy(make_app: Any) -> None:
    app = make_app()
    assert not app._store.db.is_open
    assert app.enqueue(jobs.noop) is not None
    assert app._store.db.is_open


def test_connect__is_idempotent(make_app: Any) -> None:
    app = make_app()
    assert app.connect() is app
    pool = app._store.db.pool()
    assert app.connect() is app
    assert app._store.db.pool() is pool


def test_connect__first_use_from_many_threads_opens_one_pool(make_app: Any) -> None:
    app = make_app()
    start = threading.Barrier(8)

    def first_use(_: int) -> object:
        start.wait(timeout=30)
        return app._store.db.pool()

    with ThreadPoolExecutor(8) as pool:
        pools = list(pool.map(first_use, range(8)))
    assert len({id(p) for p in pools}) == 1


def test_connect__context_manager_closes_and_the_app_reconnects(make_app: Any) -> None:
    app = make_app()
    with app as entered:
        assert entered is app
        job = app.enqueue(jobs.noop)
        assert app._store.db.is_open
    assert not app._store.db.is_open
    assert job is not None
    assert app.get_job(job.id) == job  # used again: opens a new pool
    assert app._store.db.is_open


def test_connect__unreachable_server_raises_database_unavailable_quickly() -> None:
    app = Werk("postgresql://postgres@127.0.0.1:1/test", connect_attempts=2, connect_timeout=2)
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as info:
        app.connect()
    assert time.monotonic() - started < 15
    assert "after 2 attempt(s)" in str(info.value)
    assert isinstance(info.value, WerkError)
    app.close()


def test_connect__unreachable_server_fails_enqueue_quickly() -> None:
    app = Werk("postgresql://postgres@127.0.0.1:1/test", connect_attempts=2, connect_timeout=2)
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable):
        app.enqueue(jobs.noop)
    assert time.monotonic() - started < 15
    app.close()
