"""For the chaos test: a PostgreSQL server the test owns (so it may restart it), and the
handler the chaos jobs run, which records every run in a table of its own.

The handler is imported by worker subprocesses as ``tests.chaos_support.record_run``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import warnings
from typing import Any

import psycopg
from psycopg import sql

from pgwerk import Context, Werk

RUNS_TABLE = "chaos_runs"


# -- the runs table and the handler --------------------------------------------------------


def create_runs_table(app: Werk) -> None:
    app.connect()  # creates the schema
    with psycopg.connect(app.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (job_id bigint NOT NULL, pid int NOT NULL,"
            " attempt int NOT NULL, started_at timestamptz NOT NULL DEFAULT clock_timestamp())"
        ).format(sql.Identifier(app.config.schema, RUNS_TABLE)))


def runs(app: Werk) -> list[tuple[int, int, int]]:
    """Every recorded run: (job id, worker pid, attempt), in start order."""
    with psycopg.connect(app.dsn, autocommit=True) as conn:
        return [(r[0], r[1], r[2]) for r in conn.execute(sql.SQL(
            "SELECT job_id, pid, attempt FROM {} ORDER BY started_at"
        ).format(sql.Identifier(app.config.schema, RUNS_TABLE))).fetchall()]


_local = threading.local()


def _insert_run(app: Werk, job_id: int, attempt: int) -> None:
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = _local.conn = psycopg.connect(app.dsn, autocommit=True, connect_timeout=2)
    conn.execute(sql.SQL("INSERT INTO {} (job_id, pid, attempt) VALUES (%s, %s, %s)").format(
        sql.Identifier(app.config.schema, RUNS_TABLE)), (job_id, os.getpid(), attempt))


def record_run(ctx: Context, seconds: float = 0.0) -> int:
    """Records that this process started the job, then works ``seconds``. The record is
    retried while the database is away (a restart, killed connections), so that the
    handler itself never fails: only the queue's own machinery decides about re-runs."""
    deadline = time.monotonic() + 60.0
    while True:
        try:
            _insert_run(ctx.app, ctx.job.id, ctx.job.attempts)
            break
        except psycopg.OperationalError:
            old = getattr(_local, "conn", None)
            _local.conn = None
            if old is not None:
                old.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    if seconds:
        time.sleep(seconds)
    return ctx.job.id


# -- a PostgreSQL server of the test's own ---------------------------------------------------


class OwnServer:
    """An embedded PostgreSQL (pgserver) in a temporary directory, which the test may
    stop and start again on the same data directory and socket, so the DSN stays valid."""

    def __init__(self) -> None:
        from tests.conftest import _start_embedded_server

        self.server, self.base = _start_embedded_server()
        self.dsn = str(self.server.get_uri())
        self.socket_dir = self.server.get_postmaster_info().socket_dir

    def _pg_ctl(self, args: list[str]) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(args, pgdata=self.server.pgdata, user=self.server.system_user, timeout=60)

    def stop(self) -> None:
        self._pg_ctl(["-w", "-m", "fast", "stop"])

    def start(self) -> None:
        # As pgserver starts it: no TCP, the same socket directory.
        self._pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l",
                      str(self.server.log), "start"])

    def restart(self, down_for: float = 1.0) -> None:
        self.stop()
        time.sleep(down_for)  # stay down long enough for every worker to notice
        self.start()

    def close(self) -> None:
        # pgserver remembers the process it started; after a restart it would not stop
        # the new one, so stop it here first.
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # already down
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.server.cleanup()
        shutil.rmtree(self.base, ignore_errors=True)

    def terminate_backends(self, application_name: str) -> int:
        """Kill every connection of that application name, as a DBA or a failover would."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            rows: list[Any] = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s AND pid <> pg_backend_pid()",
                (application_name,)).fetchall()
        return sum(1 for r in rows if r[0])
