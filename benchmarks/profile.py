"""Where the time goes: py-spy of a burn-down worker, cProfile of the enqueue path.

    python -m benchmarks.profile worker [--jobs 10000] [--concurrency 8] [--prefetch 0]
        [--pool thread] [--gil] [--idle] [--src TREE]
    python -m benchmarks.profile trace [--jobs 10000] [--concurrency 8] [--prefetch 0] ...
    python -m benchmarks.profile enqueue [--jobs 2000] [--bulk] [--src TREE]

``worker``: enqueues the jobs, runs a burst worker under ``py-spy record`` (raw collapsed
stacks, one line per thread) and prints the worker's CPU use against wall time, the busiest
threads, and the functions with the most samples (self and inclusive). ``--gil`` keeps only
samples of the thread holding the GIL (what serialises the worker), ``--idle`` adds
waiting threads (where they wait). The collapsed stacks are kept in
``benchmarks/profiles/`` for flame-graph tools (speedscope.app reads them).

``trace``: the same burst worker without a sampler, timing every statement it runs by
name (calls, total and mean time, jobs per claim); with the worker's CPU time this says
whether the worker waits on the database or on itself.

``enqueue``: cProfile of ``app.enqueue`` (or ``enqueue_many`` with ``--bulk``) in this
process; prints the top functions by own time and by cumulative time.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import os
import pstats
import re
import shutil
import sys
import time
from pathlib import Path

from psycopg import sql

from benchmarks._common import HERE, WorkerProcess, connect, resolve_dsn, schema_for, use_source

PROFILES = HERE / "profiles"


def _frame_name(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py)" or "function (file.py:12)".
    match = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    if not match:
        return frame
    func, path = match.groups()
    return f"{func} ({path.split('site-packages/')[-1]})"


def summarize(collapsed: Path, top: int = 25) -> str:
    threads: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        # With --threads the first frames name the process and the thread.
        thread = next((f for f in frames[:2] if f.startswith("thread")), "?")
        py_frames = [f for f in frames if not f.startswith(("process", "thread"))]
        entry = next((f for f in py_frames if "worker.py" in f or "_pools.py" in f
                      or "_notify.py" in f or "threading.py" not in f), "?")
        threads[f"{thread}: {_frame_name(py_frames[1] if len(py_frames) > 1 else entry)}"] += count
        total += count
        if py_frames:
            own[_frame_name(py_frames[-1])] += count
        for name in {_frame_name(f) for f in py_frames}:
            inclusive[name] += count
    out = [f"{total} samples"]
    out.append("\nby thread (thread id: its entry function):")
    out += [f"  {100 * c / total:5.1f}%  {name}" for name, c in threads.most_common(12)]
    out.append("\nown time (leaf function):")
    out += [f"  {100 * c / total:5.1f}%  {name}" for name, c in own.most_common(top)]
    out.append("\ninclusive time:")
    out += [f"  {100 * c / total:5.1f}%  {name}" for name, c in inclusive.most_common(top)]
    return "\n".join(out)


def profile_worker(args: argparse.Namespace) -> None:
    from benchmarks.measures import fill
    from pgwerk import Werk

    dsn = resolve_dsn(args.dsn)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    PROFILES.mkdir(exist_ok=True)
    tag = f"worker-{args.pool}-c{args.concurrency}-p{args.prefetch or 'default'}" + \
        ("-gil" if args.gil else "") + ("-idle" if args.idle else "")
    out = PROFILES / f"{tag}.txt"
    with schema_for(dsn, "profile") as schema:
        app = Werk(dsn, schema=schema).connect()
        try:
            fill(app, args.jobs)
        finally:
            app.close()
        spy = [py_spy, "record", "--format", "raw", "--output", str(out), "--rate",
               str(args.rate), "--threads", "--nonblocking", "--function"]
        if args.gil:
            spy.append("--gil")
        if args.idle:
            spy.append("--idle")
        started = time.monotonic()
        worker = WorkerProcess(dsn, schema, concurrency=args.concurrency, pool=args.pool,
                               prefetch=args.prefetch, burst=True, profile=spy)
        # py-spy is the child; its rusage includes the worker it launched, plus py-spy's own.
        _, status, usage = os.wait4(worker.proc.pid, 0)
        worker.proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
        with connect(dsn) as conn:
            row = conn.execute(sql.SQL(
                "SELECT count(*) FILTER (WHERE status = 'complete'), "
                "extract(epoch FROM max(completed_at) - min(started_at)) FROM {}").format(
                sql.Identifier(schema, "_pgwerk_jobs"))).fetchone()
    assert row is not None
    done, seconds = int(row[0]), float(row[1] or 0)
    print(f"{done} jobs in {seconds:.2f}s = {done / seconds:,.0f} jobs/s under py-spy "
          f"(sampling slows the worker down; compare shapes, not absolute numbers)")
    print(f"CPU of worker + py-spy: user {usage.ru_utime:.1f}s sys {usage.ru_stime:.1f}s "
          f"over {wall:.1f}s wall")
    print(f"collapsed stacks: {out}\n")
    print(summarize(out))


def trace_worker(args: argparse.Namespace) -> None:
    from benchmarks.measures import fill
    from pgwerk import Werk

    dsn = resolve_dsn(args.dsn)
    with schema_for(dsn, "trace") as schema:
        app = Werk(dsn, schema=schema).connect()
        try:
            fill(app, args.jobs)
        finally:
            app.close()
        worker = WorkerProcess(dsn, schema, concurrency=args.concurrency, pool=args.pool,
                               prefetch=args.prefetch, burst=True, extra=["--trace"])
        try:
            worker.info()
            worker.wait(600)
            usage = worker.final()
        finally:
            worker.stop()
        with connect(dsn) as conn:
            row = conn.execute(sql.SQL(
                "SELECT count(*) FILTER (WHERE status = 'complete'), "
                "extract(epoch FROM max(completed_at) - min(started_at)) FROM {}").format(
                sql.Identifier(schema, "_pgwerk_jobs"))).fetchone()
    assert row is not None
    done, seconds = int(row[0]), float(row[1] or 0)
    print(f"{done} jobs in {seconds:.2f}s = {done / seconds:,.0f} jobs/s; worker CPU "
          f"{usage['cpu_s']:.2f}s over {usage['wall_s']:.2f}s wall "
          f"({100 * usage['cpu_s'] / usage['wall_s']:.0f}%), "
          f"{1000 * usage['cpu_s'] / done:.3f} ms CPU per job")
    print(f"{'statement':28} {'calls':>7} {'total s':>8} {'mean ms':>8} {'jobs/call':>9}")
    for name, (calls, total) in sorted(usage["statements"].items(), key=lambda kv: -kv[1][1]):
        print(f"{name:28} {calls:7d} {total:8.2f} {1000 * total / calls:8.2f} "
              f"{done / calls:9.1f}")


def profile_enqueue(args: argparse.Namespace) -> None:
    from pgwerk import EnqueueParams, Werk

    dsn = resolve_dsn(args.dsn)
    with schema_for(dsn, "profile_enqueue") as schema:
        app = Werk(dsn, schema=schema).connect()
        try:
            for i in range(20):
                app.enqueue("benchmarks.tasks.noop", n=-i)
            profiler = cProfile.Profile()
            started = time.perf_counter()
            profiler.enable()
            if args.bulk:
                for first in range(0, args.jobs, 1000):
                    app.enqueue_many([EnqueueParams("benchmarks.tasks.noop", kwargs={"n": i})
                                      for i in range(first, min(args.jobs, first + 1000))])
            else:
                for i in range(args.jobs):
                    app.enqueue("benchmarks.tasks.noop", n=i)
            profiler.disable()
            elapsed = time.perf_counter() - started
        finally:
            app.close()
    print(f"{args.jobs} jobs in {elapsed:.2f}s = {args.jobs / elapsed:,.0f} jobs/s under "
          f"cProfile (which inflates Python time)")
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(30)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["worker", "trace", "enqueue"])
    parser.add_argument("--dsn")
    parser.add_argument("--src")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--prefetch", default=None, help="an int or 'auto'; default: the "
                        "worker's default")
    parser.add_argument("--pool", default="thread")
    parser.add_argument("--rate", type=int, default=250)
    parser.add_argument("--gil", action="store_true")
    parser.add_argument("--idle", action="store_true")
    parser.add_argument("--bulk", action="store_true")
    args = parser.parse_args(argv)
    use_source(args.src)
    if args.what in ("worker", "trace"):
        args.jobs = args.jobs or 10_000
        (profile_worker if args.what == "worker" else trace_worker)(args)
    else:
        args.jobs = args.jobs or (20_000 if args.bulk else 2_000)
        profile_enqueue(args)


if __name__ == "__main__":
    main()
