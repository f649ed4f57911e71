"""The worker's own life: it registers and unregisters, wakes on notification, exits in
burst mode once the queues are empty, stops on ``stop()``, and calls its hooks and
exception handlers, none of which can kill it."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from pgwerk import Context, JobStatus, Werk, Worker
from tests import worker_jobs
from tests.conftest import MakeApp
from tests.helpers import eventually
from tests.worker_support import (
    WorkerThread,
    create_events_table,
    run_burst,
    running_worker,
    seconds_between,
    wait_all_terminal,
    wait_status,
)


def test_worker__registers_while_running_and_unregisters_when_stopped(app: Werk) -> None:
    with running_worker(app, queues=["a", "b"], concurrency=3) as worker:
        [info] = app.list_workers()
        assert info.id == worker.id
        assert info.queues == ("a", "b") and info.concurrency == 3 and info.pool == "thread"
        assert info.heartbeat_age < 5

    assert app.list_workers() == []


def test_worker__idle_worker_is_woken_by_notification_not_by_polling(
        app: Werk, make_app: MakeApp) -> None:
    worker_app = make_app(schema=app.config.schema)
    with running_worker(worker_app, concurrency=1, poll_interval=10.0):
        latencies = []
        for i in range(5):
            job = app.enqueue(worker_jobs.double, i)
            assert job is not None
            done = wait_status(app, job, JobStatus.Complete, timeout=10)
            latencies.append(seconds_between(done.enqueued_at, done.started_at))

    assert max(latencies) < 0.5, latencies


def test_worker__burst_exits_once_the_queues_are_empty(app: Werk) -> None:
    jobs = [app.enqueue(worker_jobs.short_sleep, 0.05) for _ in range(10)]
    future = app.enqueue(worker_jobs.double, 1, _delay=60)
    assert future is not None

    worker = run_burst(app, concurrency=3, timeout=20)

    done = wait_all_terminal(app, [j for j in jobs if j], timeout=1)
    assert all(j.status is JobStatus.Complete for j in done)
    assert worker.processed == 10
    assert app.get_job(future.id).status is JobStatus.Scheduled  # not due: not waited for
    assert app.list_workers() == []


def test_worker__burst_waits_for_a_retry_that_is_due_within_its_poll_interval(app: Werk) -> None:
    job = app.enqueue(worker_jobs.fail_before_attempt, succeed_on=2, _retry=2)
    assert job is not None

    run_burst(app, poll_interval=1.0)

    assert app.get_job(job.id).status is JobStatus.Complete


def test_worker__burst_waits_for_a_job_that_ended_and_is_not_yet_recorded(app: Werk) -> None:
    from prometheus_client import CollectorRegistry

    from pgwerk.metrics import WorkerMetrics

    class SlowToRecord(WorkerMetrics):
        """Holds each finished job between its slot freeing and its outcome being queued
        for the writer: the claim loop looks many times meanwhile."""

        def job_finished(self, job: Any, status: str, duration: float) -> None:
            time.sleep(0.5)
            super().job_finished(job, status, duration)

    parent = app.enqueue(worker_jobs.double, 1)
    assert parent is not None
    child = app.enqueue(worker_jobs.double, 2, _depends_on=parent)
    assert child is not None

    run_burst(app, concurrency=1, poll_interval=0.02, prefetch=0,
              metrics=SlowToRecord(registry=CollectorRegistry(), queue_metrics=False))

    # The parent's outcome queues the child: the burst is not over before it is written.
    assert app.get_job(child.id).status is JobStatus.Complete


def test_worker__burst_claims_again_after_an_outcome_written_during_its_claim(
        app: Werk, monkeypatch: pytest.MonkeyPatch) -> None:
    parent = app.enqueue(worker_jobs.double, 1)
    assert parent is not None
    child = app.enqueue(worker_jobs.double, 2, _depends_on=parent)
    assert child is not None
    claim = app._store.claim

    def slow_answer(*args: Any, **kwargs: Any) -> Any:
        found = claim(*args, **kwargs)
        time.sleep(0.3)  # the parent's outcome (written 0.1 s after it ends) lands meanwhile
        return found

    monkeypatch.setattr(app._store, "claim", slow_answer)

    run_burst(app, concurrency=1, prefetch=0, flush_interval=0.1)

    # The claim that found nothing was sent before the outcome queued the child.
    assert app.get_job(child.id).status is JobStatus.Complete


def test_worker__a_retry_claimed_before_the_writer_is_done_with_its_first_attempt_is_recorded(
        app: Werk, monkeypatch: pytest.MonkeyPatch) -> None:
    # The second attempt is claimed while the writer still notes the first one's retry,
    # and ends after that.
    job = app.enqueue(worker_jobs.fail_then_sleep, 0.3, _retry=2)
    assert job is not None
    runner = WorkerThread(app, burst=True, concurrency=1, prefetch=0)
    record = app._store.record_outcomes
    calls = []

    def record_then_linger(worker_id: str, batch: Any) -> set[int]:
        recorded = record(worker_id, batch)
        calls.append(recorded)
        if len(calls) == 1:  # the first attempt's retry: the writer is slow to move on
            eventually(lambda: getattr(runner.worker._held.get(job.id), "attempts", 0) == 2,
                       timeout=10, message="the retry claimed")
        return recorded

    monkeypatch.setattr(app._store, "record_outcomes", record_then_linger)

    runner.thread.start()
    runner.join(30)

    assert app.get_job(job.id).status is JobStatus.Complete


def test_worker__burst_with_nothing_to_do_exits_at_once(app: Werk) -> None:
    started = time.monotonic()
    worker = run_burst(app, timeout=10)
    assert worker.processed == 0
    assert time.monotonic() - started < 5


def test_worker__stop_lets_the_running_job_finish(app: Werk) -> None:
    runner = WorkerThread(app, concurrency=1, shutdown_timeout=10).start()
    job = app.enqueue(worker_jobs.short_sleep, 0.5)
    assert job is not None
    wait_status(app, job, JobStatus.Active)

    runner.stop()

    assert app.get_job(job.id).status is JobStatus.Complete


def test_worker__stop_now_puts_the_running_job_back(app: Werk) -> None:
    create_events_table(app)
    runner = WorkerThread(app, concurrency=1, shutdown_timeout=30).start()
    job = app.enqueue(worker_jobs.long_unless_put_back, seconds=30)
    assert job is not None
    wait_status(app, job, JobStatus.Active)

    started = time.monotonic()
    runner.stop(now=True)
    assert time.monotonic() - started < 5

    back = app.get_job(job.id)
    assert back.status is JobStatus.Queued
    assert (back.lost, back.released) == (0, 1)  # a drain is not a loss
    assert [r.outcome for r in app.get_executions(job.id)] == ["interrupted"]
    run_burst(app)
    assert app.get_job(job.id).result == "second run (lost=0, released=1)"


class Recorder:
    """Hooks that remember what they saw (they run in the worker's threads)."""

    def __init__(self, fail: set[str] | None = None) -> None:
        self.fail = fail or set()
        self.calls: list[tuple[str, int, str | None]] = []
        self._lock = threading.Lock()

    def _note(self, name: str, ctx: Context) -> None:
        assert isinstance(ctx, Context)
        exc = type(ctx.exception).__name__ if ctx.exception is not None else None
        with self._lock:
            self.calls.append((name, ctx.job.id, exc))
        if name in self.fail:
            raise RuntimeError(f"{name} hook exploded")

    def before(self, ctx: Context) -> None:
        self._note("before", ctx)

    def after(self, ctx: Context) -> None:
        self._note("after", ctx)

    def on_exception(self, ctx: Context) -> None:
        self._note("on_exception", ctx)

    def of(self, job_id: int) -> list[tuple[str, str | None]]:
        with self._lock:
            return [(name, exc) for name, jid, exc in self.calls if jid == job_id]


def test_worker__calls_before_and_after_process_around_each_job(app: Werk) -> None:
    hooks = Recorder()
    ok = app.enqueue(worker_jobs.double, 1)
    bad = app.enqueue(worker_jobs.fail)
    assert ok is not None and bad is not None

    run_burst(app, concurrency=1, before_process=hooks.before, after_process=hooks.after,
              on_exception=hooks.on_exception)

    assert hooks.of(ok.id) == [("before", None), ("after", None)]
    assert hooks.of(bad.id) == [("before", None), ("on_exception", "ValueError"),
                                ("after", "ValueError")]


def test_worker__calls_every_exception_handler_with_the_exception(app: Werk) -> None:
    first, second = Recorder(), Recorder()
    bad = app.enqueue(worker_jobs.fail, "x")
    assert bad is not None

    run_burst(app, on_exception=[first.on_exception, second.on_exception])

    assert first.of(bad.id) == [("on_exception", "ValueError")]
    assert second.of(bad.id) == [("on_exception", "ValueError")]


@pytest.mark.parametrize("failing", [{"before"}, {"after"}, {"on_exception"},
                                     {"before", "after", "on_exception"}])
def test_worker__a_failing_hook_is_logged_and_changes_no_outcome(
        app: Werk, failing: set[str], caplog: pytest.LogCaptureFixture) -> None:
    hooks = Recorder(fail=failing)
    jobs = [app.enqueue(worker_jobs.double, 1), app.enqueue(worker_jobs.fail),
            app.enqueue(worker_jobs.double, 2)]

    worker = run_burst(app, concurrency=1, before_process=hooks.before,
                       after_process=hooks.after, on_exception=hooks.on_exception)

    done = wait_all_terminal(app, [j for j in jobs if j], timeout=1)
    assert [j.status for j in done] == [JobStatus.Complete, JobStatus.Failed, JobStatus.Complete]
    assert [done[0].result, done[2].result] == [2, 4]
    assert "ValueError: boom" in (done[1].error or "")
    assert worker.processed == 3
    assert "hook exploded" in caplog.text


def test_worker__async_hooks_are_awaited(app: Werk) -> None:
    seen: list[int] = []

    async def before(ctx: Context) -> None:
        seen.append(ctx.job.id)

    job = app.enqueue(worker_jobs.double, 1)
    assert job is not None
    run_burst(app, before_process=before)
    assert seen == [job.id]


def test_worker__rejects_bad_options_with_clear_errors(app: Werk) -> None:
    bad: list[dict[str, Any]] = [
        {"concurrency": 0}, {"pool": "gevent"}, {"queues": []}, {"dequeue_strategy": "lifo"},
        {"poll_interval": 0}, {"before_process": "not callable"},
    ]
    for options in bad:
        with pytest.raises((ValueError, TypeError)) as caught:
            Worker(app, **options)
        assert list(options)[0] in str(caught.value)
