"""``prefetch="auto"``: hold what the worker finishes in two claim round trips, nothing for
jobs slower than a round trip, never more than the cap."""

from __future__ import annotations

import time

import pytest

from pgwerk import Werk, Worker


@pytest.fixture
def app() -> Werk:
    return Werk("postgresql://nobody@127.0.0.1:1/none")  # never connects in these tests


def test_worker__prefetch_is_auto_by_default(app: Werk) -> None:
    worker = Worker(app, concurrency=4)
    assert worker.prefetch == 0 and worker._auto_prefetch == 128
    assert worker.hold_limit == 0.25


def test_worker__prefetch_zero_claims_only_free_slots(app: Werk) -> None:
    worker = Worker(app, concurrency=4, prefetch=0)
    assert worker.prefetch == 0 and worker._auto_prefetch is None


def test_worker__auto_prefetch_starts_at_zero(app: Werk) -> None:
    worker = Worker(app, concurrency=4, prefetch="auto")
    assert worker.prefetch == 0 and worker._auto_prefetch == 128


def test_worker__prefetch_rejects_other_words(app: Werk) -> None:
    with pytest.raises(ValueError, match="'auto'"):
        Worker(app, prefetch="lots")


def _adapt(worker: Worker, finished: int, over: float, rtt: float) -> int:
    worker._rate_mark = (time.monotonic() - over, worker.processed)
    worker.processed += finished
    worker._adapt_prefetch(rtt)
    return worker.prefetch


def test_worker__auto_prefetch_grows_for_short_jobs_up_to_the_cap(app: Werk) -> None:
    worker = Worker(app, concurrency=8, prefetch="auto")
    for _ in range(10):  # 2,000 jobs/s and 5 ms claims: 20 jobs per round trip
        held = _adapt(worker, 20, 0.01, 0.005)
    assert 15 <= held <= 32
    for _ in range(10):  # 20,000 jobs/s: capped at max(4 * concurrency, 128)
        held = _adapt(worker, 200, 0.01, 0.005)
    assert held == 128
    worker = Worker(app, concurrency=64, prefetch="auto")
    for _ in range(10):
        held = _adapt(worker, 2000, 0.01, 0.005)
    assert held == 256


def test_worker__auto_prefetch_holds_nothing_for_slow_jobs(app: Werk) -> None:
    worker = Worker(app, concurrency=8, prefetch="auto")
    for _ in range(10):  # 8 jobs/s (one-second jobs), 5 ms claims
        held = _adapt(worker, 8, 1.0, 0.005)
    assert held == 0
