"""``pgwerk-worker`` as users run it: a real process from the installed entry point, real
signals, its log lines on stderr."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgwerk import JobStatus, Werk
from tests.helpers import eventually, query

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

APP_MODULE = """
import logging
import time

from pgwerk import Werk
from pgwerk.cron import CronScheduler

app = Werk({dsn!r}, schema={schema!r})
scheduler = CronScheduler(app, retry_interval=0.5, poll_interval=0.2)
scheduler.register("tests.jobs.noop", interval=1, name="every-second")


def chatty(n):
    logging.getLogger("myapp").warning("working on %s", n)
    return n


def slow(seconds):
    time.sleep(seconds)
    return "done"
"""


class WorkerCli:
    """One ``pgwerk-worker`` process; stderr collected in a file."""

    def __init__(self, cwd: Path, module: str) -> None:
        self.cwd, self.module = cwd, module
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = cwd / f"worker-{uuid.uuid4().hex[:6]}.log"

    def start(self, *args: str, app: str | None = None) -> WorkerCli:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("PGWERK_DSN", None)
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(
                [str(BIN / "pgwerk-worker"), app or f"{self.module}:app", "--poll-interval",
                 "0.2", *args], cwd=self.cwd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        return self

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float = 30) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout}s:\n{self.stderr()}") from None

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def module(app: Werk, tmp_path: Path) -> str:
    name = f"workerapp_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(APP_MODULE.format(dsn=app.dsn,
                                                           schema=app.config.schema))
    return name


@pytest.fixture
def worker_cli(tmp_path: Path, module: str) -> Iterator[WorkerCli]:
    runner = WorkerCli(tmp_path, module)
    yield runner
    runner.kill()


def test_burst__runs_the_queued_jobs_and_exits_0(app: Werk, worker_cli: WorkerCli) -> None:
    jobs = [app.enqueue("tests.jobs.add", i, i, _queue=q) for i, q in enumerate(["a", "b"])]
    app.enqueue("tests.jobs.noop", _queue="other")
    assert worker_cli.start("-q", "a,b", "-c", "2", "--burst").wait() == 0, worker_cli.stderr()
    assert [app.get_job(j.id).result for j in jobs if j] == [0, 2]
    assert [j.status for j in app.list_jobs(queue="other")] == [JobStatus.Queued]


@pytest.mark.parametrize("spec, message", [
    ("no_such_module_xyz:app", "no module named 'no_such_module_xyz'"),
    ("{module}:nothing", "has no attribute 'nothing'"),
    ("{module}:chatty", "is a function, not a pgwerk Werk"),
    ("noattribute", "must be module:attribute"),
])
def test_bad_app__one_line_on_stderr_exit_2(worker_cli: WorkerCli, module: str, spec: str,
                                            message: str) -> None:
    worker_cli.start(app=spec.format(module=module))
    assert worker_cli.wait() == 2
    err = worker_cli.stderr()
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_bad_option__usage_error(worker_cli: WorkerCli) -> None:
    assert worker_cli.start("--pool", "gevent").wait() == 2
    assert "'gevent' is not one of" in worker_cli.stderr()


def test_sigterm__finishes_the_running_job_and_exits_0(app: Werk, worker_cli: WorkerCli,
                                                       module: str) -> None:
    job = app.enqueue(f"{module}.slow", 1.0)
    assert job is not None
    worker_cli.start()
    eventually(lambda: app.get_job(job.id).status is JobStatus.Active, timeout=20)
    assert worker_cli.terminate() == 0, worker_cli.stderr()
    assert app.get_job(job.id).status is JobStatus.Complete
    assert app.list_workers() == []


def test_scheduler__the_worker_runs_the_apps_cron_schedules(app: Werk,
                                                            worker_cli: WorkerCli) -> None:
    worker_cli.start("--scheduler")

    def cron_jobs_done() -> bool:
        rows = query(app, "SELECT key FROM {jobs} WHERE status = 'complete' "
                          "AND key LIKE 'cron:every-second:%%'")
        return len(rows) >= 2

    eventually(cron_jobs_done, timeout=20, message="two cron ticks run by the worker")
    assert worker_cli.terminate() == 0, worker_cli.stderr()
    assert "cron scheduler: leader now" in worker_cli.stderr()


def test_json_logs__one_object_per_line_and_job_lines_carry_the_job(
        app: Werk, worker_cli: WorkerCli, module: str) -> None:
    job = app.enqueue(f"{module}.chatty", 7, _queue="q")
    assert job is not None
    worker_cli.start("-q", "q", "--burst", "--log-format", "json", "--log-level", "info")
    assert worker_cli.wait() == 0, worker_cli.stderr()
    lines = [json.loads(line) for line in worker_cli.stderr().splitlines()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    handler_line = next(line for line in lines if line["logger"] == "myapp")
    assert handler_line["message"] == "working on 7"
    assert (handler_line["job_id"], handler_line["function"], handler_line["queue"]) == (
        job.id, f"{module}.chatty", "q")
    about_the_job = [line for line in lines
                     if re.search(rf"\bjob {job.id}\b", line["message"])]
    assert about_the_job
    assert all(line.get("job_id") == job.id for line in about_the_job), about_the_job


def test_text_logs__job_lines_are_tagged_with_the_job(app: Werk, worker_cli: WorkerCli,
                                                      module: str) -> None:
    job = app.enqueue(f"{module}.chatty", 8)
    assert job is not None
    assert worker_cli.start("--burst").wait() == 0
    line = next(x for x in worker_cli.stderr().splitlines() if "working on 8" in x)
    assert f"[job={job.id} {module}.chatty@default]" in line


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_metrics_port__serves_prometheus_metrics(app: Werk, worker_cli: WorkerCli) -> None:
    pytest.importorskip("prometheus_client")
    app.enqueue("tests.jobs.noop", _queue="elsewhere")
    port = _free_port()
    worker_cli.start("--metrics-port", str(port))

    def scrape() -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                text = str(resp.read().decode())
        except OSError as exc:
            raise AssertionError(str(exc)) from None
        # The queue series come once the worker is registered (the only one: it exports
        # them), and the worker says it is up once its loop runs: wait for both.
        return text if "pgwerk_queue_jobs{" in text and "pgwerk_worker_up 1.0" in text else ""

    text = eventually(scrape, timeout=20, message="metrics served with the queue series")
    assert 'pgwerk_queue_jobs{queue="elsewhere",status="queued"} 1.0' in text
    assert 'pgwerk_queue_jobs{queue="default",status="failed"} 0.0' in text
    assert "pgwerk_worker_up 1.0" in text and "process_resident_memory_bytes" in text
    assert worker_cli.terminate() == 0


def test_unreachable_database__one_line_exit_1(tmp_path: Path) -> None:
    name = f"downapp_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        "from pgwerk import Werk\n"
        "app = Werk('postgresql://postgres@127.0.0.1:1/x', connect_attempts=2)\n")
    runner = WorkerCli(tmp_path, name).start()
    try:
        assert runner.wait() == 1
    finally:
        runner.kill()
    last = runner.stderr().strip().splitlines()[-1]
    assert last.startswith("Error: cannot reach PostgreSQL"), runner.stderr()
    assert "Traceback" not in runner.stderr()


def test_cron_run__enqueues_the_apps_ticks_until_sigterm(app: Werk, tmp_path: Path,
                                                         module: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = tmp_path / "cron.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([str(BIN / "pgwerk"), "cron", "run", f"{module}:app",
                                 "--retry-interval", "0.5"], cwd=tmp_path, env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        eventually(lambda: len(query(app, "SELECT id FROM {jobs}")) >= 2, timeout=20,
                   message="two ticks enqueued")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    keys = [r["key"] for r in query(app, "SELECT key FROM {jobs} ORDER BY id")]
    assert all(k.startswith("cron:every-second:") for k in keys)


def test_log_tracebacks__a_failed_attempt_logs_its_traceback_without_pgwerk_frames(
        app: Werk, worker_cli: WorkerCli) -> None:
    job = app.enqueue("tests.jobs.fail", "no such user")
    assert job is not None
    worker_cli.start("--burst", "--log-format", "json", "--log-level", "debug",
                     "--log-tracebacks")
    assert worker_cli.wait() == 0, worker_cli.stderr()
    lines = [json.loads(line) for line in worker_cli.stderr().splitlines()]
    assert any(line["message"].startswith("claimed 1 job(s)") for line in lines)
    started = [line for line in lines if line["message"] == f"job {job.id} tests.jobs.fail started"]
    assert started and started[0]["level"] == "DEBUG" and started[0]["attempt"] == 1
    end = next(line for line in lines if "traceback" in line)
    assert end["job_id"] == job.id and end["attempt"] == 1 and end["duration"] >= 0
    assert end["worker_id"].count(".") >= 2
    assert end["traceback"].endswith("ValueError: no such user")
    assert "tests/jobs.py" in end["traceback"] and "pgwerk/_execute.py" not in end["traceback"]
