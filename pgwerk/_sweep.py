"""Maintenance, run by one process at a time: each duty is one step you can call.

``run_sweep`` takes the leader lock and runs the steps in one short transaction.
"""

from __future__ import annotations

import logging
import zlib
from typing import TYPE_CHECKING, Any

import psycopg

if TYPE_CHECKING:
    from pgwerk.app import Werk

logger = logging.getLogger(__name__)

PRUNE_BATCH = 10_000
FORGET_WORKERS_AFTER = 86_400.0
VACUUM_INTERVAL = 30.0  # seconds at least between two vacuums of the jobs table


def _fetch(conn: psycopg.Connection[Any], query: bytes,
           params: dict[str, Any]) -> list[dict[str, Any]]:
    cur = conn.execute(query, params)
    return cur.fetchall() if cur.description else []


def rescue_orphans(app: Werk, conn: psycopg.Connection[Any]) -> int:
    """Requeue (or fail, or end aborted) active jobs whose worker or heartbeat is gone."""
    rows = _fetch(conn, app.queries["sweep_rescue_orphans"], {
        "max_active": app.config.max_active_secs,
        "max_lost": app.config.max_lost,
        "channel": app.channel,
    })
    if rows:
        logger.warning("rescued %d job(s) from lost workers: %s", len(rows),
                       ", ".join(str(r["id"]) for r in rows[:20]))
    ended = [r["id"] for r in rows if r["status"] != "queued" and r["has_dependents"]]
    app.resolve_dependents(lambda q, p: _fetch(conn, q, dict(p)), ended)
    _fetch(conn, app.queries["sweep_release_groups"], {})
    return len(rows)


def expire_jobs(app: Werk, conn: psycopg.Connection[Any]) -> int:
    """End unstarted jobs past their ``_ttl`` as ``expired``."""
    rows = _fetch(conn, app.queries["sweep_expire"], {"channel": app.channel})
    app.resolve_dependents(lambda q, p: _fetch(conn, q, dict(p)),
                           [r["id"] for r in rows if r["has_dependents"]])
    return len(rows)


def resolve_waiting(app: Werk, conn: psycopg.Connection[Any]) -> int:
    """Safety net: promote or fail every waiting job whose dependencies all ended."""
    rows = _fetch(conn, app.queries["deps_resolve"], {"ids": None, "channel": app.channel})
    failed = [r["id"] for r in rows if r["status"] == "failed" and r["has_dependents"]]
    return len(rows) + app.resolve_dependents(lambda q, p: _fetch(conn, q, dict(p)), failed)


def prune_jobs(app: Werk, conn: psycopg.Connection[Any]) -> int:
    """Delete ended jobs past their ``_result_ttl`` / ``_failure_ttl``."""
    rows = _fetch(conn, app.queries["sweep_prune"], {"limit": PRUNE_BATCH})
    return int(rows[0]["deleted"])


def forget_workers(app: Werk, conn: psycopg.Connection[Any]) -> int:
    """Drop rows of workers silent for a day."""
    cur = conn.execute(app.queries["sweep_forget_workers"], {"older_than": FORGET_WORKERS_AFTER})
    return cur.rowcount


def vacuum_jobs(app: Werk, conn: psycopg.Connection[Any]) -> int:
    """VACUUM the jobs table when dead rows piled up (outside any transaction). Returns 1
    if it ran. A role that does not own the table cannot: that is logged once per pass."""
    rows = _fetch(conn, app.queries["sweep_vacuum_due"], {"min_interval": VACUUM_INTERVAL})
    if not rows or not rows[0]["due"]:
        return 0
    try:
        conn.execute(app.queries["sweep_vacuum"])
    except psycopg.errors.InsufficientPrivilege as exc:
        logger.warning("cannot vacuum the jobs table (%s); leave it to autovacuum", exc)
        return 0
    logger.info("vacuumed the jobs table (%s dead rows)", rows[0]["dead"])
    return 1


def leader_lock_key(app: Werk) -> int:
    return zlib.crc32(f"pgwerk:sweep:{app.config.schema}.{app.config.prefix}".encode())


def run_sweep(app: Werk) -> dict[str, int]:
    """One pass of every step, if this process wins the sweep lock; else ``{}``."""

    def go(conn: psycopg.Connection[Any]) -> dict[str, int]:
        try:
            with conn.transaction():
                leader = _fetch(conn, app.queries["sweep_lock"], {"lock": leader_lock_key(app)})
                if not leader[0]["leader"]:
                    return {}
                counts = {
                    "rescued": rescue_orphans(app, conn),
                    "expired": expire_jobs(app, conn),
                    "resolved": resolve_waiting(app, conn),
                    "pruned": prune_jobs(app, conn),
                    "workers_forgotten": forget_workers(app, conn),
                }
        except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled) as exc:
            # Rows locked by someone else for long, or a statement too slow: the pass is
            # rolled back whole and the next one tries again.
            logger.warning("sweep gave up (%s); the next pass tries again",
                           str(exc).strip().splitlines()[0])
            return {}
        # VACUUM cannot run in a transaction; two leaders in a row at worst both check.
        counts["vacuumed"] = vacuum_jobs(app, conn)
        return counts

    return app.db.run("sweep", go)
