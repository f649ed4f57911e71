"""Chaos: 3,000 jobs through three worker processes while workers are SIGKILLed every couple
of seconds (and replaced), every worker connection is killed once with
``pg_terminate_backend``, and the PostgreSQL server is restarted once.

The test runs its own embedded PostgreSQL (whatever ``PGWERK_TEST_DSN`` says), since it
restarts it. Each job records its run (job id, worker pid, attempt, start time) in a table
of its own. At the end every job is ``complete``, none is active, and a job ran more than
once only where a worker running it was killed: apart from the run of the worker that
recorded its completion, every run of a job was by a worker that was SIGKILLed.
"""

from __future__ import annotations

import collections
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgwerk import EnqueueParams, Werk
from tests.chaos_support import OwnServer, create_runs_table, runs
from tests.conftest import unique_schema
from tests.helpers import query
from tests.worker_support import WorkerProcess

JOBS = 3000
WORKERS = 3
KILL_EVERY = 2.0  # seconds
TERMINATE_AT = 5.0  # seconds into the run: kill every worker connection
RESTART_AT = 10.0  # seconds into the run: restart PostgreSQL
DOWN_FOR = 1.0  # seconds the server stays down
DRAIN_DEADLINE = 150.0
APP_NAME = "pgwerk-chaos-worker"
#: Short intervals, so that the jobs of a killed worker are rescued within a second or two.
WORKER_OPTIONS = {"concurrency": 4, "heartbeat_interval": 0.5, "sweep_interval": 0.5,
                  "poll_interval": 0.2}


@pytest.fixture
def server() -> Iterator[OwnServer]:
    own = OwnServer()
    try:
        yield own
    finally:
        own.close()


class Crew:
    """The worker processes: started, SIGKILLed and replaced; remembers whom it killed."""

    def __init__(self, server: OwnServer, schema: str, log_dir: Path) -> None:
        self.server = server
        self.schema = schema
        self.log_dir = log_dir
        self.started = 0
        self.alive: list[WorkerProcess] = []
        self.killed: set[int] = set()

    def start_one(self) -> None:
        self.started += 1
        process = WorkerProcess(self.server.dsn, self.schema, self.log_dir,
                                name=f"chaos{self.started}",
                                app_options={"application_name": APP_NAME},
                                **WORKER_OPTIONS)
        self.alive.append(process.start())

    def kill_one(self, rng: random.Random) -> None:
        victim = self.alive.pop(rng.randrange(len(self.alive)))
        self.killed.add(victim.pid)
        victim.kill()  # SIGKILL, and reaped
        self.start_one()

    def stop_all(self) -> None:
        for process in self.alive:
            process.signal(signal.SIGTERM)
        for process in self.alive:
            try:
                process.wait(30)
            finally:
                process.kill()

    def kill_all(self) -> None:
        for process in self.alive:
            process.kill()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_chaos__every_job_completes_and_reruns_only_follow_kills(
        server: OwnServer, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    app = Werk(server.dsn, schema=unique_schema(request.node.name))
    crew = Crew(server, app.config.schema, tmp_path)
    rng = random.Random(20261129)
    try:
        create_runs_table(app)
        for first in range(0, JOBS, 500):
            app.enqueue_many([
                EnqueueParams(func="tests.chaos_support.record_run",
                              kwargs={"seconds": rng.uniform(0.04, 0.12)})
                for _ in range(first, min(first + 500, JOBS))])

        began = time.monotonic()
        for _ in range(WORKERS):
            crew.start_one()
        terminated = restarted = 0
        next_kill = began + KILL_EVERY
        while True:
            now = time.monotonic()
            left = query(app, "SELECT count(*) AS n FROM {jobs} WHERE status <> 'complete'")
            if left[0]["n"] == 0:
                break
            assert now - began < DRAIN_DEADLINE, (
                f"{left[0]['n']} job(s) not complete after {DRAIN_DEADLINE}s: "
                f"{query(app, 'SELECT status, count(*) FROM {jobs} GROUP BY status')}")
            if not terminated and now - began >= TERMINATE_AT:
                terminated = server.terminate_backends(APP_NAME)
                assert terminated > 0
            if not restarted and now - began >= RESTART_AT:
                server.restart(down_for=DOWN_FOR)
                restarted = 1
                app.close()  # the test's own pool is gone with the server, too
            if now >= next_kill:
                crew.kill_one(rng)
                next_kill = now + KILL_EVERY
            time.sleep(0.1)
        drained = time.monotonic() - began
        crew.stop_all()
    finally:
        crew.kill_all()
        outputs = {p.pid: p.output() for p in crew.alive}
        app.close()

    check = Werk(server.dsn, schema=crew.schema)
    try:
        statuses = {r["status"]: r["n"] for r in query(
            check, "SELECT status, count(*) AS n FROM {jobs} GROUP BY status")}
        assert statuses == {"complete": JOBS}
        by_job: dict[int, list[int]] = collections.defaultdict(list)
        for job_id, pid, _attempt in runs(check):
            by_job[job_id].append(pid)
        finishers = {r["id"]: int(r["worker_id"].split(".")[-2]) for r in query(
            check, "SELECT id, worker_id FROM {jobs}")}
        assert set(by_job) == set(finishers), "a complete job never ran"
        unexplained = {}
        for job_id, pids in by_job.items():
            others = list(pids)
            if finishers[job_id] in others:
                others.remove(finishers[job_id])  # the run whose outcome was recorded
            if any(pid not in crew.killed for pid in others):
                unexplained[job_id] = (pids, finishers[job_id])
        reruns = {j: p for j, p in by_job.items() if len(p) > 1}
        print(f"\nchaos: {JOBS} jobs, {WORKERS} workers, {len(crew.killed)} SIGKILLs "
              f"({crew.started} worker processes in all), {terminated} connections "
              f"terminated, {restarted} PostgreSQL restart, {len(reruns)} job(s) re-run "
              f"({sum(len(p) - 1 for p in reruns.values())} extra runs), "
              f"drained in {drained:.1f}s")
        assert not unexplained, (
            f"job(s) ran again without a kill to explain it (pids, finisher): "
            f"{dict(list(unexplained.items())[:10])}; killed: {sorted(crew.killed)}")
        assert not any("Traceback" in text for text in outputs.values()), outputs
    finally:
        check.close()

