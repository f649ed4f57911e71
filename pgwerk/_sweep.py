"""Maintenance, run by one process at a time.

Each duty is a method of the store that can run alone, at a moment of the caller's choosing
(``Store.rescue_orphans(now=...)``, ``expire``, ``resolve_waiting``, ``prune``,
``forget_workers``); ``run_sweep`` takes the leader lock and runs them all in one short
transaction, then vacuums the jobs table when it needs it and recounts the running jobs of
the concurrency limits.
"""

from __future__ import annotations

import logging
import zlib
from datetime import datetime

import psycopg

from pgwerk.store.core import Store

logger = logging.getLogger(__name__)

PRUNE_BATCH = 10_000
FORGET_WORKERS_AFTER = 86_400.0
VACUUM_INTERVAL = 30.0  # seconds at least between two vacuums of the jobs table


def leader_lock_key(store: Store) -> int:
    return zlib.crc32(f"pgwerk:sweep:{store.config.schema}.{store.config.prefix}".encode())


def run_sweep(store: Store, now: datetime | None = None) -> dict[str, int]:
    """One pass of every step, if this process wins the sweep lock; else ``{}``. ``now``:
    act as if it were that moment (default: the database's clock)."""

    def go(conn: psycopg.Connection[dict[str, object]]) -> dict[str, int]:
        try:
            with conn.transaction():
                if not store.sweep_lock(conn, leader_lock_key(store)):
                    return {}
                rescued = store.rescue_orphans(conn, now)
                if rescued:
                    logger.warning("rescued %d job(s) from lost workers: %s", len(rescued),
                                   ", ".join(str(r["id"]) for r in rescued[:20]))
                counts = {
                    "rescued": len(rescued),
                    "expired": store.expire(conn, now),
                    "resolved": store.resolve_waiting(conn),
                    "pruned": store.prune(PRUNE_BATCH, conn, now),
                    "batches_pruned": prune_batches(store, conn, now),
                    "workers_forgotten": store.forget_workers(FORGET_WORKERS_AFTER, conn, now),
                }
        except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled,
                psycopg.errors.TransactionRollback) as exc:
            # Rows locked by someone else for long, a statement too slow, or a deadlock
            # (a batch row locked by a worker ending members of the same batches): the
            # pass is rolled back whole and the next one tries again.
            logger.warning("sweep gave up (%s); the next pass tries again",
                           str(exc).strip().splitlines()[0])
            return {}
        # VACUUM cannot run in a transaction; two leaders in a row at worst both check.
        counts["vacuumed"] = vacuum_jobs(store, conn)
        return counts

    counts = store.db.run("sweep", go)
    if counts:
        # Apart, in a transaction of its own: it holds the concurrency limits' rows (and so
        # the claims of those queues) only for the moment it takes to count.
        counts["limits_recounted"] = recount_limits(store)
    return counts


def recount_limits(store: Store) -> int:
    """Correct the count of running jobs of every concurrency limit (see
    ``Store.recount_limits``); the pass goes on without it when its rows stay locked."""
    try:
        corrected = store.recount_limits()
    except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled) as exc:
        logger.warning("sweep: recounting running jobs of concurrency limits gave up (%s)",
                       str(exc).strip().splitlines()[0])
        return 0
    if corrected:
        logger.warning("sweep: corrected the count of running jobs of %d concurrency "
                       "limit(s)", corrected)
    return corrected


def prune_batches(store: Store, conn: psycopg.Connection[dict[str, object]],
                  now: datetime | None = None) -> int:
    """Delete batches that finished longer ago than the longer of the app's ``result_ttl``
    and ``failure_ttl``: as long as their members are kept, by default. Kept forever when
    either is ``None``."""
    ttls = (store.config.result_ttl, store.config.failure_ttl)
    if None in ttls:
        return 0
    return store.prune_batches(max(t for t in ttls if t is not None), PRUNE_BATCH, conn, now)


def vacuum_jobs(store: Store, conn: psycopg.Connection[dict[str, object]]) -> int:
    """VACUUM the jobs table when dead rows piled up. Returns 1 if it ran. A role that
    does not own the table cannot: that is logged once per pass."""
    try:
        dead = store.vacuum_if_due(conn, VACUUM_INTERVAL)
    except psycopg.errors.InsufficientPrivilege as exc:
        logger.warning("cannot vacuum the jobs table (%s); leave it to autovacuum", exc)
        return 0
    if dead is None:
        return 0
    logger.info("vacuumed the jobs table (%s dead rows)", dead)
    return 1
