"""Children of the fork and process pools die with their worker: a worker SIGKILLed mid-job
leaves no child running a job that the sweep will hand to another worker."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from pgwerk import Werk
from tests import worker_jobs
from tests.helpers import eventually
from tests.process_support import children_of, kill_quietly, process_gone
from tests.worker_support import WorkerProcess, create_events_table, events, worker_processes


@pytest.mark.parametrize("pool", ["fork", "process"])
def test_pool__children_die_with_a_sigkilled_worker(
        app: Werk, pg_dsn: str, tmp_path: Path, pool: str) -> None:
    create_events_table(app)
    worker = WorkerProcess(pg_dsn, app.config.schema, tmp_path, pool=pool, concurrency=2)
    children: list[int] = []
    try:
        with worker_processes(worker):
            worker.wait_registered(app)
            job = app.enqueue(worker_jobs.block_first_attempt)
            assert job is not None
            [attempt] = eventually(lambda: events(app, "attempt", job.id), timeout=20)
            children = children_of(worker.pid)
            assert attempt["pid"] in children
            worker.signal(signal.SIGKILL)
            assert worker.wait(10) == -signal.SIGKILL

        def all_gone() -> bool:
            return all(process_gone(pid) for pid in children)

        all_gone.__name__ = f"children {children} of the killed worker gone"
        eventually(all_gone, timeout=5)
    finally:
        kill_quietly(children)
