"""The claim walks the claim index and stops after a few rows, both as a custom plan and as
the generic plan that PostgreSQL may switch to once psycopg prepares the statement.

A claim no index can serve reads and sorts every queued row on every claim (0.4-0.7 s per
claim at a million queued rows); ``benchmarks/claim_plan.py`` measures that at scale, this
test only checks the plan shape, fast.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pgwerk import Werk
from tests.helpers import table

STRATEGIES = ("priority", "round_robin", "random")


def claim_index(app: Werk) -> str:
    return f"{app.config.prefix}_jobs_claim_idx"


def fill(app: Werk, queued: int = 3000, finished: int = 3000) -> None:
    """Queued jobs in two queues with a few priorities, behind a history of finished ones,
    written with SQL (fast), then ANALYZE so the planner sees them."""
    with psycopg.connect(app.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL(
            "INSERT INTO {jobs} (function, queue, status, priority, payload, completed_at) "
            "SELECT 'tests.jobs.noop', CASE WHEN i %% 4 = 0 THEN 'other' ELSE 'default' END, "
            "  CASE WHEN i <= %(finished)s THEN 'complete' ELSE 'queued' END, i %% 3, '{{}}', "
            "  CASE WHEN i <= %(finished)s THEN now() END "
            "FROM generate_series(1, %(total)s) AS i").format(jobs=table(app)),
            {"finished": finished, "total": finished + queued})
        conn.execute(sql.SQL("ANALYZE {}").format(table(app)))


def explain(app: Werk, name: str, params: dict[str, Any], generic: bool) -> Any:
    """EXPLAIN (FORMAT JSON) of a named statement with these values: a custom plan, or the
    generic plan of the statement PREPAREd with ``$n`` parameters."""
    names: list[str] = []

    def number(match: re.Match[bytes]) -> bytes:
        if match.group(1).decode() not in names:
            names.append(match.group(1).decode())
        return f"${names.index(match.group(1).decode()) + 1}".encode()

    text = re.sub(rb"%\((\w+)\)s", number, app._store.queries[name])
    with psycopg.connect(app.dsn, autocommit=True) as conn:
        mode = "force_generic_plan" if generic else "force_custom_plan"
        conn.execute(sql.SQL("SET plan_cache_mode = {}").format(sql.SQL(mode)))
        conn.execute(b"PREPARE claim AS " + text)
        args = sql.SQL(", ").join(sql.Literal(params[n]) for n in names)
        row = conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) EXECUTE claim({})").format(args)
                           ).fetchone()
    assert row is not None
    return row[0]


def nodes(plan: Any) -> Iterator[dict[str, Any]]:
    stack = [plan[0]["Plan"]]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.get("Plans", []))


def under_lock_rows(plan: Any, table: str = "jobs") -> list[dict[str, Any]]:
    """The nodes under the LockRows that lock rows of ``table`` (the jobs: how the claim
    finds the jobs it takes; a claim obeying limits also locks its queue_limits rows)."""
    found: list[dict[str, Any]] = []
    for node in nodes(plan):
        if node["Node Type"] == "LockRows":
            below = list(nodes([{"Plan": node}]))
            if any(n.get("Relation Name", "").endswith(f"_{table}") for n in below):
                found.extend(below)
    return found


def walks_claim_index(app: Werk, plan: Any) -> bool:
    """Every scan of the jobs table that finds candidates is the claim index, read in its
    order (no sort). (The group test's subplan on the groups table may be anything.)"""
    below = under_lock_rows(plan)
    scans = [n for n in below if "Scan" in n["Node Type"]
             and n.get("Relation Name") == f"{app.config.prefix}_jobs"]
    sorted_ = [n for n in below if "Sort" in n["Node Type"]]
    return bool(scans) and not sorted_ and all(
        s.get("Index Name") == claim_index(app) for s in scans)


@pytest.mark.parametrize("generic", [False, True], ids=["custom_plan", "generic_plan"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_claim_plan__candidates_come_from_the_claim_index(app: Werk, strategy: str,
                                                          generic: bool) -> None:
    fill(app)
    plan = explain(app, f"job_claim_{strategy}",
                   {"queues": ["default", "other"], "limit": 100, "worker": "w"}, generic)
    below = [(n["Node Type"], n.get("Index Name")) for n in under_lock_rows(plan)]
    assert below, f"no LockRows in the claim plan: {plan}"
    assert walks_claim_index(app, plan), (
        f"the claim finds its jobs with {below}, not by walking {claim_index(app)} in order")


@pytest.mark.parametrize("generic", [False, True], ids=["custom_plan", "generic_plan"])
def test_claim_plan__a_one_queue_claim_walks_the_claim_index_too(app: Werk,
                                                                generic: bool) -> None:
    """The claim of a worker of one queue (``job_claim_one``) finds its jobs the same way."""
    fill(app)
    plan = explain(app, "job_claim_one", {"queue": "default", "limit": 100, "worker": "w"},
                   generic)
    below = [(n["Node Type"], n.get("Index Name")) for n in under_lock_rows(plan)]
    assert below, f"no LockRows in the claim plan: {plan}"
    assert walks_claim_index(app, plan), (
        f"the claim finds its jobs with {below}, not by walking {claim_index(app)} in order")


def test_claim_plan__check_fails_when_the_index_is_gone(app: Werk) -> None:
    """The check above is not vacuous: without the index the plan no longer qualifies."""
    fill(app)
    with psycopg.connect(app.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP INDEX {}").format(
            sql.Identifier(app.config.schema, claim_index(app))))
    for generic in (False, True):
        plan = explain(app, "job_claim_priority",
                       {"queues": ["default"], "limit": 100, "worker": "w"}, generic)
        assert not walks_claim_index(app, plan)


@pytest.mark.parametrize("generic", [False, True], ids=["custom_plan", "generic_plan"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_claim_plan__a_limited_queue_is_claimed_by_walking_the_claim_index_too(
        app: Werk, strategy: str, generic: bool) -> None:
    """With limits (on the queue, and on a function in it) the claim still finds its jobs
    by walking the claim index, at scale."""
    fill(app, queued=30_000, finished=30_000)
    app.configure_queue("default", rate_limit="100000/s", concurrency=100_000)
    app.configure_queue("default", function="tests.jobs.noop", concurrency=50_000)
    with psycopg.connect(app.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("ANALYZE {}").format(table(app, "queue_limits")))
    plan = explain(app, f"job_claim_limited_{strategy}",
                   {"queues": ["default", "other"], "limit": 100, "free": 100, "worker": "w",
                    "handoff": 0.05},
                   generic)
    below = [(n["Node Type"], n.get("Index Name")) for n in under_lock_rows(plan)]
    assert below, f"no LockRows on the jobs in the claim plan: {plan}"
    assert walks_claim_index(app, plan), (
        f"the claim finds its jobs with {below}, not by walking {claim_index(app)} in order")
    limits = [(n["Node Type"], n.get("Relation Name")) for n in under_lock_rows(
        plan, "queue_limits") if "Scan" in n["Node Type"]]
    assert limits and all(name.endswith("_queue_limits") for _, name in limits), limits


def test_claim_plan__the_plain_claim_only_probes_the_limits(app: Werk) -> None:
    """A queue without limits: the limits table is read once per queue, by one scan that
    finds nothing, and nothing of it is locked."""
    fill(app)
    plan = explain(app, "job_claim_priority",
                   {"queues": ["default", "other"], "limit": 100, "worker": "w"}, False)
    touching = [n for n in nodes(plan)
                if n.get("Relation Name", "").endswith("_queue_limits")]
    assert len(touching) == 1 and "Scan" in touching[0]["Node Type"], touching
    assert not under_lock_rows(plan, "queue_limits")
