"""Idempotency keys: while a row with the key exists, enqueueing it again writes nothing."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pgwerk import Job, Werk
from tests import jobs
from tests.helpers import ChannelSpy, count_rows, make_job


def test_enqueue__key_collision_returns_none(app: Werk) -> None:
    first = app.enqueue(jobs.add, 1, 2, _key="invoice:42")
    assert first is not None
    assert app.enqueue(jobs.add, 3, 4, _key="invoice:42") is None


def test_enqueue__key_collision_writes_nothing(app: Werk) -> None:
    first = app.enqueue(jobs.add, 1, 2, _key="invoice:42", _queue="a")
    assert first is not None
    with ChannelSpy(app.dsn, app._store.channel) as spy:
        app.enqueue(jobs.echo, "other", _key="invoice:42", _queue="b", _priority=5)
        assert spy.payloads() == []  # no wake-up for a job that was not written
    assert count_rows(app) == 1
    assert app.get_job(first.id) == first


def test_enqueue__key_collides_whatever_the_state_of_the_existing_row(app: Werk) -> None:
    make_job(app, options={"_key": "done"}, status="complete")
    make_job(app, options={"_key": "later", "_delay": 60})
    assert app.enqueue(jobs.noop, _key="done") is None
    assert app.enqueue(jobs.noop, _key="later") is None


def test_enqueue__key_is_free_again_once_the_row_is_gone(app: Werk) -> None:
    first = app.enqueue(jobs.noop, _key="k")
    assert first is not None
    assert app.delete_job(first.id)
    again = app.enqueue(jobs.noop, _key="k")
    assert again is not None and again.id != first.id


def test_enqueue__different_keys_do_not_collide(app: Werk) -> None:
    assert app.enqueue(jobs.noop, _key="a") is not None
    assert app.enqueue(jobs.noop, _key="b") is not None
    assert app.enqueue(jobs.noop) is not None
    assert app.enqueue(jobs.noop) is not None  # jobs without a key never collide
    assert count_rows(app) == 4


def test_enqueue__concurrent_enqueues_of_one_key_write_exactly_one_row(make_app: Any) -> None:
    app = make_app(min_pool_size=8, max_pool_size=8).connect()
    start = threading.Barrier(8)

    def enqueue(n: int) -> Job | None:
        start.wait(timeout=30)
        return app.enqueue(jobs.add, n, n, _key="only-once")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(enqueue, range(8)))
    written = [r for r in results if r is not None]
    assert len(written) == 1
    assert count_rows(app) == 1
    assert app.get_job(written[0].id) == written[0]
