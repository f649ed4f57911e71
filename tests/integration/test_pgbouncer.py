"""PgBouncer mode, through a real pgbouncer in transaction mode in front of the test
PostgreSQL: enqueue, a worker that polls instead of LISTEN, apply/wait_for, the sweep,
cron failover between scheduler processes on a lease, and migrations from many processes
at once."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pgwerk import ConfigurationError, JobStatus, Werk
from pgwerk.cron import CronScheduler, run_in_thread, wait_for_leader
from pgwerk.store.notify import Poller
from pgwerk.store.statements import migrations
from tests import jobs, worker_jobs
from tests.conftest import drop_schemas, unique_schema
from tests.helpers import connect_in_child, eventually, query, table
from tests.pgbouncer_support import run_pgbouncer
from tests.worker_support import (
    WorkerProcess,
    create_events_table,
    running_worker,
    wait_all_terminal,
    wait_status,
    worker_processes,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bouncer_dsn(pg_dsn: str) -> Iterator[str]:
    """A pgbouncer in transaction mode in front of the suite's PostgreSQL."""
    with run_pgbouncer(pg_dsn) as dsn:
        yield dsn


@pytest.fixture
def make_bouncer_app(bouncer_dsn: str, pg_dsn: str,
                     request: pytest.FixtureRequest) -> Iterator[Callable[..., Werk]]:
    """Apps in PgBouncer mode that talk through pgbouncer, a schema each."""
    made: list[Werk] = []

    def make(**options: Any) -> Werk:
        options.setdefault("schema", unique_schema(request.node.name))
        options.setdefault("pgbouncer", True)
        app = Werk(bouncer_dsn, **options)
        made.append(app)
        return app

    yield make
    for app in made:
        app.close()
    drop_schemas(pg_dsn, sorted({a.config.schema for a in made}))


@pytest.fixture
def bouncer_app(make_bouncer_app: Callable[..., Werk]) -> Werk:
    return make_bouncer_app().connect()


def test_pgbouncer_mode__polls_and_never_prepares(bouncer_app: Werk) -> None:
    assert isinstance(bouncer_app._store.listener, Poller)
    assert bouncer_app._store.db.connect_kwargs()["prepare_threshold"] is None


def test_pgbouncer_mode__switched_on_by_the_environment(
        monkeypatch: pytest.MonkeyPatch, bouncer_dsn: str) -> None:
    monkeypatch.setenv("PGWERK_PGBOUNCER", "1")
    assert Werk(bouncer_dsn).config.pgbouncer is True
    assert Werk(bouncer_dsn, pgbouncer=False).config.pgbouncer is False
    monkeypatch.setenv("PGWERK_PGBOUNCER", "sometimes")
    with pytest.raises(ValueError, match="PGWERK_PGBOUNCER"):
        Werk(bouncer_dsn)


def test_enqueue__many_statements_from_many_threads_through_pgbouncer(bouncer_app: Werk) -> None:
    # psycopg prepares a statement on its 5th run; through transaction pooling the next
    # run may land on a server connection that never saw it. Many threads sharing the
    # pool's connections over pgbouncer's server connections would hit that.
    errors: list[BaseException] = []

    def enqueue_some() -> None:
        try:
            for i in range(30):
                assert bouncer_app.enqueue(jobs.add, i, 1) is not None
                bouncer_app.queue_stats()
        except BaseException as exc:  # noqa: B036 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=enqueue_some) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert bouncer_app.queue_stats()["default"]["queued"] == 120


def test_worker__completes_jobs_by_polling(bouncer_app: Werk) -> None:
    with running_worker(bouncer_app, concurrency=4, poll_interval=5.0):
        jobs_ = [bouncer_app.enqueue(worker_jobs.double, i) for i in range(20)]
        done = wait_all_terminal(bouncer_app, [j for j in jobs_ if j is not None], timeout=30)
    assert [j.status for j in done] == [JobStatus.Complete] * 20
    assert [j.result for j in done] == [2 * i for i in range(20)]


def test_apply_and_wait_for__see_the_end_within_the_poll_interval(
        make_bouncer_app: Callable[..., Werk]) -> None:
    app = make_bouncer_app(poll_interval=0.2).connect()
    with running_worker(app, concurrency=2, poll_interval=10.0):
        started = time.monotonic()
        assert app.apply(jobs.add, 2, 3, timeout=10) == 5
        # The worker's own poll interval is 10 s: only the app's polling wakes it.
        assert time.monotonic() - started < 2.0
        job = app.enqueue(jobs.echo, "x")
        assert job is not None
        assert app.wait_for(job, timeout=10).result == {"args": ["x"], "kwargs": {}}
        assert app.map(jobs.add, [{"a": 1, "b": 1}, {"a": 2, "b": 2}], timeout=10) == [2, 4]


def test_abort_job__reaches_the_running_job_at_the_next_heartbeat(bouncer_app: Werk) -> None:
    create_events_table(bouncer_app)
    with running_worker(bouncer_app, concurrency=1, heartbeat_interval=0.5):
        job = bouncer_app.enqueue(worker_jobs.busy_loop, 60.0)
        assert job is not None
        wait_status(bouncer_app, job, JobStatus.Active)
        asked = time.monotonic()
        assert bouncer_app.abort_job(job.id)
        wait_status(bouncer_app, job, JobStatus.Aborted, timeout=10)
        assert time.monotonic() - asked < 3.0


def test_worker_process__runs_jobs_through_pgbouncer(bouncer_dsn: str, bouncer_app: Werk,
                                                     tmp_path: Path) -> None:
    process = WorkerProcess(bouncer_dsn, bouncer_app.config.schema, tmp_path,
                            app_options={"pgbouncer": True, "poll_interval": 0.2},
                            concurrency=2)
    with worker_processes(process):
        process.wait_registered(bouncer_app)
        job = bouncer_app.enqueue(worker_jobs.double, 21)
        assert job is not None
        assert bouncer_app.wait_for(job, timeout=20).result == 42, process.output()
        process.signal(signal.SIGTERM)
        assert process.wait(20) == 0, process.output()


def test_sweep__its_transaction_lock_works_through_pgbouncer(
        bouncer_app: Werk, pg_dsn: str) -> None:
    assert "rescued" in bouncer_app.sweep()
    # While another transaction holds the sweep lock, a sweep through pgbouncer skips.
    from pgwerk._sweep import leader_lock_key

    with psycopg.connect(pg_dsn) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", [leader_lock_key(bouncer_app._store)])
        assert bouncer_app.sweep() == {}
    assert "rescued" in bouncer_app.sweep()


@pytest.mark.slow
def test_migrations__many_processes_at_once_through_pgbouncer(
        make_bouncer_app: Callable[..., Werk], bouncer_dsn: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_bouncer_app()  # names the schema and drops it afterwards
    monkeypatch.setenv("PGWERK_PGBOUNCER", "1")  # the children's Werk reads it
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(6)
    children = [ctx.Process(target=connect_in_child, args=(bouncer_dsn, app.config.schema,
                                                          barrier)) for _ in range(6)]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=90)
    assert [c.exitcode for c in children] == [0] * 6
    counts = query(app, "SELECT version, count(*) AS n FROM {migrations} GROUP BY 1 ORDER BY 1")
    assert counts == [{"version": v, "n": 1} for v, _n, _s in migrations()]
    assert len(query(app, "SELECT id FROM {jobs}")) == 6


# -- cron: leadership on a lease --------------------------------------------------------

LEASE_TTL = 1.0
RETRY_INTERVAL = 0.3

SCHEDULER = """
import signal, sys
from pgwerk import Werk
from pgwerk.cron import CronScheduler, run_in_thread, wait_for_leader

dsn, schema = sys.argv[1], sys.argv[2]
app = Werk(dsn, schema=schema, pgbouncer=True, lease_ttl=float(sys.argv[3]))
scheduler = CronScheduler(app, retry_interval=float(sys.argv[4]), poll_interval=0.2)
scheduler.register("tests.jobs.noop", interval=1, name="tick")
signal.signal(signal.SIGTERM, lambda *_: scheduler.stop())
scheduler.run()
"""


class Schedulers:
    def __init__(self, app: Werk, dsn: str, tmp_path: Path) -> None:
        self.app, self.dsn, self.logs = app, dsn, tmp_path
        self.script = tmp_path / "scheduler.py"
        self.script.write_text(SCHEDULER)
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(self.logs / f"scheduler{len(self.procs)}.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, str(self.script), self.dsn, self.app.config.schema,
                 str(LEASE_TTL), str(RETRY_INTERVAL)],
                env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def leader_pid(self) -> int | None:
        statement = sql.SQL("SELECT holder FROM {} WHERE name = 'cron' AND expires_at > now()")
        with psycopg.connect(self.dsn, autocommit=True, prepare_threshold=None) as conn:
            row = conn.execute(statement.format(table(self.app, "leases"))).fetchone()
        return int(row[0].split(":")[1]) if row else None

    def output(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("*.log")))

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def ticks(app: Werk) -> list[datetime]:
    rows = query(app, "SELECT meta->>'tick' AS tick FROM {jobs} ORDER BY id")
    found = [datetime.fromisoformat(r["tick"]) for r in rows]
    assert len(found) == len(set(found)), f"a tick was enqueued twice: {found}"
    return sorted(found)


@pytest.mark.slow
def test_cron__the_other_scheduler_takes_over_when_the_leader_is_killed(
        bouncer_app: Werk, bouncer_dsn: str, tmp_path: Path) -> None:
    group = Schedulers(bouncer_app, bouncer_dsn, tmp_path)
    try:
        procs = [group.start(), group.start()]
        leader = eventually(group.leader_pid, timeout=20, message="a leader")
        eventually(lambda: len(ticks(bouncer_app)) >= 2, timeout=10, message="two ticks")
        victim = next(p for p in procs if p.pid == leader)
        survivor = next(p for p in procs if p.pid != leader)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        killed_at = time.monotonic()
        eventually(lambda: group.leader_pid() == survivor.pid,
                   timeout=LEASE_TTL + RETRY_INTERVAL + 5, interval=0.02,
                   message="the survivor leads")
        took_over = time.monotonic() - killed_at
        assert took_over < LEASE_TTL + RETRY_INTERVAL + 1.5, f"takeover took {took_over:.1f}s"
        before = len(ticks(bouncer_app))
        eventually(lambda: len(ticks(bouncer_app)) >= before + 2, timeout=10,
                   message="ticks go on")
        assert survivor.poll() is None, group.output()
        found = ticks(bouncer_app)
        gaps = [(b - a).total_seconds() for a, b in zip(found, found[1:], strict=False)]
        assert all(gap == 1.0 for gap in gaps), f"missing ticks: {found}"
    finally:
        group.stop_all()
    assert survivor.returncode == 0, group.output()


def test_cron__a_lease_held_elsewhere_keeps_a_scheduler_following(bouncer_app: Werk) -> None:
    first, second = CronScheduler(bouncer_app), CronScheduler(bouncer_app)
    with psycopg.connect(bouncer_app.dsn, autocommit=True, prepare_threshold=None) as conn:
        assert first._leadership.acquire(conn)
        assert not second._leadership.acquire(conn)
        assert first._leadership.renew(conn)
        first._leadership.release(conn)
        assert second._leadership.acquire(conn)


def test_cron__a_leader_whose_lease_was_taken_steps_down_and_competes_again(
        make_bouncer_app: Callable[..., Werk], pg_dsn: str) -> None:
    app = make_bouncer_app(lease_ttl=0.9).connect()
    scheduler = CronScheduler(app, retry_interval=0.1, poll_interval=0.1)
    scheduler.register("tests.jobs.noop", interval=3600, name="hourly")
    thread = run_in_thread(scheduler)
    leases = table(app, "leases")
    try:
        assert wait_for_leader(scheduler, 10)
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("UPDATE {} SET holder = 'elsewhere:1:x', "
                                 "expires_at = now() + interval '1 hour'").format(leases))
            eventually(lambda: not scheduler.is_leader, timeout=5, message="stepped down")
            conn.execute(sql.SQL("DELETE FROM {}").format(leases))
        assert wait_for_leader(scheduler, 5)
    finally:
        scheduler.stop()
        thread.join(10)
    # Stopping gives the lease back at once.
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert conn.execute(sql.SQL("SELECT count(*) FROM {}").format(leases)).fetchone() == (0,)


@pytest.mark.parametrize("option", [{"pgbouncer": "yes"}, {"poll_interval": 0},
                                    {"poll_interval": float("inf")}, {"lease_ttl": -1}])
def test_pgbouncer_settings__bad_values_are_a_configuration_error(option: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match=next(iter(option))):
        Werk("postgresql://localhost/db", **option)


@pytest.mark.parametrize("mode", [True, False])
def test_doctor__sees_the_pooler_and_whether_pgbouncer_mode_is_on(
        make_bouncer_app: Callable[..., Werk], mode: bool) -> None:
    from pgwerk._doctor import run_checks

    app = make_bouncer_app(pgbouncer=mode).connect()
    [pooler] = [c for c in run_checks(app, "test", pool_size=3) if c.name == "pooler"]

    assert pooler.data["signs"]  # at least: connected to another port than the server's
    assert pooler.status == ("ok" if mode else "warn")
    if not mode:
        assert "pgbouncer=True" in (pooler.fix or "")
