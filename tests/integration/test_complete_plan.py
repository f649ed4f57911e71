"""Recording a batch of outcomes finds each job by primary key, however many active jobs
the worker holds and however few the planner's statistics expect."""

from __future__ import annotations

import json
import re
from typing import Any

import psycopg
from psycopg import sql

from pgwerk import Werk
from tests.helpers import table


def explain_generic(app: Werk, name: str, params: dict[str, Any]) -> str:
    names: list[str] = []

    def number(match: re.Match[bytes]) -> bytes:
        if match.group(1).decode() not in names:
            names.append(match.group(1).decode())
        return f"${names.index(match.group(1).decode()) + 1}".encode()

    text = re.sub(rb"%\((\w+)\)s", number, app._store.queries[name])
    with psycopg.connect(app.dsn, autocommit=True) as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute(b"PREPARE stmt AS " + text)
        args = sql.SQL(", ").join(sql.Literal(params[n]) for n in names)
        rows = conn.execute(sql.SQL("EXPLAIN EXECUTE stmt({})").format(args)).fetchall()
    return "\n".join(r[0] for r in rows)


def test_complete_many__finds_jobs_by_primary_key(app: Werk) -> None:
    with psycopg.connect(app.dsn, autocommit=True) as conn:
        # ANALYZE sees no active job (as it usually does), then the worker holds 2,000.
        conn.execute(sql.SQL(
            "INSERT INTO {} (function, status, payload) SELECT 'tests.jobs.noop', 'queued', '{{}}' "
            "FROM generate_series(1, 2000)").format(table(app)))
        conn.execute(sql.SQL("ANALYZE {}").format(table(app)))
        conn.execute(sql.SQL("UPDATE {} SET status = 'active', attempts = 1, worker_id = 'w'")
                     .format(table(app)))
    ids = list(range(1, 201))
    plan = explain_generic(app, "job_complete_many", {
        "batch": json.dumps([[i, 1, "complete", "null", None, 0.0, 0.0] for i in ids]),
        "worker": "w", "channel": app._store.channel})
    assert f"{app.config.prefix}_jobs_active_idx" not in plan, plan
    assert f"Index Scan using {app.config.prefix}_jobs_pkey" in plan, plan


def test_complete_many__never_reads_the_whole_table(app: Werk) -> None:
    """A backlog of 10,000 jobs, as ANALYZE saw it, of which the worker then holds 1,000:
    a batch of 40 outcomes must not read the table to join it (a plan that did cost a
    burning-down worker ~2 ms per batch, growing with the table)."""
    with psycopg.connect(app.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL(
            "INSERT INTO {} (function, status, payload) SELECT 'tests.jobs.noop', 'queued', '{{}}' "
            "FROM generate_series(1, 10000)").format(table(app)))
        conn.execute(sql.SQL("ANALYZE {}").format(table(app)))
        conn.execute(sql.SQL("UPDATE {} SET status = 'active', attempts = 1, worker_id = 'w' "
                             "WHERE id <= 1000").format(table(app)))
    plan = explain_generic(app, "job_complete_many", {
        "batch": json.dumps([[i, 1, "complete", "null", None, 0.0, 0.0, "success"]
                             for i in range(1, 41)]),
        "worker": "w", "channel": app._store.channel})
    assert f"Seq Scan on {app.config.prefix}_jobs" not in plan, plan
    assert f"Index Scan using {app.config.prefix}_jobs_pkey" in plan, plan


def test_progress_and_heartbeat__find_jobs_by_an_index_as_generic_plans(app: Werk) -> None:
    """Prepared on the pool's connections with generic plans (as the claim and the outcomes
    are): they must not read the table."""
    with psycopg.connect(app.dsn, autocommit=True) as conn:
        # A large queue; the worker's 200 jobs, active, as ANALYZE saw them.
        conn.execute(sql.SQL(
            "INSERT INTO {} (function, status, payload, attempts, worker_id) "
            "SELECT 'tests.jobs.noop', CASE WHEN i <= 200 THEN 'active' ELSE 'queued' END, "
            "'{{}}', 1, CASE WHEN i <= 200 THEN 'w' END "
            "FROM generate_series(1, 20000) AS i").format(table(app)))
        conn.execute(sql.SQL("ANALYZE {}").format(table(app)))
    progress = explain_generic(app, "job_progress_many", {
        "batch": json.dumps([[i, 1, 0.5, "half"] for i in range(1, 201)]), "worker": "w"})
    heartbeat = explain_generic(app, "job_heartbeat_many", {
        "worker": "w", "job_ids": list(range(1, 9))})
    for plan in (progress, heartbeat):
        assert f"Seq Scan on {app.config.prefix}_jobs" not in plan, plan
        assert "Index Scan" in plan, plan
