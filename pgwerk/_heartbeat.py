"""The worker's heartbeat: on a thread and a connection of its own, so that nothing else
the worker does (a sweep waiting on a lock, claims and completions filling the pool,
handlers using the pool) can make it late and get a live worker's jobs rescued.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import psycopg

from pgwerk.store.connections import UNREACHABLE, Row

if TYPE_CHECKING:
    from pgwerk.worker import Worker

logger = logging.getLogger(__name__)



class Heartbeat:
    """Renews the worker's row and its heartbeating jobs, and reads back what the database
    says the worker holds; hands that to ``worker.on_heartbeat``."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.store = worker.store
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._conn: psycopg.Connection[Row] | None = None
        self._thread = threading.Thread(target=self._run, name="pgwerk-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def started(self) -> bool:
        return self._thread.ident is not None

    def wake(self) -> None:
        """Beat again now: a job with a shorter ``_heartbeat`` started."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5.0)
        self._close()

    def _run(self) -> None:
        worker = self.worker
        last_beat = time.monotonic()
        failures = 0
        while not self._stop.is_set():
            job_beats = worker.heartbeat_jobs()
            interval = min([worker.heartbeat_interval, *job_beats.values()])
            if failures:
                interval = min(interval, 0.1 * 2 ** failures)
            wait = last_beat + interval - time.monotonic()
            if wait > 0:
                # Woken early when a job with a shorter _heartbeat starts: its renewals
                # must keep its own pace from the first one, not the worker's interval.
                self._wake.wait(wait)
                self._wake.clear()
                continue
            last_beat = time.monotonic()
            try:
                running = worker.running_attempts()
                row = self._beat(list(job_beats))
                failures = 0
            except UNREACHABLE as exc:
                failures = min(failures + 1, 5)
                logger.warning("heartbeat failed: database unreachable (%s)", exc)
                self._close()
                continue
            except Exception:
                failures = min(failures + 1, 5)
                logger.exception("heartbeat failed")
                self._close()
                continue
            try:
                worker.on_heartbeat(row, running)
            except Exception:
                logger.exception("acting on the heartbeat failed")

    def _connection(self) -> psycopg.Connection[Row]:
        conn = self._conn
        if conn is None or conn.closed:
            conn = self.store.connect_direct("heartbeat", role="heartbeat")
            self._conn = conn
        return conn

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # pragma: no cover - closing a broken connection
                pass

    def _beat(self, job_ids: list[int]) -> dict[str, Any]:
        conn = self._connection()
        worker = self.worker
        row = self.store.heartbeat(conn, worker.id, job_ids)
        if not row["registered"]:
            logger.warning("worker %s was presumed dead (heartbeat too late); re-registering",
                           worker.id)
            self.store.register_worker(registration(worker), conn)
        return row


def registration(worker: Worker) -> dict[str, Any]:
    """The parameters of ``worker_register`` for this worker."""
    return {
        "id": worker.id, "hostname": socket.gethostname(), "pid": os.getpid(),
        "queues": worker.queues, "concurrency": worker.concurrency, "pool": worker.pool_kind,
        "heartbeat_interval": worker.heartbeat_interval,
    }
