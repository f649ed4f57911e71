"""Shared plumbing of the benchmark programs: DSN and source tree, fresh schemas, worker
subprocesses, statistics, machine facts and the sections of ``RESULTS.md``."""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent  # the directory that holds the ``benchmarks`` package
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"

#: Server settings worth knowing when reading the numbers.
SETTINGS = (
    "shared_buffers", "effective_cache_size", "work_mem", "synchronous_commit", "fsync",
    "wal_sync_method", "full_page_writes", "commit_delay", "wal_level", "max_wal_size",
    "checkpoint_timeout", "max_connections", "jit", "plan_cache_mode", "random_page_cost",
    "autovacuum", "autovacuum_naptime", "autovacuum_vacuum_cost_delay", "huge_pages",
)


# -- where pgwerk and the database are ------------------------------------------------------


def resolve_dsn(dsn: str | None) -> str:
    return dsn or os.environ.get("PGWERK_DSN") or DEFAULT_DSN


def use_source(src: str | None) -> str | None:
    """Import ``pgwerk`` from ``src`` (a source tree holding ``pgwerk/``) instead of the
    installed one. Must run before anything imports pgwerk."""
    src = src or os.environ.get("PGWERK_BENCH_SRC")
    if not src:
        return None
    src = str(Path(src).resolve())
    if not (Path(src) / "pgwerk" / "__init__.py").exists():
        raise SystemExit(f"--src {src}: no pgwerk/__init__.py there")
    if "pgwerk" in sys.modules:
        raise RuntimeError("pgwerk was imported before use_source()")
    sys.path.insert(0, src)
    os.environ["PGWERK_BENCH_SRC"] = src  # inherited by worker subprocesses
    return src


def pgwerk_source() -> dict[str, str]:
    """Where the imported pgwerk comes from, and its git state."""
    import pgwerk

    path = Path(pgwerk.__file__).resolve().parent.parent
    info = {"path": str(path), "version": getattr(pgwerk, "__version__", "?")}
    try:
        head = subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(path), "status", "--porcelain", "pgwerk"],
                               capture_output=True, text=True, timeout=5)
        if head.returncode == 0:
            info["commit"] = head.stdout.strip() + (" (pgwerk/ modified)" if dirty.stdout.strip()
                                                    else "")
    except (OSError, subprocess.SubprocessError):
        pass
    if "commit" not in info:  # a copied tree: say what it was copied from, if it says
        for name in ("SNAPSHOT", "BASE_COMMIT"):
            if (path / name).exists():
                info["commit"] = "copy of " + " ".join((path / name).read_text().split())
                break
    return info


# -- schemas and connections -------------------------------------------------------------------


def fresh_schema(label: str) -> str:
    return f"bench_{re.sub(r'[^a-z0-9_]', '_', label.lower())}_{uuid.uuid4().hex[:8]}"[:60]


def drop_schema(dsn: str, schema: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@contextmanager
def schema_for(dsn: str, label: str) -> Iterator[str]:
    """A fresh schema name, dropped (with everything in it) afterwards."""
    schema = fresh_schema(label)
    try:
        yield schema
    finally:
        drop_schema(dsn, schema)


def connect(dsn: str, **kwargs: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, autocommit=True, **kwargs)


def checkpoint(dsn: str) -> None:
    """Start each measure from a clean WAL position so a checkpoint triggered by the
    previous one does not land in the middle of this one."""
    try:
        with connect(dsn) as conn:
            conn.execute("CHECKPOINT")
    except psycopg.Error:
        pass  # not a superuser: live with it


# -- worker subprocesses ------------------------------------------------------------------


class WorkerProcess:
    """``python -m benchmarks.worker_proc ...`` in a subprocess of its own."""

    def __init__(self, dsn: str, schema: str, *, concurrency: int = 8, pool: str = "thread",
                 prefetch: int | str | None = None, burst: bool = False,
                 application_name: str | None = None,
                 result_ttl: float | None = None, sweep_interval: float | None = None,
                 poll_interval: float | None = None, profile: Sequence[str] | None = None,
                 extra: Sequence[str] = ()) -> None:
        self.application_name = application_name or f"bench-{uuid.uuid4().hex[:10]}"
        cmd = [sys.executable, "-m", "benchmarks.worker_proc", "--dsn", dsn, "--schema", schema,
               "--concurrency", str(concurrency), "--pool", pool,
               "--application-name", self.application_name, *extra]
        if prefetch is not None:
            cmd += ["--prefetch", str(prefetch)]
        if burst:
            cmd.append("--burst")
        if result_ttl is not None:
            cmd += ["--result-ttl", str(result_ttl)]
        if sweep_interval is not None:
            cmd += ["--sweep-interval", str(sweep_interval)]
        if poll_interval is not None:
            cmd += ["--poll-interval", str(poll_interval)]
        if profile:
            cmd = [*profile, "--", *cmd]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=str(ROOT), stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._info: dict[str, Any] | None = None

    @property
    def pid(self) -> int:
        return self.info()["pid"]

    def info(self, timeout: float = 30.0) -> dict[str, Any]:
        """The line the worker prints once its app is connected (pid, pgwerk path)."""
        if self._info is None:
            assert self.proc.stdout is not None
            deadline = time.monotonic() + timeout
            line = ""
            while time.monotonic() < deadline:
                line = self.proc.stdout.readline()
                if line.startswith("{"):
                    break
                if not line and self.proc.poll() is not None:
                    raise RuntimeError(f"worker exited with {self.proc.returncode} before start")
            self._info = json.loads(line)
        return self._info

    def final(self) -> dict[str, Any]:
        """The line the worker prints when it exits (CPU used, jobs processed)."""
        assert self.proc.stdout is not None
        found: dict[str, Any] = {}
        for line in self.proc.stdout.read().splitlines():
            if line.startswith("{"):
                found = json.loads(line)
        return found

    def wait_listening(self, dsn: str, timeout: float = 30.0) -> None:
        """Block until the worker's LISTEN connection is in place."""
        deadline = time.monotonic() + timeout
        with connect(dsn) as conn:
            while time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                    "AND query LIKE 'LISTEN %%'", [self.application_name]).fetchone()
                if row and row[0]:
                    return
                if self.proc.poll() is not None:
                    raise RuntimeError(f"worker exited with {self.proc.returncode}")
                time.sleep(0.02)
        raise TimeoutError("the worker did not LISTEN in time")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def rss_mb(self) -> float:
        return rss_mb(self.pid)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# -- statistics ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, min, max)."""
    clean = [v for v in values if v == v]
    if not clean:
        return float("nan"), float("nan"), float("nan")
    return statistics.median(clean), min(clean), max(clean)


# -- the machine ----------------------------------------------------------------------------------


def machine_facts() -> dict[str, str]:
    facts = {"cores": str(os.cpu_count()), "python": platform.python_version(),
             "kernel": platform.release()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    facts["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    facts["memory"] = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    try:
        facts["psycopg"] = f"{psycopg.__version__} ({psycopg.pq.__impl__})"
    except AttributeError:
        pass
    return facts


def server_facts(dsn: str) -> dict[str, str]:
    with connect(dsn) as conn:
        facts = {"version": conn.execute("SELECT version()").fetchone()[0]}  # type: ignore[index]
        rows = conn.execute("SELECT name, setting, unit FROM pg_settings WHERE name = ANY(%s)",
                            [list(SETTINGS)]).fetchall()
        shown = {name: conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[0]  # type: ignore[index]
                 for name, _, _ in rows}
        facts.update({name: shown[name] for name in SETTINGS if name in shown})
        host = conn.info.host
        facts["host"] = host if host.startswith("/") else f"{host}:{conn.info.port}"
    return facts


# -- RESULTS.md --------------------------------------------------------------------------------


RESULTS_HEADER = """# pgwerk benchmark results

Written by the benchmark programs (each replaces only its own marked section; text outside
the markers is kept). Reproduce with the commands in `benchmarks/README.md`.

<!-- BEGIN run -->
<!-- END run -->

<!-- BEGIN claim_plan -->
<!-- END claim_plan -->

<!-- BEGIN endurance -->
<!-- END endurance -->

<!-- BEGIN scale_out -->
<!-- END scale_out -->
"""


def write_section(path: Path, name: str, body: str) -> None:
    """Replace the text between ``<!-- BEGIN name -->`` and ``<!-- END name -->``."""
    text = path.read_text() if path.exists() else RESULTS_HEADER
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if begin in text and end in text:
        start = text.index(begin)
        stop = text.index(end) + len(end)
        text = text[:start] + block + text[stop:]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def load_markdown(before: tuple[float, ...], after: tuple[float, ...]) -> str:
    """The facts line of the machine's load average before and after a run."""
    return (f"- Load average (1/5/15 min) before: {' / '.join(f'{x:.1f}' for x in before)}, "
            f"after: {' / '.join(f'{x:.1f}' for x in after)} ({os.cpu_count()} cores: "
            f"anything well above that before the run is someone else's work)\n")


def facts_markdown(machine: dict[str, str], server: dict[str, str],
                   source: dict[str, str]) -> str:
    settings = ", ".join(f"`{k}={v}`" for k, v in server.items() if k not in ("version", "host"))
    return (
        f"- Machine: {machine.get('cores')} cores ({machine.get('cpu', '?')}), "
        f"{machine.get('memory', '?')} RAM, Linux {machine.get('kernel')}, "
        f"Python {machine.get('python')}, psycopg {machine.get('psycopg', '?')}\n"
        f"- PostgreSQL: {server['version'].split(' on ')[0]} at {server.get('host')} "
        f"(same host)\n"
        f"- Settings: {settings}\n"
        f"- pgwerk: {source.get('version', '?')} at commit {source.get('commit', '?')}\n"
    )


def table_markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def table_text(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
              for row in rows]
    return "\n".join(lines)


def fmt(value: float, digits: int | None = None) -> str:
    if value != value:
        return "n/a"
    if digits is None:
        digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
    return f"{value:,.{digits}f}"


def run_interleaved(calls: dict[str, Callable[[], dict[str, float]]], repeats: int,
                    log: Callable[[str], None]) -> dict[str, list[dict[str, float]]]:
    """Every measure once per repeat, in turn (so that all meet the same moments of a
    noisy machine); a measure that fails is logged and recorded as an error, and the
    others go on."""
    results: dict[str, list[dict[str, float]]] = {name: [] for name in calls}
    for r in range(repeats):
        for name, call in calls.items():
            started = time.monotonic()
            try:
                value = call()
            except Exception as exc:  # one failed measure must not lose the others
                log(f"[{r + 1}/{repeats}] {name}: FAILED {type(exc).__name__}: {exc}")
                value = {"error": float("nan")}
            results[name].append(value)
            shown = ", ".join(f"{k}={fmt(v)}" for k, v in value.items())
            log(f"[{r + 1}/{repeats}] {name}: {shown} ({time.monotonic() - started:.1f}s)")
    return results
