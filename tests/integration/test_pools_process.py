"""The process pool survives its children dying: an idle child that is killed (the OOM
killer, an operator) is noticed, reaped and replaced, and a job handed to a child that died
unseen runs on a fresh one. A child that dies while running a job fails that job only."""

from __future__ import annotations

import os
import signal
import threading

from pgwerk import JobStatus, Werk, Worker
from pgwerk._execute import Outcome
from pgwerk._pools import ProcessPool, _Child
from pgwerk._timeouts import DeadlineWatcher
from pgwerk.job import Job
from tests import worker_jobs
from tests.helpers import eventually
from tests.process_support import children_of, kill_quietly, process_gone
from tests.worker_support import WorkerThread, wait_status


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    eventually(lambda: all(process_gone(pid) for pid in pids), timeout=5,
               message="the children dying")


def _pool_children(others: set[int]) -> list[int] | None:
    """The pool's two children: this process's children but those it had before (other
    tests' helpers may still be running)."""
    mine = [pid for pid in children_of(os.getpid()) if pid not in others]
    return mine if len(mine) == 2 else None


def test_process_pool__killed_idle_children_are_replaced(app: Werk) -> None:
    others = set(children_of(os.getpid()))
    runner = WorkerThread(app, pool="process", concurrency=2).start()
    try:
        before = eventually(lambda: _pool_children(others), timeout=15, message="two children")
        _kill_all(before)

        def replaced() -> list[int] | None:
            now = _pool_children(others)
            return now if now and not set(now) & set(before) else None

        eventually(replaced, timeout=15, message="two fresh children")
        jobs = [app.enqueue(worker_jobs.double, i) for i in range(4)]
        assert [wait_status(app, j, JobStatus.Complete, timeout=10).result
                for j in jobs if j] == [0, 2, 4, 6]
    finally:
        runner.stop(now=True)


def test_process_pool__a_job_sent_right_after_its_children_died_still_runs(app: Werk) -> None:
    others = set(children_of(os.getpid()))
    runner = WorkerThread(app, pool="process", concurrency=2).start()
    try:
        children = eventually(lambda: _pool_children(others), timeout=15,
                              message="two children")
        _kill_all(children)
        jobs = [app.enqueue(worker_jobs.double, i) for i in range(4)]  # no wait: a race
        assert [wait_status(app, j, JobStatus.Complete, timeout=10).result
                for j in jobs if j] == [0, 2, 4, 6]
        assert runner.thread.is_alive() and runner.error is None
    finally:
        runner.stop(now=True)


def test_process_pool__submit_to_a_dead_idle_child_runs_the_job_on_a_fresh_one(
        app: Werk) -> None:
    # Built directly: one idle child, killed before anything watches it.
    done: list[tuple[Job, Outcome]] = []
    finished = threading.Event()

    def on_done(job: Job, outcome: Outcome, inline: bool) -> None:
        done.append((job, outcome))
        finished.set()

    worker = Worker(app, pool="process", concurrency=1)
    watcher = DeadlineWatcher(use_signal=False)
    watcher.start()
    pool = ProcessPool(app, worker, 1, watcher, 0.5, on_done, persistent=True)
    dead = _Child(pool, None)
    pool._idle.append(dead)
    try:
        _kill_all([dead.pid])
        job = app.enqueue(worker_jobs.double, 21)
        assert job is not None
        pool.submit(job)  # must not raise BrokenPipeError
        pool.start()
        assert finished.wait(10), "the job never ended"
        [(ended, outcome)] = done
        assert ended.id == job.id
        assert (outcome.kind, outcome.result) == ("success", "42")
    finally:
        pool.stop()
        watcher.stop()
        kill_quietly(children_of(os.getpid()))
