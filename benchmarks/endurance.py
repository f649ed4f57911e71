"""Sustained load: does throughput hold and does the jobs table stay small?

    python -m benchmarks.endurance [--minutes 10] [--rate JOBS_PER_S] [--result-ttl 30]
        [--sweep-interval 5] [--interval SECS] [--dsn DSN] [--src TREE] [--no-write]

One worker subprocess (threads, concurrency 8, sweeping every ``--sweep-interval`` s) in a
fresh schema; this process enqueues no-op jobs at a steady rate (``enqueue_many`` every
100 ms) of half the burn-down rate it measures first (or ``--rate``). Jobs are enqueued by
a ``Werk`` with a short ``result_ttl``, so the worker's sweep prunes them soon after they
finish. Every interval (60 s; 15 s for runs under 3 minutes) it reports jobs enqueued and
processed per second, backlog, time from enqueue to start (p50/p99 of the jobs finished in
the last 10 s), live and dead tuples of the jobs table (``pg_stat_user_tables``), its total
size with indexes and TOAST (``pg_total_relation_size``) and autovacuum runs; at the end
the drift from the first interval to the last.

A run of 10 minutes or more writes the ``endurance`` section of ``benchmarks/RESULTS.md``;
shorter runs write ``benchmarks/RESULTS-quick.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from psycopg import sql

from benchmarks._common import (
    HERE,
    WorkerProcess,
    connect,
    facts_markdown,
    fmt,
    machine_facts,
    pgwerk_source,
    resolve_dsn,
    schema_for,
    server_facts,
    table_markdown,
    table_text,
    use_source,
    write_section,
)

TICK = 0.1


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def sample(conn: Any, schema: str) -> dict[str, float]:
    table = sql.Identifier(schema, "_pgwerk_jobs")
    row = conn.execute(sql.SQL(
        "SELECT count(*) FILTER (WHERE status IN ('queued', 'scheduled', 'active')), "
        "count(*) FILTER (WHERE status = 'queued'), "
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM "
        "  started_at - enqueued_at)) FILTER (WHERE completed_at > now() - interval '10 s'), "
        "percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM "
        "  started_at - enqueued_at)) FILTER (WHERE completed_at > now() - interval '10 s'), "
        "pg_total_relation_size(%s) FROM {}").format(table),
        [f'"{schema}"."_pgwerk_jobs"']).fetchone()
    stats = conn.execute(
        "SELECT n_live_tup, n_dead_tup, autovacuum_count, autoanalyze_count "
        "FROM pg_stat_user_tables WHERE schemaname = %s AND relname = '_pgwerk_jobs'",
        [schema]).fetchone()
    return {
        "unfinished": float(row[0]), "backlog": float(row[1]),
        "wait_p50_ms": float(row[2] or 0) * 1000, "wait_p99_ms": float(row[3] or 0) * 1000,
        "size_mb": row[4] / 2**20, "live": float(stats[0]), "dead": float(stats[1]),
        "autovacuums": float(stats[2]), "autoanalyzes": float(stats[3]),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.endurance", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=None, help="jobs/s (default: half the "
                        "burn-down rate measured first)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--result-ttl", type=float, default=30.0)
    parser.add_argument("--sweep-interval", type=float, default=5.0)
    parser.add_argument("--interval", type=float, default=None)
    parser.add_argument("--dsn")
    parser.add_argument("--src")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    use_source(args.src)
    from benchmarks.measures import burn_down
    from pgwerk import EnqueueParams, Werk

    dsn = resolve_dsn(args.dsn)
    machine, server, source = machine_facts(), server_facts(dsn), pgwerk_source()
    interval = args.interval or (60.0 if args.minutes >= 3 else 15.0)
    burn_rate = None
    rate = args.rate
    if rate is None:
        log("measuring the burn-down rate (5,000 no-op jobs, concurrency "
            f"{args.concurrency})")
        burn_rate = burn_down(dsn, 5_000, args.concurrency)["jobs_per_s"]
        rate = burn_rate / 2
    log(f"enqueueing {rate:,.0f} jobs/s for {args.minutes:g} min; result_ttl "
        f"{args.result_ttl:g}s, sweep every {args.sweep_interval:g}s")
    started_at = time.time()
    rows: list[dict[str, float]] = []
    with schema_for(dsn, "endurance") as schema:
        app = Werk(dsn, schema=schema, result_ttl=args.result_ttl).connect()
        worker = WorkerProcess(dsn, schema, concurrency=args.concurrency,
                               sweep_interval=args.sweep_interval)
        try:
            worker.info()
            worker.wait_listening(dsn)
            with connect(dsn) as conn:
                enqueued = 0
                owed = 0.0
                start = time.monotonic()
                end = start + args.minutes * 60
                next_tick = start
                next_report = start + interval
                last = {"t": start, "enqueued": 0.0, "processed": 0.0}
                while True:
                    now = time.monotonic()
                    if now >= next_report:
                        s = sample(conn, schema)
                        processed = enqueued - s["unfinished"]
                        span = now - last["t"]
                        rows.append({
                            "t_min": (now - start) / 60,
                            "enqueued_per_s": (enqueued - last["enqueued"]) / span,
                            "processed_per_s": (processed - last["processed"]) / span,
                            "rss_mb": worker.rss_mb(), **s,
                        })
                        last = {"t": now, "enqueued": float(enqueued),
                                "processed": processed}
                        r = rows[-1]
                        log(f"{r['t_min']:5.1f} min: {r['enqueued_per_s']:7.0f} in/s "
                            f"{r['processed_per_s']:7.0f} out/s backlog {r['backlog']:6.0f} "
                            f"wait p50 {r['wait_p50_ms']:6.1f} ms p99 {r['wait_p99_ms']:7.1f} ms "
                            f"live {r['live']:7.0f} dead {r['dead']:7.0f} "
                            f"{r['size_mb']:6.1f} MB av {r['autovacuums']:.0f}")
                        next_report += interval
                    if now >= end:
                        break
                    if now >= next_tick:
                        owed += rate * TICK
                        n = int(owed)
                        if n:
                            app.enqueue_many([EnqueueParams("benchmarks.tasks.noop",
                                                            kwargs={"n": enqueued + i})
                                              for i in range(n)])
                            enqueued += n
                            owed -= n
                        next_tick += TICK
                    time.sleep(max(0.0, min(next_tick, next_report) - time.monotonic()))
                drain_start = time.monotonic()
                while sample(conn, schema)["unfinished"] and time.monotonic() - drain_start < 60:
                    time.sleep(0.2)
                drained = time.monotonic() - drain_start
                final = sample(conn, schema)
        finally:
            worker.stop()
            app.close()

    header = ["t (min)", "enqueued/s", "processed/s", "backlog", "wait p50 ms", "wait p99 ms",
              "live tuples", "dead tuples", "jobs table MB", "autovacuums", "worker RSS MB"]
    lines = [[fmt(r["t_min"], 1), fmt(r["enqueued_per_s"]), fmt(r["processed_per_s"]),
              fmt(r["backlog"]), fmt(r["wait_p50_ms"], 1), fmt(r["wait_p99_ms"], 1),
              fmt(r["live"]), fmt(r["dead"]), fmt(r["size_mb"], 1), fmt(r["autovacuums"]),
              fmt(r["rss_mb"], 1)] for r in rows]
    first, lastr = rows[0], rows[-1]

    def drift(key: str) -> str:
        a, b = first[key], lastr[key]
        return f"{fmt(a)} -> {fmt(b)}" + (f" ({b / a:.2f}x)" if a else "")

    summary = (
        f"Drift first -> last interval: processed/s {drift('processed_per_s')}, "
        f"dead tuples {drift('dead')}, table size MB {drift('size_mb')}, "
        f"wait p99 ms {drift('wait_p99_ms')}, worker RSS MB {drift('rss_mb')}. "
        f"After the producer stopped the backlog drained in {drained:.1f}s; final table "
        f"{final['live']:,.0f} live / {final['dead']:,.0f} dead tuples, "
        f"{final['size_mb']:.1f} MB."
    )
    print(table_text(header, lines))
    print(summary)
    if args.no_write:
        return
    body = (
        f"## Endurance (`python -m benchmarks.endurance --minutes {args.minutes:g}`)\n\n"
        f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(started_at))}. One worker "
        f"(threads, concurrency {args.concurrency}, sweep every {args.sweep_interval:g}s); "
        f"enqueue_many every {TICK * 1000:.0f} ms at {rate:,.0f} jobs/s"
        + (f" (half the {burn_rate:,.0f} jobs/s burn-down measured first)" if burn_rate else "")
        + f"; `result_ttl={args.result_ttl:g}s` so finished rows are pruned by the sweep. "
        f"\"wait\" = started_at - enqueued_at of the jobs finished in the last 10 s.\n\n"
        + facts_markdown(machine, server, source) + "\n"
        + table_markdown(header, lines) + "\n\n" + summary + "\n"
    )
    output = HERE / ("RESULTS.md" if args.minutes >= 10 else "RESULTS-quick.md")
    write_section(output, "endurance", body)
    log(f"wrote the endurance section of {output}")


if __name__ == "__main__":
    main()
