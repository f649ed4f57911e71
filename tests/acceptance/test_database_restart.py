"""A PostgreSQL restart in the middle of a run: the worker process rides it out (it logs,
backs off, reconnects) and every job completes; nothing is lost, the worker never
crashes. The server is a private throwaway one, so stopping it disturbs no other test."""

from __future__ import annotations

import shutil
import signal
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pgwerk import JobStatus, Werk
from tests import worker_jobs
from tests.conftest import _start_embedded_server, unique_schema
from tests.helpers import eventually
from tests.worker_support import WorkerProcess, wait_all_terminal, worker_processes


@dataclass
class PrivateServer:
    server: Any
    base: str

    @property
    def dsn(self) -> str:
        return str(self.server.get_uri())

    def _pg_ctl(self, args: list[str]) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(args, pgdata=self.server.pgdata, user=self.server.system_user, timeout=60)

    def stop(self) -> None:
        self._pg_ctl(["-w", "-m", "fast", "stop"])

    def start(self) -> None:
        # The same options pgserver started it with: no TCP, the same socket directory.
        socket_dir = self.server.get_postmaster_info().socket_dir
        self._pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l",
                      str(self.server.log), "start"])


@pytest.fixture
def private_server() -> Iterator[PrivateServer]:
    server, base = _start_embedded_server()
    try:
        yield PrivateServer(server, base)
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_restart__worker_rides_out_a_postgres_restart_and_completes_every_job(
        private_server: PrivateServer, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    app = Werk(private_server.dsn, schema=unique_schema(request.node.name))
    try:
        app.connect()
        jobs = [app.enqueue(worker_jobs.short_sleep, 0.05) for _ in range(60)]
        worker = WorkerProcess(private_server.dsn, app.config.schema, tmp_path, concurrency=2)
        with worker_processes(worker):
            eventually(lambda: sum(app.get_job(j.id).status is JobStatus.Complete
                                   for j in jobs if j) >= 10, timeout=30)
            private_server.stop()
            # Down until the worker has failed to reconnect at least once.
            eventually(lambda: "LISTEN connection failed" in worker.output(), timeout=30,
                       message="the worker failing to reach the stopped server")
            assert worker.proc is not None and worker.proc.poll() is None
            private_server.start()
            done = wait_all_terminal(app, [j for j in jobs if j], timeout=90)
            worker.signal(signal.SIGTERM)
            assert worker.wait(30) == 0, worker.output()

        assert all(j.status is JobStatus.Complete for j in done)
        assert all(r.outcome == "complete" for j in done for r in app.get_executions(j.id)[-1:])
        assert "Traceback" not in worker.output()
    finally:
        app.close()
