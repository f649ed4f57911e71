"""Which job a worker takes next: priority within a queue (ties in enqueue order), only
its own queues, and the order across queues set by ``dequeue_strategy``."""

from __future__ import annotations

from itertools import pairwise

from pgwerk import DequeueStrategy, Job, JobStatus, Werk
from tests import worker_jobs
from tests.worker_support import run_burst, wait_all_terminal


def run_order(jobs: list[Job]) -> list[Job]:
    """The jobs in the order a worker started them."""
    assert all(j.started_at is not None for j in jobs)
    return sorted(jobs, key=lambda j: j.started_at)  # type: ignore[arg-type, return-value]


def test_worker__runs_higher_priority_first_and_ties_in_enqueue_order(app: Werk) -> None:
    priorities = [0, 5, 10, 5, 0, 10, -3, 5]
    jobs = [app.enqueue(worker_jobs.double, i, _priority=p) for i, p in enumerate(priorities)]

    run_burst(app, concurrency=1)

    done = wait_all_terminal(app, [j for j in jobs if j], timeout=5)
    assert all(j.status is JobStatus.Complete for j in done)
    expected = sorted(done, key=lambda j: (-j.priority, j.id))
    assert [j.id for j in run_order(done)] == [j.id for j in expected]


def test_worker__takes_jobs_only_from_its_own_queues(app: Werk) -> None:
    mine = [app.enqueue(worker_jobs.double, i, _queue=q) for i, q in enumerate(["a", "b", "a"])]
    other = app.enqueue(worker_jobs.double, 9, _queue="c")
    assert other is not None

    run_burst(app, queues=["a", "b"], concurrency=2)

    done = wait_all_terminal(app, [j for j in mine if j], timeout=5)
    assert all(j.status is JobStatus.Complete for j in done)
    untouched = app.get_job(other.id)
    assert untouched.status is JobStatus.Queued
    assert untouched.attempts == 0 and untouched.started_at is None


def test_worker__priority_strategy_takes_the_highest_priority_across_queues(app: Werk) -> None:
    low = [app.enqueue(worker_jobs.double, i, _queue="first", _priority=0) for i in range(3)]
    high = [app.enqueue(worker_jobs.double, i, _queue="second", _priority=5) for i in range(3)]

    run_burst(app, queues=["first", "second"], concurrency=1,
              dequeue_strategy=DequeueStrategy.Priority)

    done = wait_all_terminal(app, [j for j in low + high if j], timeout=5)
    assert [j.queue for j in run_order(done)] == ["second"] * 3 + ["first"] * 3


def test_worker__round_robin_strategy_alternates_queues(app: Werk) -> None:
    jobs = [app.enqueue(worker_jobs.double, i, _queue="a") for i in range(4)]
    jobs += [app.enqueue(worker_jobs.double, i, _queue="b") for i in range(4)]

    run_burst(app, queues=["a", "b"], concurrency=1, dequeue_strategy="round_robin")

    done = run_order(wait_all_terminal(app, [j for j in jobs if j], timeout=5))
    queues = [j.queue for j in done]
    assert all(first != second for first, second in pairwise(queues)), queues
    for name in ("a", "b"):  # within a queue, still in queue order
        ids = [j.id for j in done if j.queue == name]
        assert ids == sorted(ids)


def test_worker__round_robin_ignores_priority_across_queues(app: Werk) -> None:
    urgent = [app.enqueue(worker_jobs.double, i, _queue="b", _priority=100) for i in range(3)]
    plain = [app.enqueue(worker_jobs.double, i, _queue="a") for i in range(3)]

    run_burst(app, queues=["a", "b"], concurrency=1, dequeue_strategy=DequeueStrategy.RoundRobin)

    done = run_order(wait_all_terminal(app, [j for j in urgent + plain if j], timeout=5))
    queues = [j.queue for j in done]
    assert all(first != second for first, second in pairwise(queues)), queues


def test_worker__random_strategy_runs_every_queue_in_its_own_order(app: Werk) -> None:
    jobs = [app.enqueue(worker_jobs.double, i, _queue=q, _priority=i % 3)
            for q in ("a", "b") for i in range(15)]

    run_burst(app, queues=["a", "b"], concurrency=1, dequeue_strategy=DequeueStrategy.Random)

    done = run_order(wait_all_terminal(app, [j for j in jobs if j], timeout=10))
    assert all(j.status is JobStatus.Complete for j in done)
    for name in ("a", "b"):  # random across queues, never within one
        in_queue = [j for j in done if j.queue == name]
        assert in_queue == sorted(in_queue, key=lambda j: (-j.priority, j.id))
    queues = [j.queue for j in done]
    # Interleaved: with 15 jobs each, one queue emptied first by chance has odds 2**-14.
    assert queues != sorted(queues) and queues != sorted(queues, reverse=True)
