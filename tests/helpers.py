"""Helpers for tests: waiting on a condition, writing rows in any state, watching NOTIFY."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pgwerk import Job, JobStatus, Werk

T = TypeVar("T")


def eventually(condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.02,
               message: str | None = None) -> T:
    """Call ``condition`` until it returns something truthy and return that.

    An ``AssertionError`` raised by ``condition`` counts as "not yet". After ``timeout``
    seconds raise ``AssertionError`` saying what was awaited and the last value or error.
    """
    deadline = time.monotonic() + timeout
    while True:
        last_error: AssertionError | None = None
        try:
            value = condition()
        except AssertionError as exc:
            value, last_error = None, exc  # type: ignore[assignment]
        if value:
            return value
        if time.monotonic() >= deadline:
            what = message or getattr(condition, "__name__", repr(condition))
            detail = f"last error: {last_error}" if last_error else f"last value: {value!r}"
            raise AssertionError(f"not true after {timeout}s: {what} ({detail})")
        time.sleep(interval)


# -- rows ------------------------------------------------------------------------------


def table(app: Werk, name: str = "jobs") -> sql.Composable:
    """The quoted, schema-qualified name of one of the app's tables."""
    return sql.Identifier(app.config.schema, f"{app.config.prefix}_{name}")


TABLES = ("jobs", "job_deps", "job_groups", "executions", "workers", "cron", "migrations",
          "batches", "queue_limits")


def query(app: Werk, statement: str, params: Any = None) -> list[dict[str, Any]]:
    """Run a statement on a connection of its own; ``{jobs}``, ``{executions}`` ... name the
    app's tables."""
    composed = sql.SQL(statement).format(**{name: table(app, name) for name in TABLES})
    with psycopg.connect(app.dsn, autocommit=True, row_factory=dict_row) as conn:
        cur = conn.execute(composed, params)
        return cur.fetchall() if cur.description else []


def count_rows(app: Werk, name: str = "jobs") -> int:
    with psycopg.connect(app.dsn, autocommit=True) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table(app, name))).fetchone()
    assert row is not None
    return int(row[0])


def set_columns(app: Werk, job_id: int, **columns: Any) -> None:
    """UPDATE one job row. A value that is a ``psycopg.sql.Composable`` is used as an SQL
    expression (``sql.SQL("now() - interval '1 hour'")``); anything else is a parameter."""
    assignments = []
    params: list[Any] = []
    for name, value in columns.items():
        if isinstance(value, sql.Composable):
            assignments.append(sql.SQL("{} = {}").format(sql.Identifier(name), value))
        else:
            assignments.append(sql.SQL("{} = %s").format(sql.Identifier(name)))
            params.append(value)
    statement = sql.SQL("UPDATE {} SET {} WHERE id = %s").format(
        table(app), sql.SQL(", ").join(assignments))
    with psycopg.connect(app.dsn, autocommit=True) as conn:
        cur = conn.execute(statement, [*params, job_id])
        assert cur.rowcount == 1, f"no job {job_id}"


def ago(seconds: float) -> sql.Composable:
    """An SQL expression for a moment ``seconds`` before the database's now()."""
    return sql.SQL("now() - make_interval(secs => {})").format(sql.Literal(float(seconds)))


def make_job(app: Werk, func: str = "tests.jobs.noop", *, args: tuple[Any, ...] = (),
             kwargs: dict[str, Any] | None = None, options: dict[str, Any] | None = None,
             **columns: Any) -> Job:
    """A job in any state: enqueued normally, then its row rewritten with ``columns``.

    ``make_job(app, status="failed", attempts=1, error="boom", completed_at=ago(60))``
    builds what a worker would have left, without running one.
    """
    job = app.enqueue(func, *args, **(kwargs or {}), **(options or {}))
    assert job is not None
    if columns:
        set_columns(app, job.id, **columns)
    return app.get_job(job.id)


def backend_pid(app: Werk) -> int:
    """The server process of the pooled connection that runs the app's next statement."""
    return int(app._store.db.fetch("test", b"SELECT pg_backend_pid() AS pid")[0]["pid"])


# -- moments -------------------------------------------------------------------------------


def most_in_any_window(moments: list[datetime], window: timedelta) -> int:
    """The most of ``moments`` that fall in one window ``[t, t + window)``, for any ``t``
    (exact: timestamps are compared as they are, not as floats)."""
    ordered = sorted(moments)
    most = first = 0
    for last, moment in enumerate(ordered):
        while ordered[first] <= moment - window:
            first += 1
        most = max(most, last - first + 1)
    return most


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The most of ``(start, end)`` intervals that overlap at one moment (an interval
    ending when another starts does not overlap it)."""
    edges = sorted([(end, -1) for _, end in intervals] + [(start, 1) for start, _ in intervals])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


# -- notifications -----------------------------------------------------------------------


class ChannelSpy:
    """LISTENs on a channel. ``payloads()`` returns what arrived so far, in order; to know
    that nothing else is on its way it sends a marker of its own from another session and
    reads up to it (notifications arrive in commit order), so no test sleeps and hopes."""

    def __init__(self, dsn: str, channel: str) -> None:
        self.dsn = dsn
        self.channel = channel
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))

    def payloads(self, timeout: float = 10.0) -> list[str]:
        marker = f"spy-marker:{uuid.uuid4().hex}"
        with psycopg.connect(self.dsn, autocommit=True) as other:
            other.execute("SELECT pg_notify(%s, %s)", (self.channel, marker))
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for note in self.conn.notifies(timeout=max(0.0, deadline - time.monotonic())):
                if note.payload == marker:
                    return seen
                seen.append(note.payload)
        raise AssertionError(f"the marker notification did not arrive in {timeout}s; got {seen}")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> ChannelSpy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def job_ids(jobs: list[Job | None]) -> list[int | None]:
    return [j.id if j is not None else None for j in jobs]


# -- child processes -----------------------------------------------------------------------


def connect_in_child(dsn: str, schema: str, barrier: Any) -> None:
    """Target of a spawned process: wait for the others, then connect (and so migrate)."""
    barrier.wait(timeout=60)
    app = Werk(dsn, schema=schema)
    try:
        app.connect()
        assert app.enqueue("tests.jobs.noop") is not None
    finally:
        app.close()


def enqueue_unique_in_child(dsn: str, schema: str, barrier: Any, results: Any,
                            rounds: int) -> None:
    """Target of a spawned process: connect, then per round wait for the others and enqueue
    the round's unique job at once with them; put ``(round, job id)`` on ``results``."""
    app = Werk(dsn, schema=schema, max_pool_size=1)
    try:
        app.connect()
        for round_ in range(rounds):
            barrier.wait(timeout=60)
            job = app.enqueue("tests.jobs.add", round_, 0, _unique=True)
            results.put((round_, job.id if job is not None else None))
    finally:
        app.close()


def job_record(**changes: Any) -> Job:
    """A ``Job`` record built in memory (job 7, queued, no attempt yet), with ``changes``."""
    now = datetime.now(timezone.utc)
    base = Job(id=7, function="tests.jobs.noop", queue="default", status=JobStatus.Queued,
               priority=0, args=(), kwargs={}, attempts=0, max_attempts=1, retry_intervals=(),
               scheduled_at=now, enqueued_at=now)
    return dataclasses.replace(base, **changes)
