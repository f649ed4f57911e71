"""Cron schedulers in separate processes: one leader at a time, every tick enqueued
exactly once, and a new leader within the retry interval when the leader is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from pgwerk import Werk
from pgwerk.cron import CronScheduler
from tests.helpers import eventually, query

ROOT = Path(__file__).resolve().parents[2]
RETRY_INTERVAL = 0.5

SCRIPT = """
import os, signal, sys
from pgwerk import Werk
from pgwerk.cron import CronScheduler

dsn, schema = sys.argv[1], sys.argv[2]
app = Werk(dsn, schema=schema, application_name=f"crontest-{os.getpid()}")
scheduler = CronScheduler(app, retry_interval=float(sys.argv[3]), poll_interval=0.2)
scheduler.register("tests.jobs.noop", interval=1, name="tick")
signal.signal(signal.SIGTERM, lambda *_: scheduler.stop())
scheduler.run()
"""


class Schedulers:
    """Scheduler processes of one test; none outlives it."""

    def __init__(self, app: Werk, tmp_path: Path) -> None:
        self.app = app
        self.script = tmp_path / "scheduler.py"
        self.script.write_text(SCRIPT)
        self.logs = tmp_path
        self.procs: list[subprocess.Popen[bytes]] = []
        self.lock_key = CronScheduler(app).lock_key

    def start(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        log = open(self.logs / f"scheduler{len(self.procs)}.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, str(self.script), self.app.dsn, self.app.config.schema,
             str(RETRY_INTERVAL)], env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append(proc)
        return proc

    def leader_pid(self) -> int | None:
        rows = query(self.app, "SELECT a.application_name FROM pg_locks l "
                               "JOIN pg_stat_activity a ON a.pid = l.pid "
                               "WHERE l.locktype = 'advisory' AND l.objid = %s AND l.granted",
                     [self.lock_key])
        names = [r["application_name"] for r in rows
                 if r["application_name"].startswith("crontest-")]
        return int(names[0].split("-")[1]) if names else None

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


@pytest.fixture
def schedulers(app: Werk, tmp_path: Path) -> Iterator[Schedulers]:
    group = Schedulers(app, tmp_path)
    try:
        yield group
    finally:
        group.stop_all()


def ticks(app: Werk) -> list[datetime]:
    rows = query(app, "SELECT key, meta->>'tick' AS tick FROM {jobs} ORDER BY id")
    for row in rows:
        assert row["key"] == f"cron:tick:{row['tick']}"
    found = [datetime.fromisoformat(r["tick"]) for r in rows]
    assert len(found) == len(set(found)), f"a tick was enqueued twice: {found}"
    return sorted(found)


def assert_consecutive(found: list[datetime]) -> None:
    gaps = [(b - a).total_seconds() for a, b in zip(found, found[1:], strict=False)]
    assert all(gap == 1.0 for gap in gaps), f"missing ticks: {[t.isoformat() for t in found]}"


def test_two_processes__each_tick_is_enqueued_exactly_once(app: Werk,
                                                            schedulers: Schedulers) -> None:
    app.connect()
    schedulers.start()
    schedulers.start()
    eventually(lambda: len(ticks(app)) >= 4, timeout=20, message="four ticks enqueued")
    assert schedulers.leader_pid() in {p.pid for p in schedulers.procs}
    schedulers.stop_all()
    assert [p.returncode for p in schedulers.procs] == [0, 0], schedulers.output()
    assert_consecutive(ticks(app))


def test_sigkill_of_the_leader__the_other_takes_over_without_losing_a_tick(
        app: Werk, schedulers: Schedulers) -> None:
    app.connect()
    procs = [schedulers.start(), schedulers.start()]
    leader = eventually(schedulers.leader_pid, timeout=20, message="a leader")
    eventually(lambda: len(ticks(app)) >= 2, timeout=10, message="two ticks")
    victim = next(p for p in procs if p.pid == leader)
    survivor = next(p for p in procs if p.pid != leader)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    killed_at = time.monotonic()
    eventually(lambda: schedulers.leader_pid() == survivor.pid, timeout=RETRY_INTERVAL + 5,
               interval=0.02, message="the survivor leads")
    took_over = time.monotonic() - killed_at
    assert took_over < RETRY_INTERVAL + 2, f"takeover took {took_over:.1f}s"
    before = len(ticks(app))
    eventually(lambda: len(ticks(app)) >= before + 2, timeout=10, message="ticks go on")
    assert survivor.poll() is None, schedulers.output()
    assert_consecutive(ticks(app))
