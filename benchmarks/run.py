"""Run every benchmark, interleaved with its raw-SQL ceiling, and report medians.

    python -m benchmarks.run [--quick] [--dsn DSN] [--repeats N] [--only a,b] [--src TREE]

Prints a table and writes the ``run`` section of ``benchmarks/RESULTS.md`` (``--quick``:
``benchmarks/RESULTS-quick.md``, so a smoke run never replaces recorded numbers).

Each repeat runs every measure once, pgwerk next to its raw ceiling, so that a slow moment
of the machine hits both; ratios are taken within a repeat, then the median over repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks._common import (
    HERE,
    facts_markdown,
    fmt,
    load_markdown,
    machine_facts,
    pgwerk_source,
    resolve_dsn,
    run_interleaved,
    server_facts,
    summary,
    table_markdown,
    table_text,
    use_source,
    write_section,
)


@dataclass(frozen=True)
class Sizes:
    single: int
    bulk: int
    chunk: int
    burn: int
    fork: int
    latency: int
    gap: float
    load: int


FULL = Sizes(single=2_000, bulk=20_000, chunk=1_000, burn=10_000, fork=1_000, latency=200,
             gap=0.020, load=2_000)
QUICK = Sizes(single=300, bulk=5_000, chunk=1_000, burn=2_000, fork=200, latency=50,
              gap=0.020, load=500)

PREFETCH = 24  # 3 x concurrency 8


def measures(dsn: str, s: Sizes) -> dict[str, Callable[[], dict[str, float]]]:
    """Name -> a call that runs the measure once; in the order one repeat runs them."""
    from benchmarks import measures as m
    from benchmarks import raw

    return {
        "raw_insert_single": lambda: raw.insert_single(dsn, s.single),
        "enqueue_single": lambda: m.enqueue_single(dsn, s.single),
        "raw_insert_multi": lambda: raw.insert_multi(dsn, s.bulk, s.chunk),
        "enqueue_bulk": lambda: m.enqueue_bulk(dsn, s.bulk, s.chunk),
        "raw_claim_100": lambda: raw.claim(dsn, s.burn, 100),
        "burn_down_c8": lambda: m.burn_down(dsn, s.burn, 8),
        "burn_down_c8_prefetch": lambda: m.burn_down(dsn, s.burn, 8, prefetch=PREFETCH),
        "burn_down_c8_auto": lambda: m.burn_down(dsn, s.burn, 8, prefetch="auto"),
        "raw_claim_one": lambda: raw.claim(dsn, s.burn, 1),
        "burn_down_c1": lambda: m.burn_down(dsn, s.burn, 1),
        "burn_down_c1_prefetch": lambda: m.burn_down(dsn, s.burn, 1, prefetch=3),
        "burn_down_c1_auto": lambda: m.burn_down(dsn, s.burn, 1, prefetch="auto"),
        "burn_down_fork_c8": lambda: m.burn_down(dsn, s.fork, 8, pool="fork"),
        "raw_latency": lambda: raw.latency(dsn, s.latency, s.gap),
        "latency": lambda: m.latency_and_footprint(dsn, s.latency, s.gap, s.load),
    }


@dataclass(frozen=True)
class Row:
    """One line of the report: ``measure[key]`` against ``ceiling[ceiling_key]``."""

    label: str
    measure: str
    key: str
    unit: str
    ceiling: str | None = None
    ceiling_key: str | None = None
    higher_is_better: bool = True
    target: str = ""
    check: Callable[[float, float], bool] | None = None  # (value, pct) -> met


def rows(s: Sizes) -> list[Row]:
    return [
        Row(f"enqueue_single ({s.single:,} x app.enqueue)", "enqueue_single", "jobs_per_s",
            "jobs/s", "raw_insert_single", "jobs_per_s",
            target=">= 90% of raw", check=lambda v, p: p >= 90),
        Row(f"enqueue_bulk ({s.bulk:,} via enqueue_many, chunks of {s.chunk:,})", "enqueue_bulk",
            "jobs_per_s", "jobs/s", "raw_insert_multi", "jobs_per_s",
            target=">= 50% of raw", check=lambda v, p: p >= 50),
        Row(f"burn_down threads c=8, default prefetch ({s.burn:,} no-op)", "burn_down_c8",
            "jobs_per_s",
            "jobs/s", "raw_claim_100", "jobs_per_s",
            target=">= 25% of raw", check=lambda v, p: p >= 25),
        Row(f"burn_down threads c=8 prefetch={PREFETCH}", "burn_down_c8_prefetch", "jobs_per_s",
            "jobs/s", "raw_claim_100", "jobs_per_s",
            target="(>= 25% of raw)", check=lambda v, p: p >= 25),
        Row("burn_down threads c=8 prefetch='auto'", "burn_down_c8_auto", "jobs_per_s",
            "jobs/s", "raw_claim_100", "jobs_per_s",
            target="(>= 25% of raw)", check=lambda v, p: p >= 25),
        Row(f"burn_down threads c=1, default prefetch ({s.burn:,} no-op)", "burn_down_c1",
            "jobs_per_s", "jobs/s",
            "raw_claim_100", "jobs_per_s", target=">= 10% of raw", check=lambda v, p: p >= 10),
        Row("burn_down threads c=1 prefetch=3", "burn_down_c1_prefetch", "jobs_per_s", "jobs/s",
            "raw_claim_100", "jobs_per_s", target="(>= 10% of raw)", check=lambda v, p: p >= 10),
        Row("burn_down threads c=1 prefetch='auto'", "burn_down_c1_auto", "jobs_per_s",
            "jobs/s", "raw_claim_100", "jobs_per_s",
            target="(>= 10% of raw)", check=lambda v, p: p >= 10),
        Row(f"burn_down fork c=8, default prefetch ({s.fork:,} no-op)", "burn_down_fork_c8",
            "jobs_per_s", "jobs/s",
            "raw_claim_100", "jobs_per_s"),
        Row(f"latency p50 ({s.latency} jobs {s.gap * 1000:.0f} ms apart)", "latency", "p50_ms",
            "ms", "raw_latency", "p50_ms", higher_is_better=False,
            target="<= 2 ms", check=lambda v, p: v <= 2.0),
        Row("latency p99", "latency", "p99_ms", "ms", "raw_latency", "p99_ms",
            higher_is_better=False, target="<= 5 ms", check=lambda v, p: v <= 5.0),
        Row("idle worker c=8: pooled connections", "latency", "idle_pooled", "conns",
            target="<= 3", check=lambda v, p: v <= 3),
        Row("idle worker c=8: LISTEN connections", "latency", "idle_listen", "conns",
            target="<= 1", check=lambda v, p: v <= 1),
        Row("idle worker c=8: heartbeat connection", "latency", "idle_heartbeat", "conns",
            target="<= 1", check=lambda v, p: v <= 1),
        Row(f"idle worker c=8 after {s.load:,} jobs: pooled conns", "latency", "loaded_pooled",
            "conns", target="<= 3", check=lambda v, p: v <= 3),
        Row("idle worker c=8: RSS", "latency", "idle_rss_mb", "MB",
            target="< 60 MB", check=lambda v, p: v < 60),
        Row(f"idle worker c=8 after {s.load:,} jobs: RSS", "latency", "loaded_rss_mb", "MB",
            target="< 60 MB", check=lambda v, p: v < 60),
        # The ceilings themselves.
        Row(f"raw: single-row INSERT ({s.single:,})", "raw_insert_single", "jobs_per_s", "rows/s"),
        Row(f"raw: multi-row INSERT ({s.bulk:,}, chunks of {s.chunk:,})", "raw_insert_multi",
            "jobs_per_s", "rows/s"),
        Row(f"raw: claim 100 + mark done ({s.burn:,})", "raw_claim_100", "jobs_per_s", "rows/s"),
        Row(f"raw: claim 1 + mark done ({s.burn:,})", "raw_claim_one", "jobs_per_s", "rows/s"),
        Row("raw: INSERT+NOTIFY -> LISTEN wakeup + claim, p50", "raw_latency", "p50_ms", "ms"),
        Row("raw: INSERT+NOTIFY -> LISTEN wakeup + claim, p99", "raw_latency", "p99_ms", "ms"),
    ]


def run_all(dsn: str, sizes: Sizes, repeats: int, only: set[str] | None,
            log: Callable[[str], None]) -> dict[str, list[dict[str, float]]]:
    plan = measures(dsn, sizes)
    if only:
        unknown = only - set(plan)
        if unknown:
            raise SystemExit(f"--only: unknown measure(s) {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(plan)}")
        plan = {k: v for k, v in plan.items() if k in only}
    return run_interleaved(plan, repeats, log)


def report(results: dict[str, list[dict[str, float]]],
           sizes: Sizes) -> tuple[list[str], list[list[str]]]:
    header = ["measure", "median", "min-max", "unit", "raw ceiling (median)",
              "% of ceiling (median, min-max)", "target", "met?"]
    lines = []
    for row in rows(sizes):
        runs = results.get(row.measure)
        if not runs:
            continue
        values = [run.get(row.key, float("nan")) for run in runs]
        med, lo, hi = summary(values)
        ceiling_text = pct_text = ""
        pct_med = float("nan")
        if row.ceiling and results.get(row.ceiling):
            ceilings = [run.get(row.ceiling_key or row.key, float("nan"))
                        for run in results[row.ceiling]]
            c_med, _, _ = summary(ceilings)
            ceiling_text = f"{fmt(c_med)} {row.unit}"
            # Ratios within a repeat: repeat i of the measure against repeat i of the ceiling.
            ratios = [(v / c if row.higher_is_better else c / v) * 100
                      for v, c in zip(values, ceilings, strict=False)
                      if v == v and c == c and v and c]
            pct_med, p_lo, p_hi = summary(ratios)
            pct_text = f"{fmt(pct_med, 1)}% ({fmt(p_lo, 1)}-{fmt(p_hi, 1)})"
        met = ""
        if row.check is not None and med == med:
            met = "yes" if row.check(med, pct_med) else "NO"
        lines.append([row.label, fmt(med), f"{fmt(lo)}-{fmt(hi)}", row.unit, ceiling_text,
                      pct_text, row.target, met])
    return header, lines


def diagnostics(results: dict[str, list[dict[str, float]]]) -> tuple[list[str], list[list[str]]]:
    """Every number every measure returned (CPU per job, jobs per claim, ...)."""
    header = ["measure", "number", "median", "min-max"]
    lines = []
    for measure, runs in results.items():
        for key in runs[0] if runs else []:
            med, lo, hi = summary([run.get(key, float("nan")) for run in runs])
            lines.append([measure, key, fmt(med), f"{fmt(lo)}-{fmt(hi)}"])
    return header, lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", help="default: $PGWERK_DSN, else the local test server")
    parser.add_argument("--quick", action="store_true", help="one small repeat (smoke test)")
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (quick: 1)")
    parser.add_argument("--only", default="", help="comma-separated measure names")
    parser.add_argument("--src", help="import pgwerk from this source tree (patch trials)")
    parser.add_argument("--output", help="markdown file to write the section to")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--json", help="also write the raw numbers as JSON here")
    args = parser.parse_args(argv)

    use_source(args.src)
    dsn = resolve_dsn(args.dsn)
    sizes = QUICK if args.quick else FULL
    repeats = args.repeats or (1 if args.quick else 3)
    only = {x.strip() for x in args.only.split(",") if x.strip()} or None

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    machine, server, source = machine_facts(), server_facts(dsn), pgwerk_source()
    log(f"pgwerk from {source['path']} @ {source.get('commit', '?')}; "
        f"{repeats} repeat(s){' (quick)' if args.quick else ''}")
    started, load_before = time.time(), os.getloadavg()
    results = run_all(dsn, sizes, repeats, only, log)
    load_after = os.getloadavg()
    header, lines = report(results, sizes)
    d_header, d_lines = diagnostics(results)
    print()
    print(table_text(header, lines))
    print()
    print(table_text(d_header, d_lines))
    elapsed = time.time() - started

    if args.json:
        Path(args.json).write_text(json.dumps(
            {"machine": machine, "server": server, "source": source, "repeats": repeats,
             "quick": args.quick, "results": results}, indent=1))
    if args.no_write:
        return
    output = Path(args.output) if args.output else HERE / (
        "RESULTS-quick.md" if args.quick else "RESULTS.md")
    body = (
        f"## Throughput, latency and footprint (`python -m benchmarks.run"
        f"{' --quick' if args.quick else ''}`)\n\n"
        f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(started))}, {repeats} interleaved "
        f"repeat(s), {elapsed / 60:.1f} min. Median and min-max over repeats; \"% of ceiling\" is "
        f"pgwerk / raw within each repeat (for latencies raw / pgwerk, so 100% = as fast as "
        f"raw SQL), then the median of those ratios.\n\n"
        + facts_markdown(machine, server, source)
        + load_markdown(load_before, load_after) + "\n"
        + table_markdown(header, lines) + "\n\n"
        "<details><summary>All numbers (client CPU per job, worker CPU per job, jobs per "
        "claim and per completion batch, connections)</summary>\n\n"
        + table_markdown(d_header, d_lines) + "\n\n</details>\n"
    )
    write_section(output, "run", body)
    log(f"wrote {output}")


if __name__ == "__main__":
    main()
