"""Handler shapes a worker runs, in each of its pools: plain functions, ``async def``, and a
``Context`` for a first parameter named ``ctx`` or annotated ``Context``."""

from __future__ import annotations

import os

import pytest

from pgwerk import JobStatus, Werk
from tests import worker_jobs
from tests.worker_support import run_burst, wait_all_terminal

POOLS = ["thread", "fork", "process"]


@pytest.mark.parametrize("pool", POOLS)
def test_worker__runs_plain_and_async_handlers_and_stores_their_results(app: Werk,
                                                                          pool: str) -> None:
    plain = app.enqueue(worker_jobs.double, 21)
    coroutine = app.enqueue(worker_jobs.async_double, x=4)
    untouched = app.enqueue(worker_jobs.no_ctx, x=1)
    assert plain and coroutine and untouched

    run_burst(app, pool=pool, concurrency=2)

    done = wait_all_terminal(app, [plain, coroutine, untouched], timeout=5)
    assert [j.status for j in done] == [JobStatus.Complete] * 3
    assert [j.result for j in done] == [42, 8, 2]
    assert all(j.attempts == 1 and j.error is None for j in done)


@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("handler", [worker_jobs.ctx_named, worker_jobs.ctx_annotated,
                                     worker_jobs.async_ctx])
def test_worker__passes_a_context_to_a_first_parameter_named_ctx_or_annotated_context(
        app: Werk, pool: str, handler: object) -> None:
    job = app.enqueue(handler, x=7)  # type: ignore[arg-type]
    assert job is not None

    worker = run_burst(app, pool=pool, concurrency=1)

    [done] = wait_all_terminal(app, [job], timeout=5)
    assert done.status is JobStatus.Complete, done.error
    assert done.result["is_context"] is True
    assert done.result["job_id"] == job.id
    assert done.result["worker_id"] == worker.id
    assert done.result["same_schema"] == app.config.schema
    assert done.result["x"] == 7


@pytest.mark.parametrize("pool", ["fork", "process"])
def test_worker__process_pools_run_handlers_outside_the_worker_process(app: Werk,
                                                                       pool: str) -> None:
    jobs = [app.enqueue(worker_jobs.pid) for _ in range(3)]

    run_burst(app, pool=pool, concurrency=2)

    done = wait_all_terminal(app, [j for j in jobs if j], timeout=5)
    assert all(j.status is JobStatus.Complete for j in done)
    assert os.getpid() not in {j.result for j in done}


def test_worker__fork_pool_forks_a_fresh_child_for_every_job(app: Werk) -> None:
    jobs = [app.enqueue(worker_jobs.pid) for _ in range(4)]

    run_burst(app, pool="fork", concurrency=1)

    done = wait_all_terminal(app, [j for j in jobs if j], timeout=5)
    assert len({j.result for j in done}) == 4


def test_worker__process_pool_reuses_its_children(app: Werk) -> None:
    jobs = [app.enqueue(worker_jobs.pid) for _ in range(6)]

    run_burst(app, pool="process", concurrency=2)

    done = wait_all_terminal(app, [j for j in jobs if j], timeout=5)
    assert all(j.status is JobStatus.Complete for j in done)
    assert len({j.result for j in done}) <= 2
