"""A worker whose start fails halfway leaves nothing behind: no thread, no child process,
no signal handler of its own. Run in the test's main thread, so the worker installs its
SIGTERM/SIGINT handlers and drives time limits with SIGALRM, as under the CLI."""

from __future__ import annotations

import errno
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from pgwerk import Werk, Worker
from tests.process_support import kill_quietly, process_gone
from tests.worker_support import FAST

SIGNALS = (signal.SIGALRM, signal.SIGTERM, signal.SIGINT)


@contextmanager
def leaves_no_trace() -> Iterator[None]:
    """Asserts that the block leaves signal handlers and threads as it found them."""
    assert threading.current_thread() is threading.main_thread()
    handlers = {sig: signal.getsignal(sig) for sig in SIGNALS}
    threads = set(threading.enumerate())
    yield
    assert {sig: signal.getsignal(sig) for sig in SIGNALS} == handlers
    stray = [t.name for t in threading.enumerate() if t not in threads and t.is_alive()]
    assert not stray, f"threads left running: {stray}"


def test_worker__a_pool_that_fails_to_start_leaves_no_child_and_no_handler(
        app: Werk, monkeypatch: pytest.MonkeyPatch) -> None:
    forked: list[int] = []
    real_fork = os.fork

    def fork_once() -> int:  # the second child cannot be had (as under a process limit)
        if forked:
            raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
        pid = real_fork()
        if pid:
            forked.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork_once)
    worker = Worker(app, pool="process", concurrency=3, **FAST)
    try:
        with leaves_no_trace(), pytest.raises(OSError, match="Resource temporarily"):
            worker.run()
        assert len(forked) == 1
        assert process_gone(forked[0]), "the child forked before the failure is still running"
    finally:
        kill_quietly(forked)


def test_worker__a_start_that_fails_after_the_pool_started_stops_it_again(
        app: Werk, monkeypatch: pytest.MonkeyPatch) -> None:
    def cannot_register(self: Worker) -> None:
        raise RuntimeError("registration failed")

    monkeypatch.setattr(Worker, "_register", cannot_register)
    worker = Worker(app, pool="thread", concurrency=3, **FAST)
    with leaves_no_trace(), pytest.raises(RuntimeError, match="registration failed"):
        worker.run()
