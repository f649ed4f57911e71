"""A worker process whose deadline watcher dies logs it, drains, unregisters and exits
non-zero, so that its supervisor starts a whole one again."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgwerk import JobStatus, Werk
from tests import worker_jobs, worker_support
from tests.helpers import eventually
from tests.worker_support import ROOT, WorkerProcess, wait_status, worker_processes


def test_worker_process__exits_non_zero_when_its_deadline_watcher_dies(
        app: Werk, pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_support, "WORKER_SCRIPT",
                        ROOT / "tests" / "acceptance" / "faulty_worker_process.py")
    worker = WorkerProcess(pg_dsn, app.config.schema, tmp_path, concurrency=2)
    worker.config["fault"] = "deadline-runner-dies"
    with worker_processes(worker):
        worker.wait_registered(app)
        job = app.enqueue(worker_jobs.double, 4)
        assert job is not None
        assert wait_status(app, job, JobStatus.Complete, timeout=10).result == 8
        code = worker.wait(20)
        output = worker.output()

    assert code == 1, output
    assert "the deadline watcher thread died" in output
    assert "injected fault" in output and "WorkerFailed" in output
    eventually(lambda: not app.list_workers(), timeout=5, message="the worker unregistered")
