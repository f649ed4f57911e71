"""Does the claim stay an index walk with a large backlog and a long history?

    python -m benchmarks.claim_plan [--queued 1000000] [--finished 5000000] [--keep]
        [--reuse] [--dsn DSN] [--src TREE] [--no-write]

Builds, with plain SQL (INSERT ... SELECT generate_series, indexes built afterwards, then
VACUUM ANALYZE), a pgwerk jobs table in a schema of its own holding ``--queued`` runnable
jobs, ``--finished`` completed ones and a few scheduled and active ones; then times the
app's real statements (``app._store.queries``) there and in two small tables:

- ``empty``: no rows at all; ``baseline``: 1,000 queued jobs and no history (the claim
  finds the same number of rows as at scale, so the two do the same work);
- the claim (``job_claim_priority``) for 1, 10 and 100 jobs, on a connection of the app's
  own pool (so pgwerk's connection settings apply), each run inside a transaction
  that is rolled back: as a custom plan (``plan_cache_mode = force_custom_plan``), as the
  generic plan (``PREPARE`` + ``force_generic_plan``: how pgwerk's pooled connections run
  it), and prepared with PostgreSQL's own choice (``prepare=True``,
  ``plan_cache_mode = auto``, after the switch point);
- the claim of a queue with limits (``job_claim_limited_priority``, a rate and a concurrency
  limit that never bind) for 100 jobs, as a custom and as a generic plan;
- ``job_complete_many`` for 100 jobs this worker holds, ``job_stage_scheduled``, and the
  sweep's statements.

Plans (``EXPLAIN (ANALYZE, BUFFERS)``) go to ``benchmarks/plans/*.txt``; the summary to the
``claim_plan`` section of ``benchmarks/RESULTS.md``. Targets: the claim walks
``_pgwerk_jobs_claim_idx`` (no sequential scan of the jobs table) in both plan modes, and
at scale takes at most 2x the baseline.

Generating 6M rows takes a few minutes and ~3 GB; ``--keep`` leaves the schema
(``bench_claim_plan_scale``) for later runs with ``--reuse``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from benchmarks._common import (
    HERE,
    drop_schema,
    facts_markdown,
    fmt,
    machine_facts,
    pgwerk_source,
    resolve_dsn,
    server_facts,
    table_markdown,
    table_text,
    use_source,
    write_section,
)
from benchmarks._plans import explain, plan_nodes

PLANS = HERE / "plans"
SCALE_SCHEMA = "bench_claim_plan_scale"
CLAIM = "job_claim_priority"
CLAIM_INDEX = "_pgwerk_jobs_claim_idx"
JOBS = "_pgwerk_jobs"
REPEATS = 15


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def jobs_table(schema: str) -> sql.Composable:
    return sql.Identifier(schema, JOBS)


@contextmanager
def pooled(app: Any) -> Iterator[psycopg.Connection[Any]]:
    """A connection from the app's own pool, so that whatever pgwerk sets on its
    connections applies, as it does when a worker claims (tuple rows, for EXPLAIN)."""
    with app._store.db.connection() as conn:
        factory = conn.row_factory
        conn.row_factory = tuple_row
        try:
            yield conn
        finally:
            conn.row_factory = factory


def make_app(dsn: str, schema: str) -> Any:
    from pgwerk import Werk

    return Werk(dsn, schema=schema).connect()


# -- data ---------------------------------------------------------------------------------------


def generate(conn: psycopg.Connection[Any], schema: str, queued: int, finished: int) -> float:
    """Fill the jobs table fast: drop its secondary indexes, insert with generate_series,
    rebuild the indexes exactly as the migration defined them, VACUUM ANALYZE."""
    started = time.monotonic()
    table = jobs_table(schema)
    indexes = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s "
        "AND indexname NOT LIKE '%%pkey'", [schema, JOBS]).fetchall()
    for name, _ in indexes:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(schema, name)))
    payload = "'{{\"args\":[],\"kwargs\":{{\"n\":' || i || '}}}}'"  # braces doubled for format
    log(f"  inserting {finished:,} finished jobs")
    conn.execute(sql.SQL(
        "INSERT INTO {t} (id, function, queue, status, priority, payload, attempts, scheduled_at, "
        "  enqueued_at, started_at, completed_at, purge_at, result, worker_id, result_ttl, "
        "  failure_ttl) "
        "SELECT i, 'benchmarks.tasks.noop', 'default', 'complete', 0, " + payload + ", 1, "
        "  now() - interval '2 hours' + i * interval '1 ms', "
        "  now() - interval '2 hours' + i * interval '1 ms', "
        "  now() - interval '2 hours' + i * interval '1 ms', "
        "  now() - interval '2 hours' + i * interval '1 ms', "
        "  now() + interval '1 day' + i * interval '1 ms', 'null', 'old-worker', 86400, 604800 "
        "FROM generate_series(1, %s) AS i").format(t=table), [finished])
    log(f"  inserting {queued:,} queued jobs (one in ten in queue 'other', one in twenty "
        f"with priority 5)")
    conn.execute(sql.SQL(
        "INSERT INTO {t} (id, function, queue, status, priority, payload, result_ttl, "
        "  failure_ttl) "
        "SELECT i, 'benchmarks.tasks.noop', CASE WHEN i %% 10 = 0 THEN 'other' ELSE 'default' END, "
        "  'queued', CASE WHEN i %% 20 = 0 THEN 5 ELSE 0 END, " + payload + ", 86400, 604800 "
        "FROM generate_series(%s, %s) AS i").format(t=table), [finished + 1, finished + queued])
    extra = finished + queued
    log("  inserting 10,000 scheduled (9,000 in the future, 1,000 due) and 50 active jobs")
    conn.execute(sql.SQL(
        "INSERT INTO {t} (id, function, queue, status, payload, scheduled_at, result_ttl, "
        "  failure_ttl) "
        "SELECT i, 'benchmarks.tasks.noop', 'default', 'scheduled', '{{}}', "
        "  CASE WHEN i %% 10 = 0 THEN now() - interval '1 minute' ELSE now() + i * interval '1 s' "
        "  END, 86400, 604800 FROM generate_series(%s, %s) AS i").format(t=table),
        [extra + 1, extra + 10_000])
    conn.execute(sql.SQL(
        "INSERT INTO {t} (id, function, queue, status, payload, attempts, started_at, "
        "  heartbeat_at, worker_id, result_ttl, failure_ttl) "
        "SELECT i, 'benchmarks.tasks.noop', 'default', 'active', '{{}}', 1, now(), now(), "
        "  'busy-worker', 86400, 604800 FROM generate_series(%s, %s) AS i").format(t=table),
        [extra + 10_001, extra + 10_050])
    conn.execute("SELECT setval(%s, %s)", [f'"{schema}"."{JOBS}_id_seq"', extra + 10_050])
    for name, definition in indexes:
        log(f"  building {name}")
        conn.execute(definition.encode())
    log("  VACUUM ANALYZE")
    conn.execute(sql.SQL("VACUUM ANALYZE {}").format(table))
    return time.monotonic() - started


def size_of(conn: psycopg.Connection[Any], schema: str) -> str:
    row = conn.execute("SELECT pg_size_pretty(pg_total_relation_size(%s))",
                       [f'"{schema}"."{JOBS}"']).fetchone()
    return str(row[0]) if row else "?"


# -- measuring ----------------------------------------------------------------------------------


def claim_params(limit: int) -> dict[str, Any]:
    return {"queues": ["default"], "limit": limit, "worker": "bench-claim-plan"}


def timed(conn: psycopg.Connection[Any], query: bytes, params: dict[str, Any],
          setup: Callable[[], None] | None = None, prepare: bool | None = None,
          repeats: int = REPEATS) -> float:
    """Median ms of the statement, each run in a transaction that is rolled back."""
    times = []
    for _ in range(repeats):
        with conn.transaction(force_rollback=True):
            if setup is not None:
                setup()
            started = time.perf_counter()
            conn.execute(query, params, prepare=prepare).fetchall()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def timed_generic(conn: psycopg.Connection[Any], query: bytes, params: dict[str, Any],
                  setup: Callable[[], None] | None = None, repeats: int = REPEATS) -> float:
    from benchmarks._plans import execute_sql, prepared

    times = []
    before = conn.execute("SHOW plan_cache_mode").fetchall()[0][0]
    conn.execute("SET plan_cache_mode = force_generic_plan")
    try:
        with prepared(conn, query) as names:
            call = execute_sql(conn, names, params).encode()
            for _ in range(repeats):
                with conn.transaction(force_rollback=True):
                    if setup is not None:
                        setup()
                    started = time.perf_counter()
                    conn.execute(call).fetchall()
                    times.append((time.perf_counter() - started) * 1000)
    finally:
        conn.execute(sql.SQL("SET plan_cache_mode = {}").format(sql.Literal(before)))
    return statistics.median(times)


def index_walk(plan_json: Any, schema_table: str = JOBS) -> tuple[bool, bool]:
    """(uses the claim index, scans the jobs table sequentially)."""
    uses = seq = False
    for node in plan_nodes(plan_json):
        if node.get("Index Name") == CLAIM_INDEX:
            uses = True
        if node.get("Node Type") == "Seq Scan" and node.get("Relation Name") == schema_table:
            seq = True
    return uses, seq


def save_plan(name: str, text: str, header: str) -> None:
    PLANS.mkdir(exist_ok=True)
    (PLANS / f"{name}.txt").write_text(f"-- {header}\n\n{text}\n")


def measure_claim(conn: psycopg.Connection[Any], app: Any, label: str,
                  limits: tuple[int, ...]) -> dict[str, Any]:
    query = app._store.queries[CLAIM]
    out: dict[str, Any] = {}
    for limit in limits:
        params = claim_params(limit)
        out[f"custom_{limit}"] = timed(conn, query, params, prepare=False)
        out[f"generic_{limit}"] = timed_generic(conn, query, params)
        # Prepared, with PostgreSQL's own choice of plan (pgwerk's connections force the
        # generic one): after five custom plans it may switch. Warm up past that.
        before = conn.execute("SHOW plan_cache_mode").fetchall()[0][0]
        conn.execute("SET plan_cache_mode = auto")
        try:
            timed(conn, query, params, prepare=True, repeats=8)
            out[f"auto_{limit}"] = timed(conn, query, params, prepare=True)
        finally:
            conn.execute(sql.SQL("SET plan_cache_mode = {}").format(sql.Literal(before)))
    for generic in (False, True):
        mode = "generic" if generic else "custom"
        params = claim_params(100)
        text, _ = explain(conn, query, params, generic=generic)
        save_plan(f"claim_{label}_{mode}", text,
                  f"{CLAIM} (limit 100), {label}, {mode} plan")
        plan_json, _ = explain(conn, query, params, generic=generic, analyze=False, json=True)
        out[f"index_{mode}"], out[f"seqscan_{mode}"] = index_walk(plan_json)
    return out


LIMITED_CLAIM = "job_claim_limited_priority"


def measure_limited(conn: psycopg.Connection[Any], app: Any, label: str) -> dict[str, Any]:
    """The claim of a queue with limits (a rate and a concurrency limit that never bind), as
    a custom and as a generic plan, limit 100: its times and whether it walks the claim
    index. The limits are removed afterwards."""
    app.configure_queue("default", rate_limit="1000000/s", concurrency=1_000_000)
    try:
        conn.execute(sql.SQL("ANALYZE {}").format(
            sql.Identifier(app.config.schema, f"{app.config.prefix}_queue_limits")))
        query = app._store.queries[LIMITED_CLAIM]
        params = {**claim_params(100), "free": 100, "handoff": 0.05}
        out: dict[str, Any] = {
            "limited_custom": timed(conn, query, params, prepare=False),
            "limited_generic": timed_generic(conn, query, params)}
        for generic in (False, True):
            mode = "generic" if generic else "custom"
            text, _ = explain(conn, query, params, generic=generic)
            save_plan(f"claim_limited_{label}_{mode}", text,
                      f"{LIMITED_CLAIM} (limit 100), {label}, {mode} plan")
            plan_json, _ = explain(conn, query, params, generic=generic, analyze=False,
                                   json=True)
            out[f"limited_index_{mode}"], out[f"limited_seqscan_{mode}"] = index_walk(plan_json)
        return out
    finally:
        app.configure_queue("default", rate_limit=None, concurrency=None)


def other_plans(conn: psycopg.Connection[Any], app: Any, label: str) -> dict[str, float]:
    """Plans and times of the statements around the claim, at this table's size."""
    worker = "bench-claim-plan"
    out: dict[str, float] = {}
    claim = app._store.queries[CLAIM]

    def hold_100() -> None:
        # The jobs a worker finishes: claimed by it in the same (rolled-back) transaction.
        conn.execute(claim, claim_params(100))

    def complete_params() -> dict[str, Any]:
        rows = conn.execute(
            sql.SQL("SELECT id, attempts FROM {} WHERE worker_id = %s AND status = 'active' "
                    "ORDER BY id").format(jobs_table(app.config.schema)), [worker]).fetchall()
        # As the completion writer sends them: one JSON array of
        # [id, attempt, status, result, error, delay, waited, kind].
        batch = json.dumps([[r[0], r[1], "complete", "null", None, 0.0, 0.0, "success"]
                            for r in rows])
        return {"batch": batch, "worker": worker, "channel": app._store.channel,
                "ids": [r[0] for r in rows]}

    with conn.transaction(force_rollback=True):
        hold_100()
        params = complete_params()
    statements: dict[str, tuple[dict[str, Any], Callable[[], None] | None]] = {
        "job_complete_many": (params, hold_100),
        "job_stage_scheduled": ({"channel": app._store.channel, "now": None}, None),
        "job_heartbeat_many": ({"worker": worker, "job_ids": params["ids"][:10]}, hold_100),
        "sweep_rescue_orphans": ({"max_active": 3600.0, "max_lost": 3,
                                  "channel": app._store.channel, "now": None}, None),
        "sweep_expire": ({"channel": app._store.channel, "now": None}, None),
        "sweep_prune": ({"limit": 10_000, "now": None}, None),
    }
    for name, (stmt_params, setup) in statements.items():
        query = app._store.queries[name]
        out[f"{name}_custom"] = timed(conn, query, stmt_params, setup=setup, prepare=False,
                                      repeats=5)
        out[f"{name}_generic"] = timed_generic(conn, query, stmt_params, setup=setup, repeats=5)
        for generic in (False, True):
            mode = "generic" if generic else "custom"
            with conn.transaction(force_rollback=True):
                if setup is not None:
                    setup()
                # explain() works in a savepoint: what setup() did is still there.
                text, _ = explain(conn, query, stmt_params, generic=generic)
            save_plan(f"{name}_{label}_{mode}", text, f"{name}, {label}, {mode} plan")
    return out


# -- the program ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.claim_plan", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn")
    parser.add_argument("--src")
    parser.add_argument("--queued", type=int, default=1_000_000)
    parser.add_argument("--finished", type=int, default=5_000_000)
    parser.add_argument("--keep", action="store_true", help=f"keep {SCALE_SCHEMA} afterwards")
    parser.add_argument("--reuse", action="store_true",
                        help=f"use {SCALE_SCHEMA} as left by --keep instead of generating it")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    use_source(args.src)
    dsn = resolve_dsn(args.dsn)
    machine, server, source = machine_facts(), server_facts(dsn), pgwerk_source()
    started = time.time()
    results: dict[str, dict[str, Any]] = {}
    small_schemas = {"empty": "bench_claim_plan_empty", "baseline": "bench_claim_plan_baseline"}
    try:
        for label, schema in small_schemas.items():
            drop_schema(dsn, schema)
            app = make_app(dsn, schema)
            try:
                if label == "baseline":
                    from benchmarks.measures import fill

                    fill(app, 1_000)
                with pooled(app) as conn:
                    log(f"{label}: measuring")
                    results[label] = measure_claim(conn, app, label, (1, 10, 100))
                    if label == "baseline":
                        results[label].update(other_plans(conn, app, label))
                        results[label].update(measure_limited(conn, app, label))
            finally:
                app.close()
        if not args.reuse:
            drop_schema(dsn, SCALE_SCHEMA)
        app = make_app(dsn, SCALE_SCHEMA)
        try:
            with pooled(app) as conn:
                present = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
                    jobs_table(SCALE_SCHEMA))).fetchone()[0]  # type: ignore[index]
                if not args.reuse or not present:
                    log(f"scale: generating {args.queued:,} queued + {args.finished:,} finished")
                    took = generate(conn, SCALE_SCHEMA, args.queued, args.finished)
                    log(f"scale: generated in {took:.0f}s")
                counts = dict(conn.execute(sql.SQL(
                    "SELECT status, count(*) FROM {} GROUP BY status").format(
                    jobs_table(SCALE_SCHEMA))).fetchall())
                size = size_of(conn, SCALE_SCHEMA)
                log(f"scale: {counts}, {size}; measuring")
                results["scale"] = measure_claim(conn, app, "scale", (1, 10, 100))
                results["scale"].update(other_plans(conn, app, "scale"))
                results["scale"].update(measure_limited(conn, app, "scale"))
        finally:
            app.close()
    finally:
        for schema in small_schemas.values():
            drop_schema(dsn, schema)
        if not args.keep:
            drop_schema(dsn, SCALE_SCHEMA)

    header = ["claim (job_claim_priority)", "empty ms", "baseline ms", "scale ms",
              "scale / baseline", "claim index, no seq scan", "target met?"]
    lines = []
    ok_all = True
    for mode in ("custom", "generic", "auto"):
        for limit in (1, 10, 100):
            key = f"{mode}_{limit}"
            e, b, s = (results[k][key] for k in ("empty", "baseline", "scale"))
            ratio = s / b if b else float("nan")
            # The claim index everywhere; no sequential scan of the jobs table at scale (in
            # a 1,000-row table a hash join over a sequential scan is a fine plan).
            walks = all(results[k][f"index_{m}"] for k in ("baseline", "scale")
                        for m in ("custom", "generic")) and not any(
                results["scale"][f"seqscan_{m}"] for m in ("custom", "generic"))
            ok = ratio <= 2.0 and walks
            ok_all &= ok
            lines.append([f"{mode} plan, limit {limit}", fmt(e, 2), fmt(b, 2), fmt(s, 2),
                          f"{ratio:.2f}x", "yes" if walks else "NO", "yes" if ok else "NO"])
    limited_header = [f"limited claim ({LIMITED_CLAIM}), limit 100", "baseline ms", "scale ms",
                      "scale / baseline", "claim index, no seq scan", "target met?"]
    limited_lines = []
    for mode in ("custom", "generic"):
        b, s = (results[k][f"limited_{mode}"] for k in ("baseline", "scale"))
        ratio = s / b if b else float("nan")
        walks = all(results[k][f"limited_index_{mode}"] for k in ("baseline", "scale")) \
            and not results["scale"][f"limited_seqscan_{mode}"]
        ok = ratio <= 2.0 and walks
        ok_all &= ok
        limited_lines.append([f"{mode} plan", fmt(b, 2), fmt(s, 2), f"{ratio:.2f}x",
                              "yes" if walks else "NO", "yes" if ok else "NO"])
    other_header = ["statement (100 held jobs where relevant)", "baseline custom ms",
                    "baseline generic ms", "scale custom ms", "scale generic ms"]
    other_lines = []
    for name in ("job_complete_many", "job_stage_scheduled", "job_heartbeat_many",
                 "sweep_rescue_orphans", "sweep_expire", "sweep_prune"):
        other_lines.append([name] + [fmt(results[label][f"{name}_{mode}"], 2)
                                     for label in ("baseline", "scale")
                                     for mode in ("custom", "generic")])
    print(table_text(header, lines))
    print()
    print(table_text(limited_header, limited_lines))
    print()
    print(table_text(other_header, other_lines))
    print(f"\nplans in {PLANS}")
    if args.no_write:
        return
    body = (
        f"## Claim plan at scale (`python -m benchmarks.claim_plan`)\n\n"
        f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(started))}. Scale table: "
        f"{counts.get('queued', 0):,} queued, {counts.get('complete', 0):,} complete, "
        f"{counts.get('scheduled', 0):,} scheduled, {counts.get('active', 0):,} active "
        f"({size} with indexes); baseline: 1,000 queued; empty: no rows. Each time is the "
        f"median of {REPEATS} runs, each inside a transaction that is rolled back. \"generic\" "
        f"is how pgwerk runs it (prepared on its pooled connections, which force generic "
        f"plans); \"auto\" is PostgreSQL's own choice (prepared, `plan_cache_mode=auto`). "
        f"Plans: "
        f"`benchmarks/plans/`. Claim target (index walk in both plan modes, scale <= 2x "
        f"baseline): **{'met' if ok_all else 'NOT met'}**.\n\n"
        + facts_markdown(machine, server, source) + "\n"
        + table_markdown(header, lines) + "\n\n"
        + table_markdown(limited_header, limited_lines) + "\n\n"
        + table_markdown(other_header, other_lines) + "\n"
    )
    write_section(HERE / "RESULTS.md", "claim_plan", body)
    log("wrote the claim_plan section of RESULTS.md")


if __name__ == "__main__":
    main()
