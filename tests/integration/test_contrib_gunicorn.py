"""A real gunicorn with ``--preload``, and a real uWSGI with its default
``lazy-apps = false``, each with two workers: the ``Werk`` is created at import, in the
master, before the fork (under gunicorn even connected there). Each worker must open its
own connections: every request's job exists, and a pgwerk worker completes them all.

uWSGI builds from source when pip installs it (a few minutes), so it is not in the
``test`` extra: its case is skipped where it is missing, except where
``PGWERK_REQUIRE_UWSGI=1`` (CI installs it and sets that)."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pgwerk import JobStatus, Werk
from tests.helpers import eventually
from tests.worker_support import run_burst, wait_all_terminal

pytest.importorskip("gunicorn")

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def server_command(server: str, port: int, app_dir: Path) -> list[str]:
    """Two forked workers serving ``enqueue_app:application``, the app loaded first."""
    if server == "gunicorn":
        return [sys.executable, "-m", "gunicorn", "--preload", "--workers", "2",
                "--worker-class", "sync", "--bind", f"127.0.0.1:{port}",
                "--graceful-timeout", "5", "enqueue_app:application"]
    uwsgi = BIN / "uwsgi"
    if not uwsgi.exists():
        if os.environ.get("PGWERK_REQUIRE_UWSGI") == "1":
            pytest.fail(f"uWSGI is required here and {uwsgi} is missing", pytrace=False)
        pytest.skip("uWSGI is not installed (pip install uwsgi)")
    # lazy-apps is off by default: the app (and its Werk) is loaded in the master, then
    # the workers are forked. Threads on: psycopg's pool runs its own.
    return [str(uwsgi), "--master", "--processes", "2", "--http-socket",
            f"127.0.0.1:{port}", "--module", "enqueue_app:application", "--pythonpath",
            str(app_dir), "--enable-threads", "--die-on-term", "--need-app",
            "--disable-logging"]

WSGI_APP = '''
"""Enqueues one job per request; the Werk is built and connected before gunicorn forks."""
import os
import time

from pgwerk import Werk

werk = Werk(os.environ["PGWERK_DSN"], schema=os.environ["PGWERK_SCHEMA"])
if os.environ.get("CONNECT_AT_IMPORT") == "1":
    werk.connect()  # open in the master: a forked worker must not talk on these sockets


def record(n, served_by):
    return {"n": n, "served_by": served_by}


def application(environ, start_response):
    n = int(environ.get("QUERY_STRING") or 0)
    job = werk.enqueue(record, n=n, served_by=os.getpid())
    # Hold the (sync) worker a moment: concurrent requests then reach both workers.
    time.sleep(0.2)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{job.id} {os.getpid()}".encode()]
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(port: int, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read().decode()
        assert response.status == 200, body
        return body
    finally:
        conn.close()


@pytest.mark.slow
@pytest.mark.parametrize("server", ["gunicorn", "uwsgi"])
def test_prefork_server__preloaded_werk_enqueues_from_two_forked_workers(
        app: Werk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: str) -> None:
    (tmp_path / "enqueue_app.py").write_text(textwrap.dedent(WSGI_APP))
    port = free_port()
    env = dict(os.environ)
    env.update({
        "PGWERK_DSN": app.dsn,
        "PGWERK_SCHEMA": app.config.schema,
        # gunicorn runs Python's fork handlers: even a Werk connected in the master is
        # fine. uWSGI forks without them (a worker forked while one of the pool's threads
        # holds the interpreter lock hangs): there the Werk is built at import and opens
        # on first use, as the deploying guide says.
        "CONNECT_AT_IMPORT": "1" if server == "gunicorn" else "0",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), str(ROOT),
                                                    env.get("PYTHONPATH")])),
    })
    command = server_command(server, port, tmp_path)
    log_path = tmp_path / f"{server}.log"
    log = log_path.open("w")
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    try:
        def serving() -> bool:
            assert process.poll() is None, log_path.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                return False
            return True

        eventually(serving, timeout=30, message=f"{server} accepting connections")
        with ThreadPoolExecutor(max_workers=4) as pool:
            bodies = list(pool.map(lambda n: get(port, f"/?{n}"), range(16)))
    finally:
        process.send_signal(signal.SIGTERM if server == "gunicorn" else signal.SIGINT)
        process.wait(timeout=30)
        log.close()
    assert process.returncode in (0, 30), log_path.read_text()  # uWSGI's stop: 30

    job_ids = [int(body.split()[0]) for body in bodies]
    served_by = {int(body.split()[1]) for body in bodies}
    assert len(served_by) == 2, f"requests served by {served_by}, expected both workers"
    assert len(set(job_ids)) == 16
    jobs = [app.get_job(job_id) for job_id in job_ids]  # every job row exists
    assert sorted(j.kwargs["n"] for j in jobs) == list(range(16))
    assert {j.kwargs["served_by"] for j in jobs} == served_by

    # The pgwerk worker imports the handler's module, as a worker process would.
    monkeypatch.setenv("PGWERK_DSN", app.dsn)
    monkeypatch.setenv("PGWERK_SCHEMA", app.config.schema)
    monkeypatch.syspath_prepend(str(tmp_path))
    run_burst(app)
    done = wait_all_terminal(app, jobs)
    assert {j.status for j in done} == {JobStatus.Complete}
    assert sorted(j.result["n"] for j in done) == list(range(16))
    assert "Traceback" not in log_path.read_text()
