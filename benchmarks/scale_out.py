"""Scale-out: burn-down throughput with 1, 2 and 4 worker processes on one database, next to
what PostgreSQL itself does with as many raw claim loops at once.

    python -m benchmarks.scale_out [--quick] [--repeats N] [--processes 1,2,4] [--dsn DSN]
        [--jobs N] [--src TREE] [--output FILE] [--no-write] [--json FILE]

Each repeat runs, in this order:

- ``raw_claim_100``: the raw batched claim loop of ``benchmarks/raw.py`` in this process,
  the same ceiling ``benchmarks.run`` reports next to its burn-downs;
- for each process count N: ``raw_N``, N client processes each running that same loop on
  one shared table, released together; then ``workers_N``, N worker subprocesses
  (``benchmarks/worker_proc.py``, thread pool, concurrency 8, library defaults otherwise)
  burning down one queue of no-op jobs.

Throughput of the workers comes from the database clock, as in ``benchmarks.run``: jobs /
(last ``completed_at`` - first ``heartbeat_at``, i.e. the first claim). The raw loops time
themselves: jobs / (last loop's end - first loop's start, one clock for all processes).
Next to it, where the CPU went during the burn-down, per job: the client processes' own
(workers or raw loops), that of the PostgreSQL backends serving their connections (read
from ``/proc``, so only for a server on this machine), and that of the whole machine; and
how many of the machine's cores were busy on average.

Prints the tables and writes the ``scale_out`` section of ``benchmarks/RESULTS.md``
(``--quick``: ``benchmarks/RESULTS-quick.md``, so a smoke run never replaces recorded numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from psycopg import sql

from benchmarks._common import (
    HERE,
    ROOT,
    WorkerProcess,
    checkpoint,
    connect,
    facts_markdown,
    fmt,
    load_markdown,
    machine_facts,
    pgwerk_source,
    resolve_dsn,
    run_interleaved,
    schema_for,
    server_facts,
    summary,
    table_markdown,
    table_text,
    use_source,
    write_section,
)

CONCURRENCY = 8
BATCH = 100  # rows per raw claim, as raw_claim_100
FULL_JOBS, QUICK_JOBS = 20_000, 4_000
PROCESSES = (1, 2, 4)
POLL = 0.05  # seconds between "all done?" checks (the rate itself is from the db clock)
TICKS = os.sysconf("SC_CLK_TCK")

Result = dict[str, float]


# -- CPU from /proc -----------------------------------------------------------------------------


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads, in clock ticks) process ``pid`` of this
    machine has used; NaN if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / TICKS  # fields 14 and 15 of proc(5)


def backend_cpu_s(pid: int) -> float:
    """CPU seconds a PostgreSQL backend (one thread) of this machine has used, to the
    nanosecond (``/proc/<pid>/schedstat``); NaN if it is gone, unreadable, or not a
    ``postgres`` process (a server on another host whose pid is some local process)."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            if f.read().strip() != "postgres":
                return float("nan")
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return float("nan")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of all cores since boot, from ``/proc/stat``."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait; guest time is already counted in user
    return (sum(values) - idle) / TICKS, sum(values) / TICKS


def machine_numbers(before: tuple[float, float], after: tuple[float, float],
                    jobs: int) -> Result:
    """CPU of the whole machine (every process, PostgreSQL's background ones included) per
    job, and how many of its cores were busy on average, between two ``machine_cpu()``."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return {"machine_cpu_us_per_job": 1e6 * busy / jobs,
            "cores_busy": busy / total * (os.cpu_count() or 1) if total else float("nan")}


def backend_pids(conn: Any, application_names: Sequence[str]) -> list[int]:
    """Backends serving these application names (and their ``<name>:heartbeat`` ones)."""
    names = [*application_names, *(f"{n}:heartbeat" for n in application_names)]
    return [r[0] for r in conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = ANY(%s)", [names])]


# -- the raw loops, N client processes at once --------------------------------------------------


def raw_client(dsn: str, schema: str, batch: int) -> None:
    """One raw claim loop (``benchmarks.raw.CLAIM``), in a process of its own: print a
    ready line, wait for a line on stdin, claim until the table is empty, print what it
    did and its own CPU and its backend's."""
    from benchmarks import raw

    with connect(dsn) as conn:
        query = sql.SQL(raw.CLAIM).format(schema=sql.Identifier(schema)).as_bytes(conn)
        backend = conn.info.backend_pid
        print(json.dumps({"ready": os.getpid()}), flush=True)
        sys.stdin.readline()
        server0, cpu0, start = backend_cpu_s(backend), time.process_time(), time.monotonic()
        done = 0
        while True:
            rows = conn.execute(query, (batch,)).fetchall()
            if not rows:
                break
            done += len(rows)
        end = time.monotonic()
        cpu, server = time.process_time() - cpu0, backend_cpu_s(backend) - server0
    # time.monotonic() is CLOCK_MONOTONIC, one clock for every process of the machine.
    print(json.dumps({"start": start, "end": end, "rows": done, "cpu_s": cpu,
                      "server_cpu_s": server}), flush=True)


def raw_loops(dsn: str, jobs: int, processes: int) -> Result:
    from benchmarks import raw

    with schema_for(dsn, f"scale_raw_{processes}") as schema:
        with connect(dsn) as conn:
            raw._setup(conn, schema)
            raw._fill(conn, schema, jobs)
        checkpoint(dsn)
        procs = [subprocess.Popen(
            [sys.executable, "-m", "benchmarks.scale_out", "--raw-client", schema, "--dsn", dsn],
            cwd=str(ROOT), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"}) for _ in range(processes)]
        try:
            for p in procs:  # each has connected
                assert p.stdout is not None
                if not p.stdout.readline().startswith('{"ready"'):
                    raise RuntimeError(f"raw client exited with {p.wait(5)} before start")
            machine0 = machine_cpu()
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("go\n")
                p.stdin.flush()
            outs = []
            for p in procs:
                assert p.stdout is not None
                line = p.stdout.readline()  # blocks until that loop is done
                if not line:
                    raise RuntimeError(f"raw client failed (exit {p.wait(5)})")
                outs.append(json.loads(line))
            machine1 = machine_cpu()
            for p in procs:
                p.wait(30)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    done = sum(o["rows"] for o in outs)
    if done != jobs:
        raise RuntimeError(f"raw loops claimed {done} of {jobs} rows")
    first, last = min(o["start"] for o in outs), max(o["end"] for o in outs)
    return {
        "jobs_per_s": jobs / (last - first),
        "client_cpu_us_per_job": 1e6 * sum(o["cpu_s"] for o in outs) / jobs,
        "server_cpu_us_per_job": 1e6 * sum(o["server_cpu_s"] for o in outs) / jobs,
        **machine_numbers(machine0, machine1, jobs),
        "start_spread_ms": 1000 * (max(o["start"] for o in outs) - first),
        "share_min_pct": 100 * min(o["rows"] for o in outs) / jobs,
        "share_max_pct": 100 * max(o["rows"] for o in outs) / jobs,
    }


# -- N worker processes ---------------------------------------------------------------------------


def workers(dsn: str, jobs: int, processes: int, timeout: float = 600.0) -> Result:
    from benchmarks import measures as m

    with schema_for(dsn, f"scale_workers_{processes}") as schema:
        app = m._app(dsn, schema)
        try:
            m.fill(app, jobs)  # enqueue_many + VACUUM ANALYZE, as the run.py burn-downs
            channel = app._store.channel
        finally:
            app.close()
        table = m._jobs_table(schema)
        procs: list[WorkerProcess] = []
        with connect(dsn) as gate, connect(dsn) as watch:
            # How the work is released. A worker claims as soon as its loop starts, and the
            # processes start one after the other (imports, connecting), so with the jobs
            # simply queued the first one would burn alone for a while and the curve would
            # flatten; enqueueing only once all are up would make the producer part of the
            # race (enqueue_many runs at about the rate a few workers burn down). Instead the
            # jobs are queued and the table analyzed as for the other burn-downs, and this
            # transaction locks every queued row: the workers' claims (FOR UPDATE SKIP
            # LOCKED) find nothing, so they start, LISTEN and wait. Once every worker has
            # printed its ready line and LISTENs, one COMMIT frees all the rows and delivers
            # the queue's notification, which wakes every worker at the same moment. The
            # rate is counted on the database clock from the first claim, as in run.py.
            gate.execute("BEGIN")
            gate.execute(sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} WHERE status = 'queued' "
                                 "FOR UPDATE) AS held").format(table))
            checkpoint(dsn)
            try:
                for _ in range(processes):
                    procs.append(WorkerProcess(dsn, schema, concurrency=CONCURRENCY))
                for w in procs:
                    w.info()
                for w in procs:
                    w.wait_listening(dsn)
                names = [w.application_name for w in procs]
                pids = [w.pid for w in procs]
                clients0 = {pid: cpu_s(pid) for pid in pids}
                servers0 = {pid: backend_cpu_s(pid) for pid in backend_pids(watch, names)}
                machine0 = machine_cpu()
                gate.execute("SELECT pg_notify(%s, 'q:default')", [channel])
                gate.execute("COMMIT")
                _wait_finished(watch, table, procs, time.monotonic() + timeout)
                machine1 = machine_cpu()
                clients = sum(cpu_s(pid) - clients0[pid] for pid in pids)
                # A backend that was not there at the release was opened during the run:
                # all of its CPU belongs to it.
                servers = sum(backend_cpu_s(pid) - servers0.get(pid, 0.0)
                              for pid in backend_pids(watch, names))
            finally:
                _stop_all(procs)
            for w in procs:
                if w.proc.returncode != 0:
                    raise RuntimeError(f"worker exited with {w.proc.returncode}")
            row = watch.execute(sql.SQL(
                "SELECT count(*) FILTER (WHERE status = 'complete'), "
                "extract(epoch FROM max(completed_at) - min(heartbeat_at)), "
                "count(DISTINCT heartbeat_at), count(DISTINCT completed_at) FROM {}").format(
                table)).fetchone()
            # Per worker: jobs done, and its first claim after the first claim of all.
            per_worker = watch.execute(sql.SQL(
                "SELECT count(*), extract(epoch FROM min(heartbeat_at) - "
                "(SELECT min(heartbeat_at) FROM {t})) FROM {t} WHERE status = 'complete' "
                "GROUP BY worker_id").format(t=table)).fetchall()
    assert row is not None
    done, seconds = int(row[0]), float(row[1] or 0.0)
    if done < jobs:
        raise RuntimeError(f"{jobs - done} of {jobs} jobs did not complete")
    counts = [int(r[0]) for r in per_worker] + [0] * (processes - len(per_worker))
    return {
        "jobs_per_s": done / seconds if seconds else float("nan"),
        "client_cpu_us_per_job": 1e6 * clients / done,
        "server_cpu_us_per_job": 1e6 * servers / done,
        **machine_numbers(machine0, machine1, done),
        "start_spread_ms": 1000 * max(float(r[1]) for r in per_worker),
        "share_min_pct": 100 * min(counts) / done,
        "share_max_pct": 100 * max(counts) / done,
        "jobs_per_claim": done / row[2], "jobs_per_completion": done / row[3],
    }


def _stop_all(procs: Sequence[WorkerProcess], timeout: float = 20.0) -> None:
    """SIGTERM to every worker first (each then finishes its running jobs and exits),
    then wait for each; one that does not exit in time is killed."""
    for w in procs:
        if w.proc.poll() is None:
            w.proc.send_signal(signal.SIGTERM)
    for w in procs:
        try:
            w.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            w.proc.kill()
            w.proc.wait(5)


def _wait_finished(conn: Any, table: sql.Composable, procs: Sequence[WorkerProcess],
                   deadline: float) -> None:
    # Through the partial indexes on queued and on active jobs: cheap enough to ask often.
    # (No-op jobs do not fail, so none is left scheduled for a retry; the count of complete
    # jobs afterwards would say so.)
    query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {t} WHERE status = 'queued') "
                    "OR EXISTS (SELECT 1 FROM {t} WHERE status IN ('active', 'aborting'))"
                    ).format(t=table)
    while True:
        row = conn.execute(query).fetchone()
        if row is not None and not row[0]:
            return
        for w in procs:
            if w.proc.poll() is not None:
                raise RuntimeError(f"a worker exited with {w.proc.returncode} mid-run")
        if time.monotonic() > deadline:
            raise TimeoutError("jobs still unfinished at the deadline")
        time.sleep(POLL)


# -- the runs and the report ------------------------------------------------------------------


def plan(dsn: str, jobs: int, processes: Sequence[int]) -> dict[str, Callable[[], Result]]:
    """Name -> one run of it, in the order a repeat runs them (each count's raw loops just
    before its workers, so that a slow moment of the machine hits both)."""
    from benchmarks import raw

    def bound(run: Callable[[str, int, int], Result], n: int) -> Callable[[], Result]:
        return lambda: run(dsn, jobs, n)

    calls: dict[str, Callable[[], Result]] = {
        "raw_claim_100": lambda: raw.claim(dsn, jobs, BATCH)}
    for n in processes:
        calls[f"raw_{n}"] = bound(raw_loops, n)
        calls[f"workers_{n}"] = bound(workers, n)
    return calls


def _values(runs: Sequence[Result], key: str = "jobs_per_s") -> list[float]:
    return [run.get(key, float("nan")) for run in runs]


def _ratios(top: Sequence[float], bottom: Sequence[float]) -> tuple[float, float, float]:
    """a / b within each repeat, then (median, min, max) of those."""
    return summary([a / b for a, b in zip(top, bottom, strict=False) if a == a and b == b and b])


def curve(results: dict[str, list[Result]],
          processes: Sequence[int]) -> tuple[list[str], list[list[str]]]:
    header = ["processes", "pgwerk jobs/s", "min-max", "x of 1 process", "raw loops jobs/s",
              "min-max", "x of 1 loop", "pgwerk % of raw loops", "pgwerk % of raw_claim_100"]
    ceiling = _values(results.get("raw_claim_100", []))
    base_w = _values(results.get(f"workers_{processes[0]}", []))
    base_r = _values(results.get(f"raw_{processes[0]}", []))
    lines = []
    for n in processes:
        w, r = _values(results.get(f"workers_{n}", [])), _values(results.get(f"raw_{n}", []))
        w_med, w_lo, w_hi = summary(w)
        r_med, r_lo, r_hi = summary(r)
        cells = [str(n), fmt(w_med), f"{fmt(w_lo)}-{fmt(w_hi)}"]
        cells.append(_ratio_text(_ratios(w, base_w), "x"))
        cells += [fmt(r_med), f"{fmt(r_lo)}-{fmt(r_hi)}", _ratio_text(_ratios(r, base_r), "x")]
        cells.append(_ratio_text(_ratios(w, r), "%"))
        cells.append(_ratio_text(_ratios(w, ceiling), "%"))
        lines.append(cells)
    return header, lines


def _ratio_text(stats: tuple[float, float, float], unit: str) -> str:
    med, lo, hi = stats
    if unit == "%":
        return f"{fmt(100 * med, 1)}% ({fmt(100 * lo, 1)}-{fmt(100 * hi, 1)})"
    return f"{med:.2f}x ({lo:.2f}-{hi:.2f})" if med == med else "n/a"


COST_KEYS = ("jobs_per_s", "client_cpu_us_per_job", "server_cpu_us_per_job",
             "machine_cpu_us_per_job", "cores_busy", "jobs_per_claim", "start_spread_ms")


def costs(results: dict[str, list[Result]],
          processes: Sequence[int]) -> tuple[list[str], list[list[str]]]:
    cores = os.cpu_count()
    header = ["run", "jobs/s", "client CPU us/job", "server CPU us/job (its backends)",
              "machine CPU us/job", f"cores busy (of {cores})", "jobs per claim",
              "first claims spread ms",
              "share per process %"]
    lines = []
    for kind in ("workers", "raw"):
        for n in processes:
            runs = results.get(f"{kind}_{n}", [])
            if not runs:
                continue
            label = f"pgwerk, {n} worker process(es)" if kind == "workers" \
                else f"raw, {n} claim loop(s)"
            cells = [label]
            for key in COST_KEYS:
                med = summary(_values(runs, key))[0]
                cells.append("-" if key == "jobs_per_claim" and kind == "raw"
                             else fmt(med))
            lo, hi = summary(_values(runs, "share_min_pct"))[0], \
                summary(_values(runs, "share_max_pct"))[0]
            cells.append(f"{fmt(lo, 1)}-{fmt(hi, 1)}")
            lines.append(cells)
    return header, lines


def diagnostics(results: dict[str, list[Result]]) -> tuple[list[str], list[list[str]]]:
    header = ["run", "number", "median", "min-max"]
    lines = []
    for name, runs in results.items():
        for key in runs[0] if runs else []:
            med, lo, hi = summary(_values(runs, key))
            lines.append([name, key, fmt(med), f"{fmt(lo)}-{fmt(hi)}"])
    return header, lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale_out", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", help="default: $PGWERK_DSN, else the local test server")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_JOBS:,} jobs per run instead of {FULL_JOBS:,}, one repeat")
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (quick: 1)")
    parser.add_argument("--jobs", type=int, default=None, help="jobs per run (overrides sizes)")
    parser.add_argument("--processes", default=",".join(map(str, PROCESSES)),
                        help="comma-separated process counts, the first one the base")
    parser.add_argument("--src", help="import pgwerk from this source tree (patch trials)")
    parser.add_argument("--output", help="markdown file to write the section to")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--json", help="also write the raw numbers as JSON here")
    parser.add_argument("--raw-client", metavar="SCHEMA", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    dsn = resolve_dsn(args.dsn)
    if args.raw_client:
        raw_client(dsn, args.raw_client, BATCH)
        return
    use_source(args.src)
    jobs = args.jobs or (QUICK_JOBS if args.quick else FULL_JOBS)
    repeats = args.repeats or (1 if args.quick else 3)
    processes = [int(x) for x in args.processes.split(",") if x.strip()]

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    machine, server, source = machine_facts(), server_facts(dsn), pgwerk_source()
    log(f"pgwerk from {source['path']} @ {source.get('commit', '?')}; {jobs:,} jobs per run, "
        f"processes {processes}, {repeats} repeat(s){' (quick)' if args.quick else ''}")
    started, load_before = time.time(), os.getloadavg()
    results = run_interleaved(plan(dsn, jobs, processes), repeats, log)
    load_after = os.getloadavg()
    elapsed = time.time() - started
    c_header, c_lines = curve(results, processes)
    k_header, k_lines = costs(results, processes)
    d_header, d_lines = diagnostics(results)
    ceiling, lo, hi = summary(_values(results["raw_claim_100"]))
    ceiling_text = (f"raw_claim_100 (one loop in the measuring process, as in "
                    f"`benchmarks.run`): {fmt(ceiling)} rows/s ({fmt(lo)}-{fmt(hi)})")
    print()
    print(table_text(c_header, c_lines))
    print(ceiling_text)
    print()
    print(table_text(k_header, k_lines))
    print()
    print(table_text(d_header, d_lines))

    if args.json:
        Path(args.json).write_text(json.dumps(
            {"machine": machine, "server": server, "source": source, "repeats": repeats,
             "jobs": jobs, "processes": processes, "results": results}, indent=1))
    if args.no_write:
        return
    output = Path(args.output) if args.output else HERE / (
        "RESULTS-quick.md" if args.quick else "RESULTS.md")
    command = "python -m benchmarks.scale_out" + (" --quick" if args.quick else "")
    body = (
        f"## Scale-out (`{command}`)\n\n"
        f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(started))}, {repeats} interleaved "
        f"repeat(s), {elapsed / 60:.1f} min. {jobs:,} queued no-op jobs per run, burned down "
        f"by N worker processes (threads, concurrency {CONCURRENCY}, library defaults "
        f"otherwise) on one database, released together; next to them the raw claim loop "
        f"(claim {BATCH} + mark done) run by N client processes at once on one table. Median "
        f"and min-max over repeats; ratios are taken within each repeat. CPU per job over the "
        f"burn-down: the client processes' own, that of the PostgreSQL backends serving them, "
        f"and that of the whole machine (PostgreSQL's background processes and this program "
        f"included); \"cores busy\": the machine's average over the same time.\n\n"
        + facts_markdown(machine, server, source)
        + load_markdown(load_before, load_after)
        + f"- {ceiling_text}\n\n"
        + table_markdown(c_header, c_lines) + "\n\n"
        + table_markdown(k_header, k_lines) + "\n\n"
        "<details><summary>All numbers</summary>\n\n"
        + table_markdown(d_header, d_lines) + "\n\n</details>\n"
    )
    write_section(output, "scale_out", body)
    log(f"wrote {output}")


if __name__ == "__main__":
    main()
