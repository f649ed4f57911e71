"""``_group`` across processes: two worker processes with eight slots each never run two
jobs of one group at the same time."""

from __future__ import annotations

import signal
from pathlib import Path

from pgwerk import JobStatus, Werk
from tests import worker_jobs
from tests.integration.test_worker_groups import overlaps
from tests.worker_support import (
    WorkerProcess,
    create_events_table,
    events,
    wait_all_terminal,
    worker_processes,
)


def test_groups__two_worker_processes_never_run_two_jobs_of_a_group_at_once(
        app: Werk, pg_dsn: str, tmp_path: Path) -> None:
    create_events_table(app)
    workers = [WorkerProcess(pg_dsn, app.config.schema, tmp_path, name=f"w{i}", concurrency=8)
               for i in range(2)]
    with worker_processes(*workers):
        for worker in workers:
            worker.wait_registered(app)
        jobs = [app.enqueue(worker_jobs.grouped_work, 0.05, _group=f"group-{i % 4}")
                for i in range(40)]
        done = wait_all_terminal(app, [j for j in jobs if j], timeout=60)
        for worker in workers:
            worker.signal(signal.SIGTERM)
        codes = [worker.wait(20) for worker in workers]

    assert codes == [0, 0], [w.output() for w in workers]
    assert all(j.status is JobStatus.Complete for j in done)
    runs = events(app, "grouped")
    assert len(runs) == 40
    assert overlaps(runs) == []
    assert {r["data"]["group"] for r in runs} == {f"group-{i}" for i in range(4)}
