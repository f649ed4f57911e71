"""The process pool survives its children dying: an idle child that is killed (the OOM
killer, an operator) is noticed, reaped and replaced, and a job handed to a child that died
unseen runs on a fresh one. A child that dies while running a job fails that job only."""

from __future__ import annotations

import errno
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import pytest

from pgwerk import JobStatus, Werk, Worker
from pgwerk._execute import Outcome
from pgwerk._process_pools import ProcessPool, _Child
from pgwerk._timeouts import DeadlineWatcher
from pgwerk.job import Job
from tests import worker_jobs
from tests.helpers import eventually
from tests.process_support import kill_quietly, process_gone
from tests.worker_support import (
    WorkerThread,
    create_events_table,
    events,
    running_worker,
    wait_status,
)


def _open_pipes() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:")
        except FileNotFoundError:  # closed meanwhile
            pass
    return count


def _pool_of(runner: WorkerThread) -> ProcessPool:
    pool = runner.worker._pool
    assert isinstance(pool, ProcessPool)
    return pool


def _live_children(runner: WorkerThread) -> list[int]:
    """The pids of the two children of the worker's process pool."""
    pids = _pool_of(runner).child_pids()
    assert len(pids) == 2 and not any(process_gone(pid) for pid in pids)
    return pids


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    eventually(lambda: all(process_gone(pid) for pid in pids), timeout=5,
               message="the children dying")


def test_process_pool__killed_idle_children_are_replaced(app: Werk) -> None:
    runner = WorkerThread(app, pool="process", concurrency=2).start()
    try:
        before = _live_children(runner)
        _kill_all(before)

        def replaced() -> list[int] | None:
            now = _pool_of(runner).child_pids()
            fresh = len(now) == 2 and not set(now) & set(before)
            return now if fresh and not any(process_gone(pid) for pid in now) else None

        eventually(replaced, timeout=5, message="two fresh children")
        jobs = [app.enqueue(worker_jobs.double, i) for i in range(4)]
        assert [wait_status(app, j, JobStatus.Complete, timeout=10).result
                for j in jobs if j] == [0, 2, 4, 6]
    finally:
        runner.stop(now=True)


def test_process_pool__a_job_sent_right_after_its_children_died_still_runs(app: Werk) -> None:
    runner = WorkerThread(app, pool="process", concurrency=2).start()
    try:
        children = _live_children(runner)
        _kill_all(children)
        jobs = [app.enqueue(worker_jobs.double, i) for i in range(4)]  # no wait: a race
        assert [wait_status(app, j, JobStatus.Complete, timeout=10).result
                for j in jobs if j] == [0, 2, 4, 6]
        assert runner.thread.is_alive() and runner.error is None
    finally:
        runner.stop(now=True)


class _DirectPool(NamedTuple):
    pool: ProcessPool
    child: _Child
    done: list[tuple[Job, Outcome]]
    finished: threading.Event


@contextmanager
def _pool_with_one_idle_child(app: Werk) -> Iterator[_DirectPool]:
    """A process pool of one built directly (not started), its one idle child made here
    before anything watches it, and the outcomes it reports."""
    done: list[tuple[Job, Outcome]] = []
    finished = threading.Event()

    def on_done(job: Job, outcome: Outcome, inline: bool) -> None:
        done.append((job, outcome))
        finished.set()

    worker = Worker(app, pool="process", concurrency=1)
    watcher = DeadlineWatcher(use_signal=False)
    watcher.start()
    pool = ProcessPool(app, worker, 1, watcher, 0.5, on_done, persistent=True)
    child = _Child(pool, None)
    pool._idle.append(child)
    try:
        yield _DirectPool(pool, child, done, finished)
    finally:
        kill_quietly([child.pid])
        pool.stop()
        watcher.stop()


def test_process_pool__a_child_that_dies_before_it_starts_the_job_gives_it_back(
        app: Werk) -> None:
    # The job is written to an idle child that cannot read it (stopped), which then dies:
    # the job never started, so it must not fail; it goes back to its queue (released).
    with _pool_with_one_idle_child(app) as direct:
        os.kill(direct.child.pid, signal.SIGSTOP)
        job = app.enqueue(worker_jobs.double, 21)
        assert job is not None
        direct.pool.start()
        direct.pool.submit(job)  # written to the stopped child's pipe
        os.kill(direct.child.pid, signal.SIGKILL)
        assert direct.finished.wait(10), "the job never ended"
        [(ended, outcome)] = direct.done
        assert ended.id == job.id
        assert outcome.kind == "interrupted", outcome
        assert "before it started" in (outcome.error or "")


def test_process_pool__submit_to_a_dead_idle_child_runs_the_job_on_a_fresh_one(
        app: Werk) -> None:
    # Built directly: one idle child, killed before anything watches it.
    with _pool_with_one_idle_child(app) as direct:
        _kill_all([direct.child.pid])
        job = app.enqueue(worker_jobs.double, 21)
        assert job is not None
        direct.pool.submit(job)  # must not raise BrokenPipeError
        direct.pool.start()
        assert direct.finished.wait(10), "the job never ended"
        [(ended, outcome)] = direct.done
        assert ended.id == job.id
        assert (outcome.kind, outcome.result) == ("success", "42")


def test_process_pool__a_busy_child_killed_from_outside_fails_its_job_only(app: Werk) -> None:
    create_events_table(app)
    runner = WorkerThread(app, pool="process", concurrency=1).start()
    try:
        job = app.enqueue(worker_jobs.block_first_attempt, seconds=30)
        assert job is not None
        [attempt] = eventually(lambda: events(app, "attempt", job.id), timeout=10)
        os.kill(attempt["pid"], signal.SIGKILL)
        failed = wait_status(app, job, JobStatus.Failed, timeout=10)
        assert f"killed by signal SIGKILL while running job {job.id}" in (failed.error or "")
        later = app.enqueue(worker_jobs.double, 5)
        assert later is not None
        assert wait_status(app, later, JobStatus.Complete, timeout=10).result == 10
    finally:
        runner.stop(now=True)


def test_process_pool__works_when_its_pipes_are_numbered_past_1024(app: Werk) -> None:
    # A process with many open files (connections, logs): select() could not watch the
    # children's pipes any more.
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.fail(f"this test needs a file limit of at least 1200, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    filler = []
    try:
        while True:
            fd = os.open(os.devnull, os.O_RDONLY)
            filler.append(fd)
            if fd >= 1030:
                break
        with running_worker(app, pool="process", concurrency=2):
            jobs = [app.enqueue(worker_jobs.double, i) for i in range(4)]
            assert [wait_status(app, j, JobStatus.Complete, timeout=10).result
                    for j in jobs if j] == [0, 2, 4, 6]
    finally:
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_fork_pool__a_job_that_cannot_get_a_child_fails_and_the_worker_goes_on(
        app: Werk, monkeypatch: pytest.MonkeyPatch) -> None:
    real_fork = os.fork
    no_fork = threading.Event()

    def fork() -> int:  # as under a process limit or without memory
        if no_fork.is_set():
            raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
        return real_fork()

    monkeypatch.setattr(os, "fork", fork)
    no_fork.set()
    with running_worker(app, pool="fork", concurrency=1):
        pipes = _open_pipes()
        job = app.enqueue(worker_jobs.double, 2)
        assert job is not None
        failed = wait_status(app, job, JobStatus.Failed, timeout=10)
        assert _open_pipes() == pipes, "the pipes made for the child were left open"
        assert "could not be started in a child process" in (failed.error or "")
        assert "Resource temporarily unavailable" in (failed.error or "")
        no_fork.clear()
        later = app.enqueue(worker_jobs.double, 3)
        assert later is not None
        assert wait_status(app, later, JobStatus.Complete, timeout=10).result == 6
