"""Every code example of the enqueue documentation (ENQUEUE.md), run as written — with
``await``, through ``AsyncWerk`` — against a real database and a real ``Worker`` running in a
thread, each checked against the sentence that introduces it.

The handlers the examples name (``send_email``, ``my_func``, ...) are defined below, at
module level, so that the worker imports them by their dotted path.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from pgwerk import Job, JobNotFound, JobStatus, Werk
from pgwerk.aio import AsyncWerk
from tests.helpers import eventually, query
from tests.worker_support import WorkerThread, wait_all_terminal, wait_status

T = TypeVar("T")
QUEUES = ["default", "high", "bulk"]

_lock = threading.Lock()
CALLS: list[tuple[Any, ...]] = []
RUNS: dict[str, list[tuple[float, float]]] = {}


def record(*call: Any) -> None:
    with _lock:
        CALLS.append(call)


def calls(kind: str) -> list[tuple[Any, ...]]:
    with _lock:
        return [c for c in CALLS if c[0] == kind]


# -- the handlers the examples name -----------------------------------------------------------


def send_email(to: str, subject: str) -> str:
    return f"sent {subject!r} to {to}"


def process_image(path: str, width: int) -> list[Any]:
    return [path, width]


def my_func(x: int = 0) -> str:
    record("my_func", x)
    return "ok"


def failing_func() -> None:
    raise RuntimeError("failing on purpose")


def sleeper(seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:  # short sleeps: interruptible by a timeout or abort
        time.sleep(0.02)
    return "woke"


def send_invoice(invoice_id: int) -> int:
    return invoice_id


def sync_user(user_id: int) -> None:
    start = time.monotonic()
    time.sleep(0.15)
    with _lock:
        RUNS.setdefault(f"user:{user_id}", []).append((start, time.monotonic()))


def cleanup() -> str:
    record("cleanup")
    return "clean"


def step_one() -> str:
    return "one"


def step_one_fails() -> None:
    raise RuntimeError("step one failed")


def step_two() -> str:
    return "two"


def step_three() -> str:
    return "three"


def process(item_id: int) -> int:
    return item_id


def fulfill_order(order_id: int) -> str:
    return f"order {order_id} shipped"


def greet(name: str) -> str:
    return f"Hello, {name}!"


def process_item(item_id: int) -> int:
    return item_id * 10


async def on_done(ctx: Any) -> None:
    print(f"Job {ctx.job.id} finished")
    record("done", ctx.job.id, ctx.job.status, ctx.job.meta)


async def on_error(ctx: Any) -> None:
    print(f"Job {ctx.job.id} failed: {ctx.job.error}")
    record("error", ctx.job.id, ctx.job.status, ctx.job.error)


# -- fixtures ---------------------------------------------------------------------------------


def run(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(coro_fn())


@pytest.fixture(autouse=True)
def _fresh_records() -> None:
    with _lock:
        CALLS.clear()
        RUNS.clear()


@pytest.fixture
def aapp(app: Werk) -> AsyncWerk:
    return AsyncWerk.wrap(app)


@pytest.fixture
def worker(app: Werk) -> Iterator[WorkerThread]:
    runner = WorkerThread(app, queues=QUEUES, concurrency=4).start()
    yield runner
    runner.stop()


def near(moment: datetime | None, expected: datetime, slack: float = 5.0) -> bool:
    assert moment is not None
    return abs((moment - expected).total_seconds()) <= slack


def purge_at(app: Werk, job_id: int) -> datetime:
    return query(app, "SELECT purge_at FROM {jobs} WHERE id = %s", [job_id])[0]["purge_at"]


# -- Basic enqueue ----------------------------------------------------------------------------


def test_basic_enqueue__pass_the_callable_and_its_arguments(
        app: Werk, aapp: AsyncWerk, worker: WorkerThread) -> None:
    job = run(lambda: aapp.enqueue(send_email, to="user@example.com", subject="Hello"))
    assert isinstance(job, Job)  # "enqueue returns the inserted Job object"
    done = wait_status(app, job, JobStatus.Complete)
    assert done.kwargs == {"to": "user@example.com", "subject": "Hello"}
    assert done.result == "sent 'Hello' to user@example.com"


def test_basic_enqueue__positional_arguments_are_also_supported(
        app: Werk, aapp: AsyncWerk, worker: WorkerThread) -> None:
    job = run(lambda: aapp.enqueue(process_image, "/tmp/photo.jpg", 800))
    assert job is not None
    assert wait_status(app, job, JobStatus.Complete).result == ["/tmp/photo.jpg", 800]


# -- Queue and priority -----------------------------------------------------------------------


def test_queue_and_priority__stored_with_defaults_default_and_0(aapp: AsyncWerk) -> None:
    job = run(lambda: aapp.enqueue(my_func, x=1, _queue="high", _priority=10))
    assert job is not None and (job.queue, job.priority, job.kwargs) == ("high", 10, {"x": 1})
    plain = run(lambda: aapp.enqueue(my_func))
    assert plain is not None and (plain.queue, plain.priority) == ("default", 0)


def test_queue_and_priority__higher_priority_runs_first_within_a_queue(
        app: Werk, aapp: AsyncWerk) -> None:
    async def main() -> list[Job | None]:
        return [await aapp.enqueue(my_func, x=p, _queue="ordered", _priority=p)
                for p in (0, 10, 5)]

    run(main)
    runner = WorkerThread(app, queues=["ordered"], concurrency=1).start()
    try:
        eventually(lambda: len(calls("my_func")) == 3, timeout=15)
    finally:
        runner.stop()
    assert [c[1] for c in calls("my_func")] == [10, 5, 0]


# -- Scheduling -------------------------------------------------------------------------------


def test_scheduling__run_30_seconds_from_now(aapp: AsyncWerk) -> None:
    job = run(lambda: aapp.enqueue(my_func, _delay=30))
    assert job is not None and job.status is JobStatus.Scheduled
    assert near(job.scheduled_at, job.enqueued_at + timedelta(seconds=30), slack=1)


def test_scheduling__run_at_an_absolute_time(app: Werk, aapp: AsyncWerk,
                                             worker: WorkerThread) -> None:
    job = run(lambda: aapp.enqueue(my_func, _at=datetime(2025, 6, 1, 9, 0, tzinfo=timezone.utc)))
    assert job is not None
    assert job.scheduled_at == datetime(2025, 6, 1, 9, 0, tzinfo=timezone.utc)
    wait_status(app, job, JobStatus.Complete)  # that moment has passed: it runs now
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    future = run(lambda: aapp.enqueue(my_func, _at=later))
    assert future is not None and future.status is JobStatus.Scheduled
    assert future.scheduled_at == later


# -- Retries ----------------------------------------------------------------------------------


def test_retries__an_integer_is_the_total_number_of_attempts(
        app: Werk, aapp: AsyncWerk, worker: WorkerThread) -> None:
    job = run(lambda: aapp.enqueue(my_func, _retry=3))
    assert job is not None and job.max_attempts == 3
    failing = run(lambda: aapp.enqueue(failing_func, _retry=3))
    assert failing is not None
    done = wait_status(app, failing, JobStatus.Failed)
    assert done.attempts == 3
    assert len(app.get_executions(failing.id)) == 3


def test_retries__custom_back_off_between_retries(app: Werk, aapp: AsyncWerk,
                                                  worker: WorkerThread) -> None:
    from pgwerk import Retry

    job = run(lambda: aapp.enqueue(my_func, _retry=Retry(max=4, intervals=[10, 60, 300])))
    assert job is not None
    assert (job.max_attempts, list(job.retry_intervals)) == (4, [10, 60, 300])
    failing = run(lambda: aapp.enqueue(failing_func,
                                       _retry=Retry(max=4, intervals=[10, 60, 300])))
    assert failing is not None
    waiting = wait_status(app, failing, JobStatus.Scheduled)
    assert waiting.attempts == 1
    assert near(waiting.scheduled_at, datetime.now(timezone.utc) + timedelta(seconds=10), 3)


def test_retries__a_single_integer_is_a_uniform_delay(app: Werk, aapp: AsyncWerk,
                                                      worker: WorkerThread) -> None:
    from pgwerk import Retry

    failing = run(lambda: aapp.enqueue(failing_func, _retry=Retry(max=3, intervals=20)))
    assert failing is not None and list(failing.retry_intervals) == [20]
    waiting = wait_status(app, failing, JobStatus.Scheduled)
    assert near(waiting.scheduled_at, datetime.now(timezone.utc) + timedelta(seconds=20), 3)


# -- Timeout, heartbeat -----------------------------------------------------------------------


def test_timeout__the_job_is_cancelled_when_it_runs_too_long(
        app: Werk, aapp: AsyncWerk, worker: WorkerThread) -> None:
    job = run(lambda: aapp.enqueue(my_func, _timeout=120))
    assert job is not None and job.timeout == 120
    slow = run(lambda: aapp.enqueue(sleeper, 5, _timeout=0.3))
    assert slow is not None
    done = wait_status(app, slow, JobStatus.Failed)
    assert "JobTimeout" in (done.error or "")


def test_heartbeat__the_active_timestamp_is_renewed_while_it_runs(
        app: Werk, aapp: AsyncWerk, worker: WorkerThread) -> None:
    job = run(lambda: aapp.enqueue(my_func, _heartbeat=30))  # renew every 30 seconds
    assert job is not None and job.heartbeat == 30
    slow = run(lambda: aapp.enqueue(sleeper, 1.5, _heartbeat=0.2))
    assert slow is not None
    started = wait_status(app, slow, JobStatus.Active)

    def renewed() -> bool:
        current = app.get_job(slow.id)
        return (current.status is JobStatus.Active and current.heartbeat_at is not None
                and started.started_at is not None
                and (current.heartbeat_at - started.started_at).total_seconds() >= 0.3)

    eventually(renewed, timeout=10, message="heartbeat renewed while running")
    wait_status(app, slow, JobStatus.Complete)


# -- Idempotency key, group, metadata ---------------------------------------------------------


def test_idempotency_key__duplicates_are_silently_dropped(app: Werk, aapp: AsyncWerk) -> None:
    async def main() -> tuple[Job | None, Job | None]:
        first = await aapp.enqueue(send_invoice, invoice_id=42, _key="invoice:42")
        second = await aapp.enqueue(send_invoice, invoice_id=42, _key="invoice:42")
        return first, second

    first, second = run(main)
    assert first is not None and first.key == "invoice:42"
    assert second is None  # "or None when an idempotency key collision is detected"
    assert len(app.list_jobs()) == 1


def test_concurrency_group__at_most_one_job_of_a_group_is_active(
        app: Werk, aapp: AsyncWerk, worker: WorkerThread) -> None:
    async def main() -> list[Job | None]:
        return [await aapp.enqueue(sync_user, user_id=99, _group="user:99") for _ in range(3)]

    jobs = [j for j in run(main) if j is not None]
    wait_all_terminal(app, jobs)
    spans = sorted(RUNS["user:99"])
    assert len(spans) == 3
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end, f"two jobs of the group overlapped: {spans}"


def test_metadata__attached_for_inspection_and_callbacks(
        app: Werk, aapp: AsyncWerk, worker: WorkerThread) -> None:
    job = run(lambda: aapp.enqueue(my_func, _meta={"source": "api", "request_id": "abc"}))
    assert job is not None
    assert app.get_job(job.id).meta == {"source": "api", "request_id": "abc"}
    seen = run(lambda: aapp.enqueue(my_func, _meta={"source": "api"}, _on_success=on_done))
    assert seen is not None
    eventually(lambda: calls("done"), timeout=10)
    assert calls("done")[0][3] == {"source": "api"}


# -- TTL and expiry ---------------------------------------------------------------------------


def test_ttl__an_unstarted_job_expires(app: Werk, aapp: AsyncWerk) -> None:
    job = run(lambda: aapp.enqueue(my_func, _ttl=60))  # Expire an unstarted job after 60 s
    assert job is not None
    assert near(job.expires_at, job.enqueued_at + timedelta(seconds=60), slack=1)
    short = run(lambda: aapp.enqueue(my_func, _ttl=0.2, _queue="nobody-works-here"))
    assert short is not None

    def expired() -> bool:
        app.sweep()
        return app.get_job(short.id).status is JobStatus.Expired

    eventually(expired, timeout=10, interval=0.1)
    assert calls("my_func") == []


def test_result_ttl__the_completed_row_is_kept_for_an_hour(
        app: Werk, aapp: AsyncWerk, worker: WorkerThread) -> None:
    job = run(lambda: aapp.enqueue(my_func, _result_ttl=3600))
    assert job is not None
    done = wait_status(app, job, JobStatus.Complete)
    assert done.completed_at is not None
    assert near(purge_at(app, job.id), done.completed_at + timedelta(seconds=3600), 2)


def test_failure_ttl__the_failed_row_is_kept_for_a_day(
        app: Werk, aapp: AsyncWerk, worker: WorkerThread) -> None:
    job = run(lambda: aapp.enqueue(my_func, _failure_ttl=86400))
    assert job is not None and job.failure_ttl == 86400
    failing = run(lambda: aapp.enqueue(failing_func, _failure_ttl=86400))
    assert failing is not None
    done = wait_status(app, failing, JobStatus.Failed)
    assert done.completed_at is not None
    assert near(purge_at(app, failing.id), done.completed_at + timedelta(seconds=86400), 2)


# -- Failure mode -----------------------------------------------------------------------------


def test_failure_mode__hold_keeps_and_delete_removes_the_failed_row(
        app: Werk, aapp: AsyncWerk, worker: WorkerThread) -> None:
    job = run(lambda: aapp.enqueue(my_func, _failure_mode="delete"))
    assert job is not None and job.failure_mode == "delete"
    held = run(lambda: aapp.enqueue(failing_func))
    deleted = run(lambda: aapp.enqueue(failing_func, _failure_mode="delete"))
    assert held is not None and deleted is not None
    wait_status(app, held, JobStatus.Failed)  # the default, "hold": kept to inspect and retry

    def gone() -> bool:
        try:
            app.get_job(deleted.id)
        except JobNotFound:
            return True
        return False

    eventually(gone, timeout=10, message="failed row deleted")


# -- Callbacks --------------------------------------------------------------------------------


def test_callbacks__called_when_a_job_completes_fails_or_is_stopped(
        app: Werk, aapp: AsyncWerk, worker: WorkerThread,
        capsys: pytest.CaptureFixture[str]) -> None:
    async def main() -> tuple[Job | None, Job | None, Job | None]:
        ok = await aapp.enqueue(
            my_func,
            _on_success=on_done,
            _on_failure=on_error,
            _on_stopped=on_error,
        )
        bad = await aapp.enqueue(failing_func, _on_success=on_done, _on_failure=on_error,
                                 _on_stopped=on_error)
        stopped = await aapp.enqueue(sleeper, 10, _on_success=on_done, _on_failure=on_error,
                                     _on_stopped=on_error)
        return ok, bad, stopped

    ok, bad, stopped = run(main)
    assert ok is not None and bad is not None and stopped is not None
    wait_status(app, stopped, JobStatus.Active)
    assert run(lambda: aapp.abort_job(stopped.id))
    eventually(lambda: len(calls("done")) == 1 and len(calls("error")) == 2, timeout=15)
    assert [c[1:3] for c in calls("done")] == [(ok.id, JobStatus.Complete)]
    errors = {c[1]: c[2] for c in calls("error")}
    assert errors == {bad.id: JobStatus.Failed, stopped.id: JobStatus.Aborted}
    printed = capsys.readouterr().out
    assert f"Job {ok.id} finished" in printed and f"Job {bad.id} failed: " in printed


def test_callbacks__with_a_per_callback_timeout(app: Werk, aapp: AsyncWerk,
                                                worker: WorkerThread) -> None:
    from pgwerk import Callback

    job = run(lambda: aapp.enqueue(my_func, _on_success=Callback(func=on_done, timeout=10)))
    assert job is not None and job.on_success is not None and job.on_success.timeout == 10
    eventually(lambda: [c[1] for c in calls("done")] == [job.id], timeout=10)


# -- Repeating jobs ---------------------------------------------------------------------------


def _next_run(app: Werk, after: Job) -> Job:
    def found() -> Job | None:
        later = [j for j in app.list_jobs(function=after.function) if j.id > after.id]
        return later[0] if later else None

    return eventually(found, timeout=10, message="the next run enqueued")


def test_repeat__six_runs_an_hour_apart(app: Werk, aapp: AsyncWerk,
                                        worker: WorkerThread) -> None:
    from pgwerk import Repeat

    job = run(lambda: aapp.enqueue(cleanup, _repeat=Repeat(times=5, interval=3600)))
    assert job is not None
    done = wait_status(app, job, JobStatus.Complete)
    following = _next_run(app, job)
    assert following.status is JobStatus.Scheduled
    assert done.completed_at is not None
    assert near(following.scheduled_at, done.completed_at + timedelta(seconds=3600), 3)
    assert following.repeat is not None and following.repeat_index == 1


def test_repeat__custom_per_run_delays(app: Werk, aapp: AsyncWerk,
                                       worker: WorkerThread) -> None:
    from pgwerk import Repeat

    job = run(lambda: aapp.enqueue(cleanup, _repeat=Repeat(times=3, intervals=[60, 300, 3600])))
    assert job is not None
    done = wait_status(app, job, JobStatus.Complete)
    following = _next_run(app, job)
    assert done.completed_at is not None
    assert near(following.scheduled_at, done.completed_at + timedelta(seconds=60), 3)


def test_repeat__runs_times_plus_one_in_all(app: Werk, aapp: AsyncWerk,
                                            worker: WorkerThread) -> None:
    from pgwerk import Repeat

    run(lambda: aapp.enqueue(cleanup, _repeat=Repeat(times=2, interval=0)))
    eventually(lambda: len(calls("cleanup")) == 3, timeout=15)
    finished = eventually(lambda: [j for j in app.list_jobs() if j.is_terminal] if all(
        j.is_terminal for j in app.list_jobs()) else None, timeout=10)
    assert len(finished) == 3


# -- Dependencies -----------------------------------------------------------------------------


def test_dependencies__a_dependent_waits_then_runs(app: Werk, aapp: AsyncWerk) -> None:
    async def main() -> tuple[Job, Job, Job]:
        job_a = await aapp.enqueue(step_one)
        job_b = await aapp.enqueue(step_two, _depends_on=job_a)
        # Multiple dependencies
        job_c = await aapp.enqueue(step_three, _depends_on=[job_a, job_b])
        assert job_a and job_b and job_c
        return job_a, job_b, job_c

    job_a, job_b, job_c = run(main)
    assert (job_b.status, job_c.status) == (JobStatus.Waiting, JobStatus.Waiting)
    runner = WorkerThread(app, queues=QUEUES, concurrency=4).start()
    try:
        done = wait_all_terminal(app, [job_a, job_b, job_c])
    finally:
        runner.stop()
    assert [j.status for j in done] == [JobStatus.Complete] * 3
    assert done[0].completed_at and done[1].started_at and done[1].completed_at
    assert done[0].completed_at <= done[1].started_at
    assert done[2].started_at and done[1].completed_at <= done[2].started_at


def test_dependencies__allow_failure_runs_the_dependent_even_if_job_a_fails(
        app: Werk, aapp: AsyncWerk, worker: WorkerThread) -> None:
    from pgwerk import Dependency

    async def main() -> tuple[Job, Job, Job]:
        job_a = await aapp.enqueue(step_one_fails)
        job_b = await aapp.enqueue(step_two, _depends_on=Dependency(job_a, allow_failure=True))
        strict = await aapp.enqueue(step_two, _depends_on=job_a)
        assert job_a and job_b and strict
        return job_a, job_b, strict

    job_a, job_b, strict = run(main)
    done = wait_all_terminal(app, [job_a, job_b, strict])
    assert [j.status for j in done] == [JobStatus.Failed, JobStatus.Complete, JobStatus.Failed]
    assert "DependencyFailed" in (done[2].error or "")


# -- Bulk enqueue -----------------------------------------------------------------------------


def test_bulk_enqueue__a_list_of_jobs_in_input_order(app: Werk, aapp: AsyncWerk,
                                                     worker: WorkerThread) -> None:
    from pgwerk import EnqueueParams

    jobs = run(lambda: aapp.enqueue_many([
        EnqueueParams(func=process, kwargs={"item_id": i}, queue="bulk")
        for i in range(1000)
    ]))
    assert len(jobs) == 1000
    assert [j.kwargs["item_id"] for j in jobs if j] == list(range(1000))
    assert {j.queue for j in jobs if j} == {"bulk"}
    eventually(lambda: app.queue_stats().get("bulk") == {"complete": 1000,
                                                         "oldest_queued_age": 0.0},
               timeout=60, interval=0.2, message="all 1000 processed")


# -- Transactional enqueue --------------------------------------------------------------------


def _orders_table(app: Werk) -> str:
    with psycopg.connect(app.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{app.config.schema}".orders (id int PRIMARY KEY)')
    return f'"{app.config.schema}".orders'


def test_transactional_enqueue__both_commit_together(app: Werk, aapp: AsyncWerk,
                                                     worker: WorkerThread) -> None:
    orders = _orders_table(app)

    async def main() -> Job | None:
        async with AsyncConnectionPool(app.dsn, open=False) as pool:
            async with pool.connection() as conn:
                await conn.execute(f"INSERT INTO {orders} (id) VALUES (%s)", (123,))
                job = await aapp.enqueue(fulfill_order, order_id=123, _conn=conn)
                assert app.list_jobs() == []  # not visible until the commit
            # both the INSERT and the enqueue commit or roll back together
        return job

    job = run(main)
    assert job is not None
    assert wait_status(app, job, JobStatus.Complete).result == "order 123 shipped"
    assert query(app, f"SELECT id FROM {orders}") == [{"id": 123}]


def test_transactional_enqueue__both_roll_back_together(app: Werk, aapp: AsyncWerk) -> None:
    orders = _orders_table(app)

    async def main() -> None:
        async with AsyncConnectionPool(app.dsn, open=False) as pool:
            with pytest.raises(RuntimeError):
                async with pool.connection() as conn:
                    await conn.execute(f"INSERT INTO {orders} (id) VALUES (%s)", (123,))
                    await aapp.enqueue(fulfill_order, order_id=123, _conn=conn)
                    raise RuntimeError("payment declined")

    run(main)
    assert app.list_jobs() == []
    assert query(app, f"SELECT id FROM {orders}") == []


# -- Wait for a result ------------------------------------------------------------------------


def test_apply__enqueues_and_waits_for_the_result(aapp: AsyncWerk, worker: WorkerThread) -> None:
    result = run(lambda: aapp.apply(greet, name="world", timeout=30))
    assert result == "Hello, world!"


def test_map__many_inputs_in_parallel_results_in_input_order(aapp: AsyncWerk,
                                                             worker: WorkerThread) -> None:
    results = run(lambda: aapp.map(
        process_item,
        [{"item_id": 1}, {"item_id": 2}, {"item_id": 3}],
        timeout=60,
    ))
    assert results == [10, 20, 30]
