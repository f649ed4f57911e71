"""Every program under ``examples/`` runs and does what its README says. Each runs as a
user would run it (a subprocess, or Flask's test client for the web app) against a fresh
database of its own, so the examples need no test-only settings."""

from __future__ import annotations

import datetime
import os
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pgwerk import JobStatus, Werk
from tests.worker_support import run_burst

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
BIN = Path(sys.executable).parent


@pytest.fixture
def fresh_dsn(pg_dsn: str) -> Iterator[str]:
    """A new, empty database (the examples use the default schema)."""
    name = f"example_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield psycopg.conninfo.make_conninfo(pg_dsn, dbname=name)
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def example_env(dsn: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PGWERK_DSN", "PYTHONPATH")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    if dsn is not None:
        env["PGWERK_DSN"] = dsn
    return env


def run_example(folder: str, dsn: str | None, timeout: float = 60) -> str:
    result = subprocess.run([sys.executable, "main.py"], cwd=EXAMPLES / folder,
                            env=example_env(dsn), capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_every_example_has_a_readme() -> None:
    folders = sorted(p for p in EXAMPLES.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert [f.name for f in folders] == ["crontab", "django_app", "flask_app", "flask_ext",
                                        "fork_pool", "quickstart"]
    for folder in folders:
        assert (folder / "README.md").read_text().startswith("# ")


# -- quickstart ------------------------------------------------------------------------------


def test_quickstart__enqueues_runs_and_prints_results(fresh_dsn: str) -> None:
    out = run_example("quickstart", fresh_dsn)
    assert "tasks.add          complete  5" in out
    assert "'Hello, world!'" in out
    assert out.count("tasks.slow_square  complete") == 4
    assert "tasks.divide       failed    ZeroDivisionError: division by zero" in out
    assert "apply: 42" in out


def test_quickstart__without_pgwerk_dsn_starts_an_embedded_postgresql() -> None:
    pytest.importorskip("pgserver")
    out = run_example("quickstart", None, timeout=120)
    assert "'Hello, world!'" in out and "apply: 42" in out


# -- fork pool ---------------------------------------------------------------------------------


def test_fork_pool__the_runaway_job_is_killed_and_the_others_complete(fresh_dsn: str) -> None:
    out = run_example("fork_pool", fresh_dsn)
    assert out.count("crunch.count_primes  complete  148933") == 3
    runaway = next(line for line in out.splitlines() if "crunch.derive_key" in line)
    assert "failed" in runaway and "JobTimeout" in runaway and "SIGKILL" in runaway


# -- crontab -------------------------------------------------------------------------------------


def crontab_command() -> str:
    """The command of the crontab's job line, as cron hands it to /bin/sh."""
    for line in (EXAMPLES / "crontab" / "crontab").read_text().splitlines():
        fields = line.split(None, 5)
        if len(fields) == 6 and not line.startswith("#") and "=" not in fields[0]:
            return fields[5].replace("\\%", "%")
    raise AssertionError("no job line in examples/crontab/crontab")


def test_crontab__the_line_run_twice_enqueues_one_job(fresh_dsn: str) -> None:
    command = crontab_command()
    assert shlex.split(command)[:2] == ["pgwerk", "enqueue"] and "--key" in command
    for _attempt in range(3):  # a run that straddles midnight (UTC) makes two keys: again
        day = datetime.datetime.now(datetime.timezone.utc).date()
        outputs = []
        for _ in range(2):
            result = subprocess.run(["/bin/sh", "-c", command], env=example_env(fresh_dsn),
                                    capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, result.stderr
            outputs.append(result.stdout.strip())
        if datetime.datetime.now(datetime.timezone.utc).date() == day:
            break
    assert outputs[0].isdigit()
    assert "already exists" in outputs[1]
    with Werk(fresh_dsn) as app:
        (job,) = app.list_jobs()
        assert (job.id, job.function, job.queue) == (int(outputs[0]),
                                                     "reports.nightly_report", "reports")
        assert job.kwargs == {"kind": "daily"}
        assert job.key == f"nightly-report:{day.isoformat()}"


def test_crontab__the_worker_of_the_readme_runs_the_job(fresh_dsn: str) -> None:
    subprocess.run(["/bin/sh", "-c", crontab_command()], env=example_env(fresh_dsn),
                   check=True, capture_output=True, timeout=60)
    result = subprocess.run([str(BIN / "pgwerk-worker"), "reports:app", "--queues", "reports",
                             "--burst"], cwd=EXAMPLES / "crontab", env=example_env(fresh_dsn),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    with Werk(fresh_dsn) as app:
        (job,) = app.list_jobs()
        assert (job.status, job.result) == (JobStatus.Complete, "daily report done")


# -- flask ----------------------------------------------------------------------------------------


@pytest.fixture
def shop(fresh_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The Flask example's module, imported as its README runs it (``shop``)."""
    pytest.importorskip("flask")
    pytest.importorskip("sqlalchemy")
    monkeypatch.setenv("PGWERK_DSN", fresh_dsn)
    monkeypatch.syspath_prepend(str(EXAMPLES / "flask_app"))
    monkeypatch.delitem(sys.modules, "shop", raising=False)
    import shop as module

    module.init_db()
    try:
        yield module
    finally:
        module.werk.close()
        module.engine.dispose()
        sys.modules.pop("shop", None)


def test_flask__an_order_and_its_job_commit_together(shop: Any) -> None:
    client = shop.app.test_client()
    response = client.post("/orders", json={"item": "book", "quantity": 2})
    assert response.status_code == 201
    order_id, job_id = response.json["order_id"], response.json["job_id"]
    job = shop.werk.get_job(job_id)
    assert (job.function, job.kwargs) == ("shop.fulfill_order", {"order_id": order_id})
    assert client.get(f"/orders/{order_id}").json["status"] == "new"
    run_burst(shop.werk)
    assert shop.werk.get_job(job_id).result == f"order {order_id} shipped"
    assert client.get(f"/orders/{order_id}").json["status"] == "shipped"


def test_flask__a_rolled_back_order_leaves_no_job(shop: Any) -> None:
    client = shop.app.test_client()
    response = client.post("/orders", json={"item": "lamp", "quantity": 5})
    assert response.status_code == 409
    assert shop.werk.list_jobs() == []
    with shop.engine.connect() as conn:
        assert conn.execute(shop.text("SELECT count(*) FROM orders")).scalar_one() == 0
        assert conn.execute(shop.text(
            "SELECT quantity FROM stock WHERE item = 'lamp'")).scalar_one() == 1


def test_flask__the_worker_command_of_the_readme_runs_the_jobs(shop: Any,
                                                             fresh_dsn: str) -> None:
    client = shop.app.test_client()
    order_id = client.post("/orders", json={"item": "book", "quantity": 1}).json["order_id"]
    result = subprocess.run([str(BIN / "pgwerk-worker"), "shop:werk", "--burst"],
                            cwd=EXAMPLES / "flask_app", env=example_env(fresh_dsn),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert client.get(f"/orders/{order_id}").json["status"] == "shipped"
