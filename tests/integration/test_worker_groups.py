"""``_group``: at most one job of a group is active at a time, however many slots and
workers there are; jobs of other groups and ungrouped jobs run alongside."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from pgwerk import JobStatus, Werk
from tests import worker_jobs
from tests.conftest import MakeApp
from tests.worker_support import (
    WorkerThread,
    create_events_table,
    events,
    wait_all_terminal,
)


def overlaps(runs: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """Pairs of jobs of one group whose [start, end] intervals overlap."""
    found = []
    by_group: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_group.setdefault(run["data"]["group"], []).append(run)
    for group_runs in by_group.values():
        group_runs.sort(key=lambda r: r["data"]["start"])
        for a, b in pairwise(group_runs):
            if b["data"]["start"] < a["data"]["end"]:
                found.append((a["job_id"], b["job_id"]))
    return found


def test_worker__never_runs_two_jobs_of_a_group_at_once_across_workers(
        app: Werk, make_app: MakeApp) -> None:
    create_events_table(app)
    jobs = [app.enqueue(worker_jobs.grouped_work, 0.05, _group=f"g{i % 3}") for i in range(24)]
    free = [app.enqueue(worker_jobs.short_sleep, 0.3) for _ in range(4)]
    runners = [WorkerThread(make_app(schema=app.config.schema), concurrency=8).start()
               for _ in range(2)]
    try:
        done = wait_all_terminal(app, [j for j in jobs + free if j], timeout=30)
    finally:
        for runner in runners:
            runner.stop()

    assert all(j.status is JobStatus.Complete for j in done)
    runs = events(app, "grouped")
    assert len(runs) == 24
    assert overlaps(runs) == []
    # Different groups did run side by side (the limit is per group, not global).
    spans = sorted((r["data"]["start"], r["data"]["end"]) for r in runs)
    assert any(b[0] < a[1] for a, b in pairwise(spans))


def test_worker__group_runs_in_priority_then_enqueue_order(app: Werk) -> None:
    create_events_table(app)
    jobs = [app.enqueue(worker_jobs.grouped_work, 0.01, _group="only", _priority=p)
            for p in (0, 0, 5, 0)]

    runner = WorkerThread(app, concurrency=4).start()
    try:
        wait_all_terminal(app, [j for j in jobs if j], timeout=15)
    finally:
        runner.stop()

    order = [r["job_id"] for r in sorted(events(app, "grouped"), key=lambda r: r["data"]["start"])]
    ids = [j.id for j in jobs if j]
    assert order == [ids[2], ids[0], ids[1], ids[3]]
