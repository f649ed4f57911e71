"""Running real workers in tests: in a background thread of the test process, or as a
subprocess that gets real signals. Plus the ``test_events`` table handlers write to.

Every wait has a deadline; nothing sleeps and hopes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pgwerk import Job, JobStatus, Werk, Worker
from tests.helpers import eventually
from tests.worker_jobs import EVENTS_TABLE

ROOT = Path(__file__).resolve().parent.parent

#: Small intervals so that tests are fast: what each test needs on top, it passes.
FAST = {
    "poll_interval": 0.2,
    "heartbeat_interval": 0.5,
    "shutdown_timeout": 5.0,
    "timeout_grace": 0.5,
}


# -- the events table ------------------------------------------------------------------


def create_events_table(app: Werk) -> None:
    statement = sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (id bigserial PRIMARY KEY, job_id bigint, label text, "
        "pid int, thread bigint, at_unix double precision, data jsonb, "
        "at timestamptz NOT NULL DEFAULT clock_timestamp())"
    ).format(sql.Identifier(app.config.schema, EVENTS_TABLE))
    app.connect()  # creates the schema
    with psycopg.connect(app.dsn, autocommit=True) as conn:
        conn.execute(statement)


def events(app: Werk, label: str | None = None, job_id: int | None = None) -> list[dict[str, Any]]:
    """Rows of ``test_events`` in insertion order, optionally filtered."""
    statement = sql.SQL(
        "SELECT * FROM {} WHERE (%(label)s::text IS NULL OR label = %(label)s) "
        "AND (%(job)s::bigint IS NULL OR job_id = %(job)s) ORDER BY id"
    ).format(sql.Identifier(app.config.schema, EVENTS_TABLE))
    with psycopg.connect(app.dsn, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(statement, {"label": label, "job": job_id}).fetchall()


# -- waiting on jobs --------------------------------------------------------------------


def wait_status(app: Werk, job: Job | int, *statuses: JobStatus | str,
                timeout: float = 15.0) -> Job:
    """Wait until the job is in one of ``statuses``; return it."""
    job_id = job.id if isinstance(job, Job) else job
    wanted = {JobStatus(s) for s in statuses}

    def reached() -> Job | None:
        current = app.get_job(job_id)
        return current if current.status in wanted else None

    reached.__name__ = f"job {job_id} reaching {sorted(s.value for s in wanted)}"
    return eventually(reached, timeout=timeout, interval=0.02)


def wait_all_terminal(app: Werk, jobs: list[Job], timeout: float = 30.0) -> list[Job]:
    """Wait until every job ended; return them fresh, in the given order."""

    def all_done() -> list[Job] | None:
        fresh = [app.get_job(j.id) for j in jobs]
        return fresh if all(j.is_terminal for j in fresh) else None

    all_done.__name__ = f"{len(jobs)} job(s) ending"
    return eventually(all_done, timeout=timeout, interval=0.05)


def seconds_between(earlier: datetime | None, later: datetime | None) -> float:
    assert earlier is not None and later is not None
    return (later - earlier).total_seconds()


# -- a worker in a thread of the test process -----------------------------------------------


class WorkerThread:
    """``worker.run()`` in a background thread; ``stop()`` stops and joins it, and raises
    whatever ``run`` raised."""

    def __init__(self, app: Werk, **options: Any) -> None:
        self.worker = Worker(app, **{**FAST, **options})
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="test-worker", daemon=True)

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as exc:  # noqa: B036 - reported by stop()
            self.error = exc

    def start(self) -> WorkerThread:
        self.thread.start()
        app = self.worker.app
        eventually(lambda: any(w.id == self.worker.id for w in app.list_workers())
                   or self.error is not None or not self.thread.is_alive(),
                   timeout=15, message=f"worker {self.worker.id} registered")
        return self

    def join(self, timeout: float = 30.0) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"worker {self.worker.id} still running after {timeout}s"
        if self.error is not None:
            raise self.error

    def stop(self, now: bool = False, timeout: float = 30.0) -> None:
        self.worker.stop(now=now)
        self.join(timeout)


@contextmanager
def running_worker(app: Werk, **options: Any) -> Iterator[Worker]:
    """A worker running in a background thread for the duration of the block."""
    runner = WorkerThread(app, **options).start()
    failed = False
    try:
        yield runner.worker
    except BaseException:
        failed = True
        raise
    finally:
        if failed:
            try:
                runner.stop(now=True)
            except BaseException:  # noqa: B036 - the test's own failure matters more
                pass
        else:
            runner.stop()


def run_burst(app: Werk, timeout: float = 30.0, **options: Any) -> Worker:
    """Run a ``burst=True`` worker (in a thread) until it exits by itself."""
    runner = WorkerThread(app, burst=True, **options)
    runner.thread.start()
    runner.join(timeout)
    return runner.worker


# -- a worker in a subprocess -----------------------------------------------------------------

WORKER_SCRIPT = ROOT / "tests" / "acceptance" / "worker_process.py"


class WorkerProcess:
    """A worker in its own Python process (``tests/acceptance/worker_process.py``); its
    output goes to a file shown when something goes wrong."""

    def __init__(self, dsn: str, schema: str, log_dir: Path, name: str = "worker",
                 app_options: dict[str, Any] | None = None, **worker_options: Any) -> None:
        self.config = {
            "dsn": dsn,
            "schema": schema,
            "app_options": app_options or {},
            "worker_options": {**FAST, "name": name, **worker_options},
        }
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        env.pop("PGWERK_DSN", None)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(WORKER_SCRIPT), json.dumps(self.config)],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_registered(self, app: Werk, timeout: float = 20.0) -> str:
        """Wait until the worker's row exists; return its worker id."""

        def registered() -> str | None:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.output()}")
            found = [w.id for w in app.list_workers() if w.pid == self.pid]
            return found[0] if found else None

        registered.__name__ = f"worker process {self.pid} registered"
        return eventually(registered, timeout=timeout, interval=0.05)

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"worker {self.pid} still running after {timeout}s:\n{self.output()}") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@contextmanager
def worker_processes(*processes: WorkerProcess) -> Iterator[tuple[WorkerProcess, ...]]:
    """Start the processes; whatever happens, none outlives the block."""
    try:
        for process in processes:
            process.start()
        yield processes
    finally:
        for process in processes:
            process.kill()
