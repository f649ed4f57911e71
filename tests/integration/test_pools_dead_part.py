"""Background loops of the pools and of the deadline watcher survive one bad item, and a
loop that dies anyway is noticed: ``Worker.run`` drains and raises ``WorkerFailed``
instead of running on with a dead part."""

from __future__ import annotations

import threading

import pytest

from pgwerk import JobStatus, Werk
from pgwerk._process_pools import ProcessPool
from pgwerk._timeouts import DeadlineWatcher
from pgwerk.exceptions import WorkerFailed
from tests import pool_jobs, worker_jobs
from tests.worker_support import WorkerThread, create_events_table, wait_status


def _dies(self: object) -> None:
    raise RuntimeError("injected fault")


@pytest.mark.parametrize("use_signal", [False, True])
def test_deadline_watcher__one_failing_action_does_not_stop_the_others(
        use_signal: bool) -> None:
    watcher = DeadlineWatcher(use_signal=use_signal)
    fired = threading.Event()
    watcher.start()
    try:
        watcher.add(0.0, lambda: 1 / 0)
        watcher.add(0.05, fired.set)
        assert fired.wait(5), "the second deadline never fired"
        assert watcher.problem() is None
    finally:
        watcher.stop()


def test_worker__stops_with_worker_crashed_when_its_deadline_watcher_dies(
        app: Werk, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DeadlineWatcher, "_watch", _dies)
    runner = WorkerThread(app, concurrency=1)
    runner.thread.start()
    with pytest.raises(WorkerFailed, match="deadline watcher thread died.*injected fault"):
        runner.join(15)
    assert not app.list_workers()


def test_worker__stops_with_worker_crashed_when_the_process_pool_reader_dies(
        app: Werk, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ProcessPool, "_read_results", _dies)
    runner = WorkerThread(app, pool="process", concurrency=1)
    runner.thread.start()
    with pytest.raises(WorkerFailed, match="reader thread died.*injected fault"):
        runner.join(15)
    assert not app.list_workers()


def test_worker__stops_with_worker_crashed_when_every_thread_is_stuck(app: Werk) -> None:
    create_events_table(app)
    runner = WorkerThread(app, concurrency=1, timeout_grace=0.1).start()
    stuck = [app.enqueue(pool_jobs.swallow_interruptions, seconds=3.0, _timeout=0.1)
             for _ in range(2)]
    with pytest.raises(WorkerFailed, match="stuck"):
        runner.join(15)
    for job in stuck:
        assert job is not None
        assert app.get_job(job.id).status is JobStatus.Failed


def test_process_pool__a_job_whose_outcome_cannot_be_recorded_does_not_stop_the_others(
        app: Werk, monkeypatch: pytest.MonkeyPatch) -> None:
    real = ProcessPool._read_outcome
    calls: list[int] = []

    def fail_once(self: ProcessPool, child: object, job: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("injected fault")
        return real(self, child, job)  # type: ignore[arg-type]

    monkeypatch.setattr(ProcessPool, "_read_outcome", fail_once)
    runner = WorkerThread(app, pool="process", concurrency=1).start()
    try:
        first = app.enqueue(worker_jobs.double, 1)
        assert first is not None
        failed = wait_status(app, first, JobStatus.Failed, timeout=10)
        assert "cannot read the outcome" in (failed.error or "")
        more = [app.enqueue(worker_jobs.double, i) for i in range(3)]
        assert [wait_status(app, j, JobStatus.Complete, timeout=10).result
                for j in more if j] == [0, 2, 4]
    finally:
        runner.stop()
