"""``pgwerk doctor``: health checks of a pgwerk database, each ``ok``, ``warn`` or ``fail``
with the command that fixes it.

Every check is a small function of a ``Facts`` (one connection, the app's names, the pool
size) that returns a ``Check``; a check that cannot run (a permission, an old server) says
so as a warning instead of stopping the others. Nothing here writes.

Thresholds are constants below; estimates (bloat) say they are estimates.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from pgwerk.app import Werk
from pgwerk.store import migrate as _migrate
from pgwerk.store.diagnostics import Diagnostics
from pgwerk.store.diagnostics import cron_leader_pid as _leader_pid
from pgwerk.store.statements import migrations, quote_ident

OK, WARN, FAIL = "ok", "warn", "fail"
TABLES = ("jobs", "job_deps", "job_groups", "executions", "workers", "cron", "batches")

#: A queue whose oldest runnable job waited longer than this is reported.
QUEUED_WARN_SECS = 300.0
#: Scheduled jobs this late are reported (a worker of their queue stages them each poll).
OVERDUE_SECS = 60.0
#: Dead rows are reported past this many and this share of the table.
DEAD_ROWS_WARN = 10_000
DEAD_SHARE_WARN = 0.2
#: Bloat is estimated only for relations at least this big, reported past this share.
BLOAT_MIN_BYTES = 10 * 1024 * 1024
BLOAT_SHARE_WARN = 0.5
#: Connections in use past this share of the usable ones are reported.
CONNECTIONS_WARN = 0.8
#: Connections of a worker beyond its pool: the listener and the cron scheduler's.
EXTRA_CONNECTIONS_PER_WORKER = 2
#: Usual port of PgBouncer.
PGBOUNCER_PORT = 6432


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    status: str  # ok | warn | fail
    message: str
    fix: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Facts:
    """What the checks look at."""

    app: Werk
    diagnostics: Diagnostics
    #: How fix commands name the database: ``myapp:app`` or ``--dsn "$PGWERK_DSN" ...``.
    target: str
    pool_size: int
    #: ``application_name`` of the app's workers (their connections are counted).
    app_name: str = "pgwerk"
    version: int = 0

    def fetch(self, name: str, params: Mapping[str, Any] | None = None,
              cached: bool = True) -> list[dict[str, Any]]:
        return self.diagnostics.fetch(name, params, cached)

    def table(self, name: str) -> str:
        """The quoted, qualified name of one of the app's tables, for fix commands."""
        config = self.app.config
        return f"{quote_ident(config.schema)}.{quote_ident(config.prefix + '_' + name)}"

    def sql_fix(self, statement: str) -> str:
        return f"psql \"$PGWERK_DSN\" -c '{statement}'"


def expected_indexes(prefix: str) -> list[str]:
    """Names of the indexes the migrations create (primary keys aside)."""
    found = []
    for _, _, sql in migrations():
        found += re.findall(r"INDEX\s+(?:IF NOT EXISTS\s+)?\{(\w+)_name\}", sql)
    return [f"{prefix}_{name}" for name in dict.fromkeys(found)]


# -- the checks ------------------------------------------------------------------------------


def check_schema(facts: Facts) -> Check:
    latest = _migrate.latest_version()
    have = facts.version
    data = {"version": have, "latest": latest}
    if have == 0:
        return Check("schema", FAIL, f"no pgwerk tables in schema {facts.app.config.schema!r} "
                     f"(prefix {facts.app.config.prefix!r})",
                     f"pgwerk migrate {facts.target}", data)
    if have < latest:
        return Check("schema", FAIL, f"version {have}, this pgwerk needs {latest}",
                     f"pgwerk migrate {facts.target}", data)
    if have > latest:
        return Check("schema", WARN, f"version {have} is newer than this pgwerk knows "
                     f"({latest}): an older pgwerk is running against a newer schema",
                     "pip install --upgrade pgwerk", data)
    return Check("schema", OK, f"version {have} (latest)", data=data)


def check_indexes(facts: Facts) -> Check:
    wanted = expected_indexes(facts.app.config.prefix)
    rows = {r["name"]: r for r in facts.fetch(
        "doctor_indexes", {"schema": facts.app.config.schema, "names": wanted})}
    missing = [n for n in wanted if n not in rows]
    invalid = [n for n, r in rows.items() if not (r["valid"] and r["ready"])]
    data = {"missing": missing, "invalid": invalid, "expected": len(wanted)}
    if missing:
        return Check("indexes", FAIL, f"missing: {', '.join(missing)}",
                     f"pgwerk migrate --sql {facts.target}  (and run its CREATE INDEX lines)",
                     data)
    if invalid:
        schema = quote_ident(facts.app.config.schema)
        return Check("indexes", FAIL, f"invalid (a failed CREATE INDEX CONCURRENTLY?): "
                     f"{', '.join(invalid)}",
                     facts.sql_fix("; ".join(f"REINDEX INDEX CONCURRENTLY {schema}."
                                             f"{quote_ident(n)}" for n in invalid)), data)
    return Check("indexes", OK, f"all {len(wanted)} present and valid", data=data)


def _row_bytes(row: Mapping[str, Any]) -> float:
    # Tuple header (23 bytes, aligned to 24) and line pointer (4); the jobs table keeps
    # 15% of each page free (fillfactor 85), the others fill their pages.
    width = row["row_width"] or 100
    return (width + 28) / 0.85


def check_bloat(facts: Facts) -> Check:
    notes, data = [], {}
    for row in facts.fetch("doctor_tables", {"schema": facts.app.config.schema,
                                             "tables": _table_names(facts)}):
        live_bytes = row["live"] * _row_bytes(row)
        table_share = _waste(row["table_bytes"], live_bytes)
        # About 40 bytes an index entry; partial indexes hold fewer rows, so this errs low.
        index_share = _waste(row["index_bytes"], row["live"] * 40.0 * max(row["indexes"], 1))
        data[row["name"]] = {"table_bytes": row["table_bytes"], "index_bytes": row["index_bytes"],
                             "table_bloat": table_share, "index_bloat": index_share}
        if table_share is not None and table_share >= BLOAT_SHARE_WARN:
            notes.append((row["name"], "table", table_share, row["table_bytes"]))
        if index_share is not None and index_share >= BLOAT_SHARE_WARN:
            notes.append((row["name"], "indexes", index_share, row["index_bytes"]))
    if not notes:
        return Check("bloat", OK, "no table or index of size is mostly empty space "
                     "(estimate from row counts and widths)", data=data)
    text = "; ".join(f"{name} {what} ~{share:.0%} empty of {_mb(size)}"
                     for name, what, share, size in notes)
    fixes = []
    for name, what, _, _ in notes:
        table = quote_ident(facts.app.config.schema) + "." + quote_ident(name)
        fixes.append(f"REINDEX TABLE CONCURRENTLY {table}" if what == "indexes"
                     else f"VACUUM (FULL, ANALYZE) {table}")
    return Check("bloat", WARN, f"{text} (estimate; VACUUM FULL locks the table: prefer "
                 "pg_repack on a busy queue)", facts.sql_fix("; ".join(fixes)), data)


def _waste(size: int, expected: float) -> float | None:
    if size < BLOAT_MIN_BYTES:
        return None
    return max(0.0, 1.0 - expected / size)


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.0f} MB"


def check_dead_rows(facts: Facts) -> Check:
    heavy = []
    for row in facts.fetch("doctor_tables", {"schema": facts.app.config.schema,
                                             "tables": _table_names(facts)}):
        total = row["live"] + row["dead"]
        if row["dead"] >= DEAD_ROWS_WARN and row["dead"] / total >= DEAD_SHARE_WARN:
            heavy.append(row)
    if not heavy:
        return Check("dead rows", OK, "no table is mostly dead rows")
    return Check(
        "dead rows", WARN,
        "; ".join(f"{r['name']}: {r['dead']:,} dead of {r['live'] + r['dead']:,}" for r in heavy),
        facts.sql_fix("; ".join(f"VACUUM (ANALYZE) {quote_ident(facts.app.config.schema)}."
                                f"{quote_ident(r['name'])}" for r in heavy)),
        {r["name"]: {"dead": r["dead"], "live": r["live"]} for r in heavy})


def check_autovacuum(facts: Facts) -> Check:
    server = facts.fetch("doctor_server", {"app_name": _app_name_pattern(facts)})[0]
    problems, fixes = [], []
    data: dict[str, Any] = {"server": server["autovacuum"], "track_counts": server["track_counts"],
                            "disabled": [], "lagging": []}
    for setting in ("autovacuum", "track_counts"):
        if server[setting] != "on":
            problems.append(f"{setting} is off on the server")
            fixes.append(f"ALTER SYSTEM SET {setting} = on; SELECT pg_reload_conf()")
    schema = quote_ident(facts.app.config.schema)
    for row in facts.fetch("doctor_tables", {"schema": facts.app.config.schema,
                                             "tables": _table_names(facts)}):
        name = row["name"]
        if "autovacuum_enabled=false" in [o.lower() for o in row["options"]]:
            data["disabled"].append(name)
            fixes.append(f"ALTER TABLE {schema}.{quote_ident(name)} RESET (autovacuum_enabled)")
        due = server["vacuum_threshold"] + server["vacuum_scale_factor"] * row["live"]
        if row["dead"] >= DEAD_ROWS_WARN and row["dead"] > 2 * due:
            data["lagging"].append(name)
            fixes.append(f"VACUUM (ANALYZE) {schema}.{quote_ident(name)}")
    if data["disabled"]:
        problems.append(f"switched off for {', '.join(data['disabled'])}")
    if data["lagging"]:
        problems.append(f"lagging on {', '.join(data['lagging'])}: dead rows are more than "
                        "twice what should trigger it (a long transaction holding it back? "
                        "see pg_stat_activity)")
    if not problems:
        return Check("autovacuum", OK, "on, and keeping up", data=data)
    return Check("autovacuum", WARN, "; ".join(problems) + " (the workers' sweep vacuums the "
                 "jobs table itself only when their role owns it)",
                 facts.sql_fix("; ".join(fixes)), data)


def check_stuck_jobs(facts: Facts) -> Check:
    row = facts.fetch("doctor_stuck_active")[0]
    if not row["count"]:
        return Check("stuck jobs", OK, "every running job has a live worker")
    ids = ", ".join(map(str, row["ids"])) + (", …" if row["count"] > len(row["ids"]) else "")
    return Check("stuck jobs", FAIL, f"{row['count']} job(s) active without a live worker "
                 f"(the oldest started {_age(row['oldest'])} ago): {ids}",
                 f"pgwerk sweep {facts.target}  (or start a worker: its sweep puts them back)",
                 {"count": row["count"], "ids": row["ids"]})


def check_workers(facts: Facts) -> Check:
    rows = facts.fetch("doctor_workers")
    live = [r for r in rows if r["live"]]
    silent = [r for r in rows if not r["live"]]
    data = {"live": len(live), "silent": [r["id"] for r in silent]}
    if silent:
        return Check("workers", WARN, f"{len(silent)} silent (no heartbeat for "
                     f"{_age(min(r['age'] for r in silent))} or more): "
                     f"{', '.join(r['id'] for r in silent[:5])}; {len(live)} live",
                     f"pgwerk sweep {facts.target}  (puts their jobs back; their rows go "
                     "after a day)", data)
    if not live:
        return Check("workers", WARN, "no worker is running",
                     f"pgwerk-worker {_app_hint(facts)}", data)
    return Check("workers", OK, f"{len(live)} live, none silent", data=data)


def check_queued(facts: Facts) -> Check:
    rows = facts.fetch("doctor_queued")
    served = {q for r in facts.fetch("doctor_workers") if r["live"] for q in r["queues"]}
    orphan = [r for r in rows if r["queue"] not in served]
    late = [r for r in rows if r["oldest"] >= QUEUED_WARN_SECS]
    data = {r["queue"]: {"queued": r["count"], "oldest": r["oldest"]} for r in rows}
    if orphan:
        names = ",".join(r["queue"] for r in orphan)
        return Check("queued jobs", FAIL, "no live worker takes from " + ", ".join(
            f"{r['queue']} ({r['count']} queued, oldest {_age(r['oldest'])})" for r in orphan),
            f"pgwerk-worker {_app_hint(facts)} -q {names}", data)
    if late:
        return Check("queued jobs", WARN, "waiting long: " + ", ".join(
            f"{r['queue']} (oldest {_age(r['oldest'])}, {r['count']} queued)" for r in late),
            "more workers or concurrency for those queues: pgwerk-worker "
            f"{_app_hint(facts)} -q {','.join(r['queue'] for r in late)} -c N", data)
    if not rows:
        return Check("queued jobs", OK, "none waiting", data=data)
    oldest = max(r["oldest"] for r in rows)
    return Check("queued jobs", OK, f"oldest waited {_age(oldest)}", data=data)


def check_overdue(facts: Facts) -> Check:
    rows = facts.fetch("doctor_overdue", {"grace": OVERDUE_SECS})
    if not rows:
        return Check("scheduled jobs", OK, "none overdue")
    return Check("scheduled jobs", WARN, "overdue (no worker of their queue polls?): " + ", ".join(
        f"{r['queue']} ({r['count']}, up to {_age(r['late'])} late)" for r in rows),
        f"pgwerk-worker {_app_hint(facts)} -q {','.join(r['queue'] for r in rows)}",
        {r["queue"]: {"count": r["count"], "late": r["late"]} for r in rows})


def cron_lock_key(app: Werk) -> int:
    """The advisory lock key of ``app``'s cron scheduler (as ``CronScheduler`` makes it)."""
    return zlib.crc32(f"pgwerk:cron:{app.config.schema}.{app.config.prefix}".encode())


def cron_leader_pid(app: Werk) -> int | None:
    """The server process id of the connection of the running cron scheduler, if any."""
    return _leader_pid(app._store, cron_lock_key(app))


def check_cron(facts: Facts) -> Check:
    row = facts.fetch("doctor_cron_schedules")[0]
    if not row["active"]:
        return Check("cron", OK, "no active schedule")
    leader = facts.fetch("doctor_cron_leader", {"lock": cron_lock_key(facts.app)})
    data = {"active": row["active"], "scheduler_pid": leader[0]["pid"] if leader else None}
    if not leader:
        late = f" (a tick was due {_age(row['late'])} ago)" if (row["late"] or 0) > 0 else ""
        return Check("cron", WARN, f"{row['active']} active schedule(s) but no scheduler is "
                     f"running: nothing is enqueued{late}",
                     f"pgwerk-worker {_app_hint(facts)} --scheduler  (or pgwerk cron run "
                     f"{_app_hint(facts)})", data)
    return Check("cron", OK, f"{row['active']} active schedule(s); the scheduler runs "
                 f"(server pid {leader[0]['pid']})", data=data)


def check_connections(facts: Facts) -> Check:
    server = facts.fetch("doctor_server", {"app_name": _app_name_pattern(facts)})[0]
    usable = server["max_connections"] - server["reserved"]
    live = sum(1 for r in facts.fetch("doctor_workers") if r["live"])
    per_worker = facts.pool_size + EXTRA_CONNECTIONS_PER_WORKER
    # The workers at their pools' limit, next to every other client connected now.
    others = server["connections"] - server["app_connections"]
    needed = live * per_worker + others
    data = {"max_connections": server["max_connections"], "usable": usable,
            "in_use": server["connections"], "pgwerk": server["app_connections"],
            "workers": live, "per_worker": per_worker, "needed_at_peak": needed}
    text = (f"{server['connections']} of {usable} in use ({server['app_connections']} pgwerk); "
            f"{live} worker(s) × up to {per_worker} (pool {facts.pool_size} + "
            f"{EXTRA_CONNECTIONS_PER_WORKER}) + {others} other = {needed} at peak")
    fix = ("raise max_connections (restart), lower max_pool_size, or put PgBouncer in front "
           "(with Werk(pgbouncer=True) where supported)")
    if needed > usable:
        return Check("connections", FAIL, text, fix, data)
    if server["connections"] > CONNECTIONS_WARN * usable or needed > CONNECTIONS_WARN * usable:
        return Check("connections", WARN, text, fix, data)
    return Check("connections", OK, text, data=data)


def check_pooler(facts: Facts) -> Check:
    """A pooler in front is guessed from: the DSN's port (6432 is PgBouncer's), the port
    the server says it listens on differing from the DSN's, two transactions of one client
    connection served by two server processes (transaction pooling), and ``SHOW
    pool_mode`` being answered (PostgreSQL rejects it)."""
    server = facts.fetch("doctor_server", {"app_name": _app_name_pattern(facts)})[0]
    signs = pooler_signs(facts.app.dsn, server["server_port"])
    second = facts.fetch("doctor_backend_pid", cached=False)[0]["pid"]
    transaction_mode = second != server["pid"]
    if transaction_mode:
        signs.append("two transactions ran in two server processes (transaction pooling)")
    mode = _pool_mode(facts)
    if mode is not None:
        signs.append(f"SHOW pool_mode answered {mode!r}")
        transaction_mode = transaction_mode or mode == "transaction"
    checked = "port, server port, backend pid across transactions, SHOW pool_mode"
    data = {"signs": signs, "transaction_mode": transaction_mode, "checked": checked}
    if signs and facts.app.config.pgbouncer:
        return Check("pooler", OK, "a pooler seems to be in front ("
                     + "; ".join(signs) + ") and PgBouncer mode is on", data=data)
    if transaction_mode:
        return Check("pooler", FAIL, "a pooler in transaction mode is in front: "
                     + "; ".join(signs) + ". LISTEN, session advisory locks (cron leader) "
                     "and prepared statements do not work through it",
                     "turn on PgBouncer mode: Werk(..., pgbouncer=True) or PGWERK_PGBOUNCER=1 "
                     "(or point workers at PostgreSQL directly)", data)
    if signs:
        return Check("pooler", WARN, "a pooler or proxy seems to be in front: "
                     + "; ".join(signs), "if it is PgBouncer in transaction mode, turn on "
                     "PgBouncer mode: Werk(..., pgbouncer=True) or PGWERK_PGBOUNCER=1",
                     data)
    return Check("pooler", OK, f"none detected (checked: {checked})", data=data)


def pooler_signs(dsn: str, server_port: int | None) -> list[str]:
    """What the DSN and the server's port say about a pooler in between."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return []
    signs = []
    port_text = str(params.get("port") or "5432").split(",")[0]
    port = int(port_text) if port_text.isascii() and port_text.isdigit() else None
    if port == PGBOUNCER_PORT:
        signs.append(f"the DSN's port is {PGBOUNCER_PORT}, PgBouncer's usual one")
    if port is not None and server_port is not None and port != server_port:
        signs.append(f"connected to port {port}, the server listens on {server_port}")
    return signs


def _pool_mode(facts: Facts) -> str | None:
    try:
        rows = facts.fetch("doctor_pool_mode", cached=False)
    except psycopg.Error:
        return None
    return str(next(iter(rows[0].values()))) if rows else None


def _table_names(facts: Facts) -> list[str]:
    return [f"{facts.app.config.prefix}_{name}" for name in TABLES]


def _app_name_pattern(facts: Facts) -> str:
    name = facts.app_name
    return re.sub(r"([%_\\])", r"\\\1", name) + "%"


def _app_hint(facts: Facts) -> str:
    return facts.target if ":" in facts.target.split()[0] else "APP"


def _age(seconds: float | None) -> str:
    """``45s``, ``12m``, ``3h``, ``2d``: one unit, rounded down."""
    if seconds is None:
        return "?"
    whole = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size:
            return f"{whole // size}{unit}"
    return f"{whole}s"


#: Checks that need the pgwerk tables, in the order of the report.
TABLE_CHECKS: tuple[Callable[[Facts], Check], ...] = (
    check_indexes, check_bloat, check_dead_rows, check_autovacuum, check_stuck_jobs,
    check_workers, check_queued, check_overdue, check_cron, check_connections,
)


def run_checks(app: Werk, target: str, pool_size: int, app_name: str = "pgwerk") -> list[Check]:
    """Every check against ``app``'s database, on one connection of its own.

    Args:
        app: where the tables are (its pool is not used).
        target: how fix commands name the database (``myapp:app``, ``--dsn ...``).
        pool_size: ``max_pool_size`` of the app's workers.
        app_name: ``application_name`` of the app's workers.
    """
    conn = app._store.connect_direct("run the health checks")
    try:
        facts = Facts(app=app, diagnostics=Diagnostics(app._store, conn), target=target,
                      pool_size=pool_size, app_name=app_name)
        facts.version = facts.diagnostics.schema_version()
        checks = [check_schema(facts)]
        if facts.version > 0:
            checks += [_guarded(check, facts) for check in TABLE_CHECKS]
        checks.append(_guarded(check_pooler, facts))
        return checks
    finally:
        conn.close()


def _guarded(check: Callable[[Facts], Check], facts: Facts) -> Check:
    name = check.__name__.removeprefix("check_").replace("_", " ")
    try:
        return check(facts)
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Check(name, WARN, f"could not check: {first}")
