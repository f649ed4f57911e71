"""Queue limits: ``configure_queue`` and ``queue_limits``, what the claim gives under a rate
or a concurrency limit (and per function), the slots coming back when jobs end, are put
back, or are rescued from a dead worker, and bad input refused without writing anything.

Claims here are the store's (as a worker makes them), so that every step is seen; the
properties across real worker processes are in ``tests/acceptance/test_flow_control.py``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from pgwerk import EnqueueParams, JobStatus, QueueLimit, Werk
from pgwerk.aio import AsyncWerk
from pgwerk.store.core import Claim, OutcomeBatch
from tests.helpers import ago, make_job, most_in_any_window, query
from tests.worker_support import run_burst


def enqueue(app: Werk, count: int, queue: str = "limited",
            func: str = "tests.worker_jobs.timed") -> list[int]:
    jobs = app.enqueue_many([EnqueueParams(func=func, queue=queue) for _ in range(count)])
    return [job.id for job in jobs if job is not None]


def claim(app: Werk, queues: list[str] | None = None, limit: int = 10, free: int | None = None,
          worker: str = "w1", limited: bool = True) -> Claim:
    return app._store.claim("priority", queues or ["limited"], limit, worker,
                            free=limit if free is None else free, limited=limited)


def finish(app: Werk, worker: str, claimed: Claim) -> set[int]:
    """Record every claimed job complete, as the worker's batch writer does (freeing the
    slots, as a worker of limited queues does)."""
    outcomes = json.dumps([[job.id, job.attempts, "complete", "null", None, 0.0, 0.0, "success"]
                           for job in claimed.jobs])
    slots = {job.id: (job.queue, job.function) for job in claimed.jobs}
    return app._store.record_outcomes(worker, OutcomeBatch(outcomes, slots=slots))


def running(app: Werk, queue: str = "limited", function: str | None = None) -> int | None:
    found = [limit for limit in app.queue_limits(queue) if limit.function == function]
    return found[0].running if found else None


# -- configuring ----------------------------------------------------------------------------


def test_configure_queue__sets_shows_changes_and_removes_limits(app: Werk) -> None:
    limit = app.configure_queue("mail", rate_limit="10/s", concurrency=3)
    assert isinstance(limit, QueueLimit)
    assert (limit.queue, limit.function, limit.rate, limit.rate_limit, limit.rate_period,
            limit.concurrency, limit.running, limit.recent) == (
        "mail", None, "10/s", 10, 1.0, 3, 0, 0)

    changed = app.configure_queue("mail", rate_limit=(100, timedelta(minutes=15)))
    assert changed is not None
    assert (changed.rate, changed.concurrency) == ("100/15m", 3)  # concurrency left as it was
    changed = app.configure_queue("mail", rate_limit=None)
    assert changed is not None and (changed.rate, changed.concurrency) == (None, 3)

    assert app.configure_queue("mail", concurrency=None) is None  # nothing left: unlimited
    assert app.queue_limits() == []


def test_configure_queue__limits_of_one_function_in_a_queue(app: Werk) -> None:
    from tests import worker_jobs

    app.configure_queue("api", concurrency=5)
    limit = app.configure_queue("api", function=worker_jobs.timed, rate_limit="2/m")
    assert limit is not None and (limit.function, limit.rate) == ("tests.worker_jobs.timed",
                                                                    "2/m")
    assert [(x.queue, x.function) for x in app.queue_limits()] == [
        ("api", None), ("api", "tests.worker_jobs.timed")]
    assert [x.function for x in app.queue_limits("api")] == [None, "tests.worker_jobs.timed"]
    assert app.queue_limits("other") == []


def test_configure_queue__a_new_concurrency_limit_counts_the_jobs_running_now(app: Werk) -> None:
    for _ in range(2):
        make_job(app, options={"_queue": "limited"}, status="active", worker_id="w",
                 attempts=1, started_at=ago(1))
    limit = app.configure_queue("limited", concurrency=2)
    assert limit is not None and limit.running == 2
    assert claim(app).jobs == []  # full


@pytest.mark.parametrize(("options", "error", "words"), [
    ({"rate_limit": "10/x"}, ValueError, "rate_limit must be 'N/s'"),
    ({"rate_limit": "0/s"}, ValueError, "rate_limit must be"),
    ({"rate_limit": "10/0s"}, ValueError, "rate_limit must be"),
    ({"rate_limit": "10/ms"}, ValueError, "rate_limit must be"),
    ({"rate_limit": "2000000/s"}, ValueError, "N from 1 to 1000000"),
    ({"rate_limit": "1/8d"}, ValueError, "604800 seconds"),
    ({"rate_limit": (3, 0)}, ValueError, "rate_limit must be"),
    ({"rate_limit": (3, 0.001)}, ValueError, "0.01 seconds"),
    ({"rate_limit": (3, float("nan"))}, ValueError, "rate_limit must be"),
    ({"rate_limit": (True, 1)}, TypeError, "rate_limit must be"),
    ({"rate_limit": 10}, TypeError, "rate_limit must be"),
    ({"rate_limit": [10, 1]}, TypeError, "rate_limit must be"),
    ({"concurrency": 0}, ValueError, "concurrency must be >= 1"),
    ({"concurrency": -3}, ValueError, "concurrency must be >= 1"),
    ({"concurrency": 10**7}, ValueError, "concurrency must be >= 1 and <= 1000000"),
    ({"concurrency": True}, TypeError, "concurrency must be an int"),
    ({"concurrency": 2.0}, TypeError, "concurrency must be an int"),
    ({"concurrency": "3"}, TypeError, "concurrency must be an int"),
    ({"concurrency": 1, "function": "not a path"}, ValueError, "function 'not a path'"),
    ({"concurrency": 1, "function": lambda: None}, ValueError, "function"),
    ({}, TypeError, "needs rate_limit= and/or concurrency="),
])
def test_configure_queue__bad_input_is_refused_naming_the_option_and_writes_nothing(
        app: Werk, options: dict[str, Any], error: type[Exception], words: str) -> None:
    before = app.configure_queue("mail", rate_limit="5/s")
    with pytest.raises(error, match=words.replace("(", r"\(").replace("*", r"\*")):
        app.configure_queue("mail", **options)
    assert app.queue_limits() == [before]


@pytest.mark.parametrize("queue", ["", "x" * 256, "a\x00b", 7, None])
def test_configure_queue__a_bad_queue_name_is_refused(app: Werk, queue: Any) -> None:
    with pytest.raises(ValueError, match="^queue must"):
        app.configure_queue(queue, concurrency=1)
    assert app.queue_limits() == []


def test_configure_queue__the_asyncio_shim_has_it_too(app: Werk) -> None:
    import asyncio

    async def go() -> list[QueueLimit]:
        shim = AsyncWerk.wrap(app)
        await shim.configure_queue("mail", concurrency=2)
        return await shim.queue_limits()

    assert [(x.queue, x.concurrency) for x in asyncio.run(go())] == [("mail", 2)]


# -- what a claim gives ----------------------------------------------------------------------


def test_claim__a_concurrency_limit_holds_across_workers_until_jobs_end(app: Werk) -> None:
    app.configure_queue("limited", concurrency=3)
    enqueue(app, 6)
    first = claim(app, worker="w1", limit=2)
    second = claim(app, worker="w2", limit=10)
    assert (len(first.jobs), len(second.jobs)) == (2, 1)
    assert running(app) == 3
    full = claim(app, worker="w3")
    assert (full.jobs, full.held, full.retry_in) == ([], True, None)  # no time to wait for

    assert finish(app, "w1", first) == {job.id for job in first.jobs}
    assert running(app) == 1
    assert len(claim(app, worker="w3").jobs) == 2


def test_claim__a_limited_queue_gives_no_more_than_the_free_slots(app: Werk) -> None:
    app.configure_queue("limited", concurrency=100)
    enqueue(app, 5)
    assert len(claim(app, limit=5, free=2).jobs) == 2
    assert claim(app, limit=5, free=0).jobs == []  # prefetch only: limited jobs must start
    unlimited = enqueue(app, 3, queue="plain")
    got = claim(app, ["limited", "plain"], limit=5, free=0)
    assert sorted(job.id for job in got.jobs) == unlimited


def test_claim__a_rate_limit_gives_n_per_window_and_says_when_more_may_start(app: Werk) -> None:
    app.configure_queue("limited", rate_limit=(3, 60))
    enqueue(app, 5)
    got = claim(app)
    assert len(got.jobs) == 3
    assert app.queue_limits("limited")[0].recent == 3
    held = claim(app, worker="w2")
    assert held.jobs == [] and held.held
    assert held.retry_in is not None and 55 < held.retry_in <= 60.05  # + the hand-off
    finish(app, "w1", got)  # ending jobs gives no rate back: they started
    assert claim(app, worker="w2").jobs == []


def test_claim__the_window_slides_moments_before_it_are_not_counted(app: Werk) -> None:
    app.configure_queue("limited", rate_limit=(2, 60))
    enqueue(app, 4)
    # Two claims charged 61 and 30 seconds ago, as a claim records them.
    query(app, "UPDATE {queue_limits} SET recent_at = ARRAY[now() - interval '61 seconds', "
               "now() - interval '30 seconds'], recent_n = ARRAY[1, 1], "
               "recent_since = now() - interval '30 seconds'")
    got = claim(app)
    assert len(got.jobs) == 1  # the one of 61 s ago is out of the window
    held = claim(app)
    assert held.held and held.retry_in is not None and 28 < held.retry_in <= 30.05


def test_claim__the_window_is_the_period_plus_the_hand_off(app: Werk) -> None:
    app.configure_queue("limited", rate_limit=(1, 60))
    enqueue(app, 2)
    # Charged 60.02 s ago: outside the period, inside the hand-off that follows it.
    query(app, "UPDATE {queue_limits} SET recent_at = ARRAY[now() - interval '60.02 seconds'], "
               "recent_n = ARRAY[1], recent_since = now() - interval '60.02 seconds'")
    held = claim(app)
    assert held.jobs == [] and held.retry_in is not None and 0 < held.retry_in <= 0.03
    query(app, "UPDATE {queue_limits} SET recent_at = ARRAY[now() - interval '60.06 seconds']")
    assert len(claim(app).jobs) == 1


def test_claim__says_which_jobs_a_rate_limit_holds(app: Werk) -> None:
    app.configure_queue("limited", function="tests.worker_jobs.timed", rate_limit="100/s")
    app.configure_queue("limited", function="tests.worker_jobs.double", concurrency=5)
    rated = enqueue(app, 2)
    plain = enqueue(app, 2, func="tests.worker_jobs.double")
    got = claim(app)
    assert {job.id for job in got.jobs} == set(rated + plain)
    assert got.rated == set(rated)


def test_claim__started_at_of_a_limited_claim_is_the_moment_charged(app: Werk) -> None:
    app.configure_queue("limited", rate_limit="100/s")
    enqueue(app, 3)
    got = claim(app)
    [limit_row] = query(app, "SELECT recent_at FROM {queue_limits}")
    assert {job.started_at for job in got.jobs} == set(limit_row["recent_at"])


def test_claim__a_function_limit_takes_its_room_and_never_blocks_other_functions(
        app: Werk) -> None:
    app.configure_queue("limited", function="tests.worker_jobs.timed", concurrency=1)
    slow = enqueue(app, 3)  # first in line
    other = enqueue(app, 2, func="tests.worker_jobs.double")
    got = claim(app)
    assert sorted(job.id for job in got.jobs) == sorted([slow[0], *other])
    assert running(app, function="tests.worker_jobs.timed") == 1
    again = claim(app)
    assert again.jobs == [] and again.held

    finish(app, "w1", got)
    assert [job.id for job in claim(app).jobs] == [slow[1]]


def test_claim__a_function_limit_adds_to_the_queue_limit(app: Werk) -> None:
    app.configure_queue("limited", concurrency=2)
    app.configure_queue("limited", function="tests.worker_jobs.timed", rate_limit=(1, 60))
    enqueue(app, 2)
    enqueue(app, 3, func="tests.worker_jobs.double")
    got = claim(app)
    assert sorted(job.function for job in got.jobs) == [
        "tests.worker_jobs.double", "tests.worker_jobs.timed"]
    assert (running(app), app.queue_limits("limited")[1].recent) == (2, 1)


def test_claim__the_plain_claim_leaves_a_limited_queue_alone(app: Werk) -> None:
    app.configure_queue("limited", concurrency=1)
    enqueue(app, 2)
    plain = enqueue(app, 2, queue="plain")
    got = claim(app, ["limited", "plain"], limited=False)
    assert sorted(job.id for job in got.jobs) == plain
    assert app._store.has_limits(["limited", "plain"]) and not app._store.has_limits(["plain"])


def test_claim__a_limited_claim_says_when_the_limits_are_gone(app: Werk) -> None:
    app.configure_queue("limited", concurrency=1)
    assert claim(app).limited
    app.configure_queue("limited", concurrency=None)
    enqueue(app, 2)
    got = claim(app)
    assert not got.limited and len(got.jobs) == 2  # unlimited now


# -- slots coming back -------------------------------------------------------------------


def test_slots__come_back_when_jobs_are_put_back_released_or_fail_unrecorded(app: Werk) -> None:
    app.configure_queue("limited", concurrency=3)
    enqueue(app, 3)
    jobs = claim(app).jobs
    assert running(app) == 3
    app._store.unclaim("w1", [jobs[0].id])
    app._store.release("w1", [jobs[1].id])
    app._store.fail_unrecordable("w1", jobs[2].id, jobs[2].attempts, "boom")
    assert running(app) == 0
    assert [j.status for j in (app.get_job(job.id) for job in jobs)] == [
        JobStatus.Queued, JobStatus.Queued, JobStatus.Failed]


def test_slots__of_a_dead_worker_come_back_with_the_rescue(app: Werk) -> None:
    app.configure_queue("limited", concurrency=2)
    enqueue(app, 4)
    held = claim(app, worker="ghost-worker")  # a worker with no row: dead
    assert len(held.jobs) == 2 and running(app) == 2
    assert claim(app, worker="w2").held

    assert app.sweep()["rescued"] == 2
    assert running(app) == 0
    again = claim(app, worker="w2")
    assert len(again.jobs) == 2 and {job.attempts for job in again.jobs} <= {1, 2}


def test_slots__a_count_that_drifted_is_corrected_by_the_sweep(app: Werk) -> None:
    app.configure_queue("limited", concurrency=2)
    query(app, "INSERT INTO {workers} (id, hostname, pid, queues, concurrency, pool) "
               "VALUES ('alive', 'h', 1, '{{limited}}', 2, 'thread')")
    make_job(app, options={"_queue": "limited"}, status="active", worker_id="alive",
             attempts=1, started_at=ago(1))
    query(app, "UPDATE {queue_limits} SET running = 7")  # as if a job row changed by hand
    counts = app.sweep()
    assert counts["limits_recounted"] == 1
    assert running(app) == 1
    assert app.sweep()["limits_recounted"] == 0


# -- a worker -------------------------------------------------------------------------------


def test_burst_worker__waits_for_what_a_rate_limit_holds_back_then_exits(app: Werk) -> None:
    app.configure_queue("limited", rate_limit=(4, 0.3))
    ids = enqueue(app, 10)
    worker = run_burst(app, queues=["limited"], concurrency=4)
    assert worker.processed == 10
    done = [app.get_job(i) for i in ids]
    assert all(job.status is JobStatus.Complete for job in done)
    claimed = [datetime.fromisoformat(job.result["claimed"]) for job in done]
    assert most_in_any_window(claimed, timedelta(seconds=0.3)) == 4
