"""The pgwerk side of each measure. Every function builds a ``Werk`` in a fresh schema of
its own, does the work and drops the schema.

Throughput of a worker is taken from the database's own clock: jobs / (last
``completed_at`` - first ``started_at``), so the worker's start-up (imports, connecting,
migrations) is not counted, as it is not in the raw ceilings.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from psycopg import sql

from benchmarks._common import WorkerProcess, checkpoint, connect, percentile, schema_for

NOOP = "benchmarks.tasks.noop"
STAMP = "benchmarks.tasks.stamp"
WARMUP = 20


def _app(dsn: str, schema: str, **options: Any) -> Any:
    from pgwerk import Werk

    return Werk(dsn, schema=schema, **options).connect()


def _jobs_table(schema: str) -> sql.Composable:
    return sql.Identifier(schema, "_pgwerk_jobs")


def enqueue_single(dsn: str, count: int) -> dict[str, float]:
    with schema_for(dsn, "enqueue_single") as schema:
        app = _app(dsn, schema)
        try:
            for i in range(WARMUP):
                app.enqueue(NOOP, n=-i)
            start, cpu = time.perf_counter(), time.process_time()
            for i in range(count):
                app.enqueue(NOOP, n=i)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        finally:
            app.close()
    return {"jobs_per_s": count / elapsed, "client_cpu_us_per_job": 1e6 * cpu / count}


def enqueue_bulk(dsn: str, count: int, chunk: int) -> dict[str, float]:
    from pgwerk import EnqueueParams

    with schema_for(dsn, "enqueue_bulk") as schema:
        app = _app(dsn, schema)
        try:
            app.enqueue_many([EnqueueParams(NOOP, kwargs={"n": -i}) for i in range(WARMUP)])
            start, cpu = time.perf_counter(), time.process_time()
            for first in range(0, count, chunk):
                n = min(chunk, count - first)
                app.enqueue_many([EnqueueParams(NOOP, kwargs={"n": first + i}) for i in range(n)])
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        finally:
            app.close()
    return {"jobs_per_s": count / elapsed, "client_cpu_us_per_job": 1e6 * cpu / count}


def fill(app: Any, count: int, func: str = NOOP, chunk: int = 5000) -> None:
    """Enqueue ``count`` jobs quickly (bulk) and analyze the table, as the raw ceilings do."""
    from pgwerk import EnqueueParams

    for first in range(0, count, chunk):
        n = min(chunk, count - first)
        app.enqueue_many([EnqueueParams(func, kwargs={"n": first + i}) for i in range(n)])
    with connect(app.dsn) as conn:
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(_jobs_table(app.config.schema)))


def burn_down(dsn: str, count: int, concurrency: int, pool: str = "thread",
              prefetch: int | str | None = None, timeout: float = 600.0) -> dict[str, float]:
    """``prefetch=None``: the worker's default."""
    with schema_for(dsn, f"burn_{pool}_{concurrency}_{prefetch}") as schema:
        app = _app(dsn, schema)
        try:
            fill(app, count)
        finally:
            app.close()
        checkpoint(dsn)
        worker = WorkerProcess(dsn, schema, concurrency=concurrency, pool=pool,
                               prefetch=prefetch, burst=True)
        try:
            worker.info()
            code = worker.wait(timeout)
            usage = worker.final()
        finally:
            worker.stop()
        if code != 0:
            raise RuntimeError(f"burn-down worker exited with {code}")
        with connect(dsn) as conn:
            # Each claim and each completion batch is one transaction, and now() is the
            # transaction's start: distinct timestamps count the round trips. A claim
            # sets heartbeat_at (started_at is moved to the handler's real start).
            row = conn.execute(sql.SQL(
                "SELECT count(*) FILTER (WHERE status = 'complete'), "
                "extract(epoch FROM max(completed_at) - min(heartbeat_at)), "
                "count(DISTINCT heartbeat_at), count(DISTINCT completed_at), "
                "count(*) FILTER (WHERE status IN ('active', 'aborting')) FROM {}").format(
                _jobs_table(schema))).fetchone()
            if row is not None and row[0] < count:
                for status, n, error in conn.execute(sql.SQL(
                        "SELECT status, count(*), min(left(error, 300)) FROM {} "
                        "WHERE status <> 'complete' GROUP BY status").format(_jobs_table(schema))):
                    print(f"burn-down: {n} job(s) left {status}: {error}", file=sys.stderr)
    assert row is not None
    done, seconds = int(row[0]), float(row[1] or 0.0)
    if not done:
        raise RuntimeError(f"burn-down: none of {count} jobs complete")
    cpu = usage.get("cpu_s", float("nan")) + usage.get("children_cpu_s", 0.0)
    return {
        "jobs_per_s": done / seconds if seconds else float("nan"),
        # A burst worker that stops with jobs still queued (a bug, not a benchmark error):
        # the rate above is over the jobs it did finish.
        "left_behind": float(count - done),
        "left_active": float(row[4]),  # of those, claimed and never recorded
        "jobs_per_claim": done / row[2], "jobs_per_completion": done / row[3],
        "worker_cpu_ms_per_job": 1000 * cpu / done,
        "worker_cpu_pct": 100 * cpu / usage["wall_s"] if usage.get("wall_s") else float("nan"),
    }


def connections(dsn: str, application_name: str) -> dict[str, float]:
    """Connections a process holds, by what they do: LISTEN, the worker's heartbeat
    (``<name>:heartbeat``) or pooled."""
    with connect(dsn) as conn:
        rows = conn.execute(
            "SELECT query LIKE 'LISTEN %%' AS listen FROM pg_stat_activity "
            "WHERE application_name = %s", [application_name]).fetchall()
        beats = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            [f"{application_name}:heartbeat"]).fetchone()
    listen = sum(1 for r in rows if r[0])
    return {"pooled": float(len(rows) - listen), "listen": float(listen),
            "heartbeat": float(beats[0] if beats else 0)}


def _wait_done(dsn: str, schema: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    query = sql.SQL("SELECT count(*) FROM {} WHERE status = 'complete'").format(
        _jobs_table(schema))
    with connect(dsn) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(query).fetchone()
            if row and row[0] >= count:
                return
            time.sleep(0.1)
    raise TimeoutError(f"jobs not complete after {timeout}s")


def latency_and_footprint(dsn: str, count: int, gap: float, load: int) -> dict[str, float]:
    """An idle worker (concurrency 8, threads) in a subprocess; ``count`` jobs enqueued
    ``gap`` seconds apart; latency from just before ``enqueue`` to the handler's start.
    Footprint: connections and RSS when idle after start-up, and again after ``load``
    more jobs (so that a pool that grows under load is seen at its size)."""
    with schema_for(dsn, "latency") as schema:
        app = _app(dsn, schema)
        worker = WorkerProcess(dsn, schema, concurrency=8)
        try:
            worker.info()
            worker.wait_listening(dsn)
            time.sleep(1.0)
            fresh = connections(dsn, worker.application_name)
            fresh_rss = worker.rss_mb()
            sent: dict[int, float] = {}
            for i in range(count):
                t0 = time.time()
                job = app.enqueue(STAMP, n=i)
                assert job is not None
                sent[job.id] = t0
                time.sleep(gap)
            _wait_done(dsn, schema, count, timeout=60)
            with connect(dsn) as conn:
                rows = conn.execute(sql.SQL("SELECT id, result FROM {} WHERE id = ANY(%s)").format(
                    _jobs_table(schema)), [list(sent)]).fetchall()
            lat = [(float(result) - sent[job_id]) * 1000 for job_id, result in rows]
            fill(app, load)
            _wait_done(dsn, schema, count + load, timeout=120)
            time.sleep(2.0)
            loaded = connections(dsn, worker.application_name)
            loaded_rss = worker.rss_mb()
        finally:
            worker.stop()
            app.close()
    return {
        "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99),
        "idle_pooled": fresh["pooled"], "idle_listen": fresh["listen"], "idle_rss_mb": fresh_rss,
        "idle_heartbeat": fresh["heartbeat"],
        "loaded_pooled": loaded["pooled"], "loaded_listen": loaded["listen"],
        "loaded_rss_mb": loaded_rss,
    }
