"""``Store``: the one object that runs pgwerk's SQL.

One typed method per named statement (``queries.sql``). The store owns the connection
pool, the listening connection and the decoding of rows into ``Job`` records; the user's
``Werk``, the ``Worker``, the completion writer, the heartbeat, the sweep and the cron
scheduler call its methods and never hold SQL of their own.

A method that takes ``conn`` runs on that connection (a heartbeat's or a cron leader's own
connection, or one inside ``transaction()``); without it, on a pooled connection in
autocommit. Maintenance steps take ``now``: the moment to act as if it were (default: the
database's clock), so that each can be run alone at a chosen time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row

from pgwerk.config import WerkConfig
from pgwerk.exceptions import WerkError
from pgwerk.job import TERMINAL_STATUSES, Batch, Execution, Job, WorkerInfo
from pgwerk.store import migrate
from pgwerk.store.connections import CallerConnection, Database, Row, rows_of
from pgwerk.store.notify import Listener, Poller, channel_name, make_listener
from pgwerk.store.rows import batch_from_row, job_from_row, job_like
from pgwerk.store.statements import INSERT_COLUMNS, PLAIN_DEFAULTS, Queries

logger = logging.getLogger(__name__)

#: A statement and its parameters, as the insert steps yield them.
Statement = tuple[bytes, Mapping[str, Any]]
#: The statements of one enqueue: yields statements, is sent their rows, returns the jobs.
InsertSteps = Generator[Statement, list[Row], list["Job | None"]]
#: The statements of a batch: as ``InsertSteps``, returning the batch's id and its jobs.
BatchSteps = Generator[Statement, list[Row], tuple[int, list["Job | None"]]]
T = TypeVar("T")
_TERMINAL = frozenset(s.value for s in TERMINAL_STATUSES)
#: How many times a unique enqueue tries again when the holder of its key ends between
#: its insert and its second look (each time needs another process to take and free it).
_UNIQUE_ROUNDS = 5
#: The statements of the hot path besides the claims and the inserts: prepared, with a
#: generic plan (see ``connections._configure_pooled``); each is covered by a plan test.
PREPARED = frozenset({"job_complete_many", "job_progress_many", "job_heartbeat_many"})
#: Seconds from sending a claim to starting the handler of a rate-limited job it got. The
#: database charges a rate limit at the claim, and the hand-off to a handler takes a
#: varying 1-40 ms; started at a fixed delay instead, the handlers keep the claims'
#: spacing, and a rate limit of N per period lets no more than N be claimed in any window of
#: the period plus this, so that what is left of the hand-off's jitter cannot bunch the
#: starts of two windows into one period either.
RATE_HANDOFF = 0.05


@dataclass(frozen=True)
class Claim:
    """What one claim got: the jobs; from a ``limited`` claim, whether any of the queues
    still has limits, and when it got no job, whether limits held back runnable jobs
    (``held``) and in how many seconds a rate limit lets more start (``retry_in``); the ids
    of the jobs under a rate limit (``rated``: started ``RATE_HANDOFF`` after the claim)."""

    jobs: list[Job]
    limited: bool = False
    held: bool = False
    retry_in: float | None = None
    rated: frozenset[int] = frozenset()


@dataclass(frozen=True)
class OutcomeBatch:
    """The outcomes of a batch of attempts, ready to be written in one transaction
    (``Store.record_outcomes``).

    ``outcomes``: a JSON array, see ``job_complete_many``. ``next_runs``: job id -> spec of
    the next run of a repeating job, inserted only for the jobs whose outcome was written.
    ``progress``: the last progress some attempts reported (a JSON array, see
    ``job_progress_many``), or None. ``batches``: the ids of the batches (``Werk.batch``)
    the jobs belong to, locked first in id order (see ``batch_lock``); none for most
    outcomes. ``slots`` (job id -> queue and function), given by a worker of limited
    queues: the concurrency slots those jobs held are freed when their outcome is written.
    """

    outcomes: str
    next_runs: Mapping[int, Any] = field(default_factory=dict)
    progress: str | None = None
    batches: Sequence[int] = ()
    slots: Mapping[int, tuple[str, str]] | None = None


class Store:
    """pgwerk's tables in one database, schema and prefix.

    Args:
        dsn: libpq connection string or URL.
        config: the app's ``WerkConfig`` (pool sizes, timeouts, serializer, ...).
    """

    def __init__(self, dsn: str, config: WerkConfig) -> None:
        self.config = config
        self.serializer = config.serializer
        self.queries = Queries(config.schema, config.prefix)
        self.channel = channel_name(config.schema, config.prefix)
        # job_insert_plain(_many) as composed for the defaults last used, and their job.
        self._plain: tuple[tuple[Any, ...], bytes, bytes, Job] | None = None
        self.db = Database(dsn, config)
        self.db.on_first_connect(self._prepare_schema)
        self.listener: Listener | Poller = make_listener(self.db, self.channel)

    # -- connections ---------------------------------------------------------------------

    def open(self, deadline: float | None = None) -> None:
        """Open the pool (creating or checking the tables first). Idempotent."""
        self.db.pool(deadline)

    @property
    def is_open(self) -> bool:
        return self.db.is_open

    def close(self) -> None:
        self.listener.stop()
        self.db.close()

    def connect_direct(self, what: str, role: str | None = None) -> psycopg.Connection[Row]:
        """A connection of its own for a long-lived duty (heartbeat, cron leadership),
        passed back to the methods that take ``conn``."""
        return self.db.connect_direct(what, role=role)

    @contextmanager
    def transaction(self, what: str) -> Iterator[psycopg.Connection[Row]]:
        """A pooled connection inside one transaction, for several methods to share."""
        with self.db.connection() as conn, conn.transaction():
            yield conn

    def _prepare_schema(self, conn: psycopg.Connection[Any]) -> None:
        if self.config.auto_migrate:
            migrate.migrate(conn, self.config.schema, self.config.prefix)
        else:
            migrate.check_schema(conn, self.config.schema, self.config.prefix)

    def migrate(self) -> int:
        conn = self.db.connect_direct("migrate")
        try:
            return migrate.migrate(conn, self.config.schema, self.config.prefix)
        finally:
            conn.close()

    def schema_version(self) -> int:
        with self.db.connection() as conn:
            return migrate.current_version(conn, self.config.schema, self.config.prefix)

    # -- running statements ----------------------------------------------------------------

    def fetch(self, name: str, params: Mapping[str, Any] | None = None,
              conn: psycopg.Connection[Any] | None = None) -> list[Row]:
        """Run one named statement (on ``conn``, one of the pool's, else pooled in
        autocommit); its rows. The statements of the hot path (``PREPARED``) are prepared."""
        if conn is None:
            return self.db.fetch(name, self.queries[name], params or {},
                                 prepare=name in PREPARED)
        return rows_of(self._send(conn, name, params))

    def _send(self, conn: psycopg.Connection[Any], name: str,
              params: Mapping[str, Any] | None) -> psycopg.Cursor[Any]:
        """Run one named statement on ``conn`` without reading its rows (in a pipeline, it
        goes out with the next one), prepared as ``fetch`` would."""
        prepare = name in PREPARED and self.db.prepares
        return conn.execute(self.queries[name], params or {}, prepare=prepare)

    def job(self, row: Mapping[str, Any], serializer: Any = None) -> Job:
        """A row of the jobs table as a ``Job`` (never raises: see ``job_from_row``)."""
        return job_from_row(row, serializer or self.serializer)

    # -- enqueue ---------------------------------------------------------------------------

    def insert(self, specs: Sequence[Any], conn: Any = None) -> list[Job | None]:
        """Insert validated job specs (``options.JobSpec``); ``None`` where a key collided.

        ``conn``: the caller's connection (psycopg 3 or 2, SQLAlchemy, Django), to insert in
        its transaction; else a pooled one.
        """
        specs = list(specs)
        if conn is not None:
            caller = CallerConnection(conn)
            if not self.db.is_open:  # creates or checks the tables, as any first use does
                self.open()
            return self._drive(self.insert_steps(specs), caller.fetch)
        if specs and all(spec.plain for spec in specs):
            return self._insert_plain(specs)
        if not any(spec.depends_on or spec.unique for spec in specs):
            query, params = self._insert_statement(specs)
            return self._inserted_jobs(specs, self.db.fetch("enqueue", query, params,
                                                            prepare=True))
        if not any(spec.depends_on for spec in specs):
            # Unique jobs, each statement in its own transaction: a second look for a key's
            # holder then sees what other transactions committed meanwhile.
            return self.db.run("enqueue", lambda db_conn: self._drive(
                self.insert_steps(specs), _fetcher(db_conn)))

        def in_transaction(db_conn: psycopg.Connection[Row]) -> list[Job | None]:
            with db_conn.transaction():
                return self._drive(self.insert_steps(specs), _fetcher(db_conn))

        return self.db.run("enqueue", in_transaction)

    def insert_in(self, conn: psycopg.Connection[Any], specs: Sequence[Any]) -> list[Job | None]:
        """``insert`` on a connection of pgwerk's own, in its current transaction."""
        return self._drive(self.insert_steps(list(specs)), _fetcher(conn))

    async def insert_async(self, conn: psycopg.AsyncConnection[Any],
                           specs: Sequence[Any]) -> list[Job | None]:
        """``insert`` on a caller's asyncio connection, in its transaction."""
        return await self._drive_async(conn, self.insert_steps(list(specs)))

    @staticmethod
    def _drive(steps: Generator[Statement, list[Row], T], fetch: Any) -> T:
        statement = next(steps)
        while True:
            try:
                statement = steps.send(fetch(*statement))
            except StopIteration as done:
                return done.value

    @staticmethod
    async def _drive_async(conn: psycopg.AsyncConnection[Any],
                           steps: Generator[Statement, list[Row], T]) -> T:
        statement = next(steps)
        while True:
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(*statement)
                rows = await cur.fetchall() if cur.description else []
            try:
                statement = steps.send(rows)
            except StopIteration as done:
                return done.value

    def insert_steps(self, specs: list[Any]) -> InsertSteps:
        """The statements of an enqueue as a generator: it yields ``(query, params)``, is
        sent the rows, and returns the jobs; driven on a blocking connection or an asyncio
        one with the same logic."""
        upstream = sorted({d.job_id for s in specs for d in s.depends_on})
        if upstream:
            found = {r["id"]: r["status"] for r in (
                yield self.queries["job_deps_lock"], {"ids": upstream})}
            missing = [i for i in upstream if i not in found]
            if missing:
                raise ValueError(
                    f"_depends_on names job(s) that do not exist: {', '.join(map(str, missing))}"
                )
            for spec in specs:
                pending = [d for d in spec.depends_on if found[d.job_id] not in _TERMINAL]
                broken = [d for d in spec.depends_on
                          if found[d.job_id] in _TERMINAL and found[d.job_id] != "complete"
                          and not d.allow_failure]
                if pending:
                    spec.row["waiting"] = True
                elif broken:
                    spec.row["dep_error"] = (
                        "pgwerk.exceptions.DependencyFailed: dependency " + ", ".join(
                            f"{d.job_id} ({found[d.job_id]})" for d in broken) + " did not complete"
                    )
        if any(spec.unique for spec in specs):
            jobs, written = yield from self._unique_steps(specs)
        else:
            jobs = self._inserted_jobs(specs, (yield self._insert_statement(specs)))
            written = [job is not None for job in jobs]
        if upstream:
            links = [(job.id, d.job_id, d.allow_failure)
                     for job, new, spec in zip(jobs, written, specs, strict=True)
                     if job is not None and new for d in spec.depends_on]
            if links:
                job_ids, up, allow = zip(*links, strict=True)
                yield (self.queries["job_deps_link"],
                       {"job_ids": list(job_ids), "upstream": list(up), "allow": list(allow)})
        return jobs

    def _unique_steps(self, specs: list[Any]) -> Generator[
            Statement, list[Row], tuple[list[Job | None], list[bool]]]:
        """``job_insert_unique`` for a batch with unique jobs: each job written, or the job
        that holds its key; and which ones were written."""
        jobs: list[Job | None] = [None] * len(specs)
        written = [False] * len(specs)
        pending = list(range(len(specs)))
        for _ in range(_UNIQUE_ROUNDS):
            rows = yield self._insert_statement([specs[i] for i in pending], unique=True)
            unseen: dict[str, list[int]] = {}
            for i, row in zip(pending, rows, strict=True):
                if row["id"] is not None:
                    jobs[i], written[i] = self.job(row), not row["existing"]
                elif row["wanted_key"] is not None:
                    unseen.setdefault(row["wanted_key"], []).append(i)
            if not unseen:
                return jobs, written
            # A holder committed by another transaction while the insert ran is invisible
            # to that statement; the next one sees it, unless it ended meanwhile (then
            # the key is free again: insert those jobs once more).
            holders = {row["unique_key"]: row for row in (
                yield self.queries["job_unique_holders"], {"keys": sorted(unseen)})}
            pending = []
            for key, indexes in unseen.items():
                for i in indexes:
                    if key in holders:
                        jobs[i] = self.job(holders[key])
                    else:
                        pending.append(i)
            if not pending:
                return jobs, written
        raise WerkError(f"enqueue: the unique key of {specs[pending[0]].row['function']} was "
                        f"taken and freed again {_UNIQUE_ROUNDS} times while enqueueing it; "
                        "try again")

    def _insert_statement(self, specs: list[Any], unique: bool = False) -> Statement:
        if unique:
            rows = _dumps([[*(spec.row[c] for c in INSERT_COLUMNS),
                            *_unique_columns(spec.unique).values()] for spec in specs])
            return self.queries["job_insert_unique"], {"rows": rows, "channel": self.channel}
        if len(specs) == 1:
            return self.queries["job_insert_one"], {**specs[0].row, "channel": self.channel}
        rows = _dumps([[spec.row[c] for c in INSERT_COLUMNS] for spec in specs])
        return self.queries["job_insert"], {"rows": rows, "channel": self.channel}

    def _plain_statements(self, row: dict[str, Any]) -> tuple[bytes, bytes, Job]:
        """``job_insert_plain`` and ``job_insert_plain_many`` composed for the defaults of
        ``row`` (every plain spec's row holds the app's), and the job they write but for
        what differs from one to the next."""
        defaults = tuple(row[name] for name in PLAIN_DEFAULTS)
        if self._plain is None or self._plain[0] != defaults:
            prototype = job_from_row({**row, "id": 0, "status": "queued", "scheduled_at": None,
                                      "enqueued_at": None, "attempts": 0}, self.serializer,
                                     ((), {}))
            self._plain = (defaults, *self.queries.plain_inserts(row, self.channel), prototype)
        return self._plain[1:]

    def _insert_plain(self, specs: list[Any]) -> list[Job | None]:
        """Jobs without options (``spec.plain``), in one statement of two parameters."""
        one, many, prototype = self._plain_statements(specs[0].row)
        if len(specs) == 1:
            row = specs[0].row
            [(job_id, at, expires_at, _)] = self.db.fetch_tuples(
                "enqueue", one, (row["function"], row["payload"]), prepare=True)
            ids = [job_id]
        else:
            [(ids, at, expires_at, _)] = self.db.fetch_tuples(
                "enqueue", many, ([s.row["function"] for s in specs],
                                  [s.row["payload"] for s in specs]), prepare=True)
        return [job_like(prototype, id=job_id, function=spec.row["function"],
                         args=spec.payload[0], kwargs=spec.payload[1], scheduled_at=at,
                         enqueued_at=at, expires_at=expires_at)
                for job_id, spec in zip(ids, specs, strict=True)]

    def _inserted_jobs(self, specs: list[Any], rows: list[Row]) -> list[Job | None]:
        if len(specs) == 1 and not rows:  # the one-row insert returns nothing on a collision
            return [None]
        return [
            job_from_row({**spec.row, **row, "attempts": 0, "lost": 0, "released": 0,
                          "snoozed": 0}, self.serializer, spec.payload)
            if row["id"] is not None else None
            for spec, row in zip(specs, rows, strict=True)
        ]

    # -- batches ---------------------------------------------------------------------------

    def insert_batch(self, specs: Sequence[Any], callbacks: str, description: str | None,
                     conn: Any = None) -> tuple[int, list[Job | None]]:
        """Write a batch and its members (validated specs) in one transaction: on the
        caller's connection ``conn`` (in its transaction), else a pooled one. ``callbacks``:
        the JSON of the callback jobs per kind. Returns the batch's id and the jobs
        (``None`` where a key collided)."""
        specs = list(specs)
        if conn is not None:
            caller = CallerConnection(conn)
            if not self.db.is_open:
                self.open()
            return self._drive(self.batch_steps(specs, callbacks, description), caller.fetch)

        def in_transaction(db_conn: psycopg.Connection[Row]) -> tuple[int, list[Job | None]]:
            with db_conn.transaction():
                return self._drive(self.batch_steps(specs, callbacks, description),
                                   _fetcher(db_conn))

        return self.db.run("enqueue a batch", in_transaction)

    async def insert_batch_async(self, conn: psycopg.AsyncConnection[Any], specs: Sequence[Any],
                                 callbacks: str, description: str | None
                                 ) -> tuple[int, list[Job | None]]:
        """``insert_batch`` on a caller's asyncio connection, in its transaction."""
        return await self._drive_async(
            conn, self.batch_steps(list(specs), callbacks, description))

    def batch_steps(self, specs: list[Any], callbacks: str,
                    description: str | None) -> BatchSteps:
        """The statements of a batch, as ``insert_steps``: the batch row, its members, then
        the seal, which counts them. Until it is sealed no callback is enqueued, even if
        members end meanwhile (a caller's connection in autocommit); a batch whose members
        all ended as they were written (or that has none) is finished here."""
        rows = yield self.queries["batch_insert"], {
            "description": description, "callbacks": callbacks, "channel": self.channel}
        batch_id = int(rows[0]["id"])
        for spec in specs:
            spec.row["batch_id"] = batch_id
        jobs = (yield from self.insert_steps(specs)) if specs else []
        written = [job for job in jobs if job is not None]
        ended = [job for job in written if job.status.value in _TERMINAL]
        sealed = yield self.queries["batch_seal"], {
            "id": batch_id, "total": len(written), "pending": len(written) - len(ended),
            "failed": sum(1 for job in ended if job.status.value == "failed")}
        if sealed and sealed[0]["pending"] == 0:
            yield self.queries["batch_finish"], {"id": batch_id}
        return batch_id, jobs

    def get_batch(self, batch_id: int) -> Batch | None:
        rows = self.fetch("batch_get", {"id": batch_id})
        return batch_from_row(rows[0]) if rows else None

    def list_batches(self, limit: int, offset: int) -> list[Batch]:
        return [batch_from_row(r)
                for r in self.fetch("batch_list", {"limit": limit, "offset": offset})]

    def resolve_dependents(self, ids: list[int],
                           conn: psycopg.Connection[Any] | None = None) -> int:
        """Promote or fail the waiting dependents of ended jobs, down the chain."""
        total = 0
        while ids:
            rows = self.fetch("deps_resolve", {"ids": ids, "channel": self.channel}, conn)
            total += len(rows)
            ids = [r["id"] for r in rows if r["status"] == "failed" and r["has_dependents"]]
        return total

    # -- reading jobs ----------------------------------------------------------------------

    def get_job_row(self, job_id: int) -> Row | None:
        rows = self.fetch("job_get", {"id": job_id})
        return rows[0] if rows else None

    def get_jobs(self, ids: list[int]) -> dict[int, Job]:
        return {r["id"]: self.job(r) for r in self.fetch("job_get_many", {"ids": ids})}

    def statuses(self, ids: list[int]) -> dict[int, str]:
        """The status of each job that exists."""
        return {r["id"]: r["status"] for r in self.fetch("job_statuses", {"ids": ids})}

    def executions(self, job_id: int) -> list[Execution]:
        return [Execution(**r) for r in self.fetch("execution_list", {"id": job_id})]

    def dependencies(self, job_id: int) -> list[Row]:
        return self.fetch("job_dependencies", {"id": job_id})

    def dependents(self, job_id: int) -> list[Row]:
        return self.fetch("admin_job_dependents", {"id": job_id})

    def functions(self, limit: int) -> list[str]:
        return [r["function"] for r in self.fetch("admin_function_list", {"limit": limit})]

    def list_job_rows(self, where: Mapping[str, Any], limit: int, offset: int) -> list[Row]:
        """Rows matching the admin filter (``Werk._job_filter``), newest first."""
        return self.fetch("admin_job_list", {**where, "limit": limit, "offset": offset})

    def count_jobs(self, where: Mapping[str, Any]) -> int:
        return int(self.fetch("admin_job_count", where)[0]["total"])

    def select_job_ids(self, where: Mapping[str, Any]) -> list[int]:
        return [r["id"] for r in self.fetch("admin_job_select", where)]

    def queue_counts(self) -> list[Row]:
        return self.fetch("queue_stats")

    def queue_latency(self) -> dict[str, float]:
        return {r["queue"]: r["oldest_queued_age"] for r in self.fetch("admin_queue_latency")}

    def throughput(self, minutes: int) -> list[Row]:
        return self.fetch("admin_throughput", {"minutes": minutes})

    def list_workers(self) -> list[WorkerInfo]:
        return [
            WorkerInfo(
                id=r["id"], hostname=r["hostname"], pid=r["pid"], queues=tuple(r["queues"]),
                concurrency=r["concurrency"], pool=r["pool"], started_at=r["started_at"],
                heartbeat_at=r["heartbeat_at"], heartbeat_age=float(r["heartbeat_age"]),
                active_jobs=int(r["active_jobs"]), stopping=r["stopping"],
            )
            for r in self.fetch("worker_list")
        ]

    # -- changing jobs ---------------------------------------------------------------------

    def cancel(self, ids: list[int]) -> list[int]:
        """End unstarted jobs ``aborted``; their dependents are resolved. The ids cancelled."""
        rows = self.fetch("job_cancel", {"ids": ids, "channel": self.channel})
        self.resolve_dependents([r["id"] for r in rows if r["has_dependents"]])
        return [r["id"] for r in rows]

    def abort(self, job_id: int) -> bool:
        return bool(self.fetch("job_abort", {"id": job_id, "channel": self.channel}))

    def requeue(self, ids: list[int]) -> int:
        params = {"ids": ids, "channel": self.channel}
        try:
            return len(self.fetch("job_requeue", params))
        except psycopg.errors.UniqueViolation:
            # A job taking the unique key of one of them was committed while the statement
            # ran; looking again, the statement sees it and leaves that job ended.
            return len(self.fetch("job_requeue", params))

    def touch(self, job_id: int) -> bool:
        return bool(self.fetch("job_touch", {"id": job_id}))

    def purge(self, where: Mapping[str, Any]) -> int:
        return int(self.fetch("admin_job_purge", where)[0]["deleted"])

    def delete_job(self, job_id: int) -> Row | None:
        """Delete a job unless it runs: ``{"status", "deleted"}``, None if it did not exist."""
        rows = self.fetch("admin_job_delete", {"id": job_id})
        return rows[0] if rows else None

    def truncate(self) -> None:
        self.fetch("truncate")

    # -- queue limits --------------------------------------------------------------------

    def set_queue_limit(self, queue: str, function: str, *, rate: tuple[int, float] | None,
                        set_rate: bool, concurrency: int | None,
                        set_concurrency: bool) -> None:
        """Set or remove (``None``) the parts flagged ``set_*`` of a queue's limits
        (``function`` ``""``) or of one function's in it; a row left without limits goes."""
        self.fetch("queue_limit_set", {
            "queue": queue, "function": function, "set_rate": set_rate,
            "rate_limit": rate[0] if rate else None, "rate_period": rate[1] if rate else None,
            "set_concurrency": set_concurrency, "concurrency": concurrency,
            "channel": self.channel})

    def queue_limits(self, queue: str | None = None) -> list[Row]:
        """The limits of ``queue`` (or of every queue), with their use now."""
        return self.fetch("queue_limit_list", {"queue": queue})

    def has_limits(self, queues: list[str]) -> bool:
        """Whether any of ``queues`` has limits."""
        return bool(self.fetch("queue_limits_exist", {"queues": queues})[0]["limited"])

    def free_slots(self, jobs: Sequence[tuple[str, str]],
                   conn: psycopg.Connection[Any] | None = None) -> None:
        """Free the concurrency slots of jobs (their queue and function) that stopped
        running; on ``conn``, in the transaction that recorded their end."""
        if jobs:
            self.fetch("queue_limits_free", {
                "queues": [q for q, _ in jobs], "functions": [f for _, f in jobs],
                "channel": self.channel}, conn)

    def recount_limits(self) -> int:
        """Set the count of running jobs of every concurrency limit to the truth, in a
        short transaction of its own (claims of those queues wait meanwhile). Returns how
        many limits were off."""

        def recount(conn: psycopg.Connection[Row]) -> int:
            with conn.transaction():
                if not self.fetch("queue_limits_lock", {}, conn):
                    return 0
                return len(self.fetch("queue_limits_recount", {}, conn))

        return self.db.run("recount limits", recount)

    # -- the worker's hot path -----------------------------------------------------------

    def claim(self, strategy: str, queues: list[str], limit: int, worker_id: str,
              free: int | None = None, limited: bool = False) -> Claim:
        """Claim up to ``limit`` runnable jobs of ``queues`` for ``worker_id``, in the
        order the dequeue ``strategy`` gives.

        ``limited``: some of the queues have limits, to be obeyed (``job_claim_limited``);
        the plain claim leaves such queues alone. ``free``: the worker's free slots, the
        most a limited queue gives (default ``limit``).
        """
        name = f"job_claim_limited_{strategy}" if limited else f"job_claim_{strategy}"
        params: dict[str, Any] = {"queues": queues, "limit": limit, "worker": worker_id}
        if limited:
            params["free"] = limit if free is None else free
            params["handoff"] = RATE_HANDOFF
        elif len(queues) == 1:  # the common worker: a claim that is cheaper to plan
            name, params = "job_claim_one", {"queue": queues[0], "limit": limit,
                                             "worker": worker_id}
        rows = self.db.fetch("claim jobs", self.queries[name], params, prepare=True)
        jobs = []
        for row in rows:
            if row["id"] is not None:
                row["worker_id"], row["heartbeat_at"] = worker_id, row["started_at"]
                jobs.append(job_from_row(row, self.serializer))
        if not limited:
            return Claim(jobs)
        found = bool(rows and rows[0]["limited"])
        if jobs:
            rated = frozenset(row["id"] for row in rows if row["rated"])
            return Claim(jobs, limited=found, rated=rated)
        retry_in = rows[0]["retry_in"]
        return Claim(jobs, limited=found, held=bool(rows[0]["held"]),
                     retry_in=None if retry_in is None else max(0.0, float(retry_in)))

    def record_outcomes(self, worker_id: str, batch: OutcomeBatch) -> set[int]:
        """One transaction: the last progress some attempts reported, the outcomes of a
        batch, the dependents of the jobs that ended, the next run of repeating jobs and
        the slots of limited queues (see ``OutcomeBatch``). Returns the ids whose outcome
        was written.

        Pipelined: two round trips, one of them the commit, plus one per step that only
        some batches need (slots, dependents, repeats), which reads what the outcomes
        wrote."""

        def write(conn: psycopg.Connection[Row]) -> set[int]:
            pipelined = conn.pipeline() if psycopg.Pipeline.is_supported() else nullcontext()
            with pipelined, conn.transaction():
                if batch.batches:
                    self._send(conn, "batch_lock", {"ids": sorted(batch.batches)})
                if batch.progress is not None:
                    self._send(conn, "job_progress_many",
                               {"batch": batch.progress, "worker": worker_id})
                rows = self._send(conn, "job_complete_many", {
                    "batch": batch.outcomes, "worker": worker_id,
                    "channel": self.channel}).fetchall()
                recorded = {row["id"] for row in rows}
                if batch.slots:
                    self.free_slots([batch.slots[i] for i in recorded if i in batch.slots],
                                    conn)
                ended = [row["id"] for row in rows if row["has_dependents"]
                         and row["status"] not in ("queued", "scheduled")]
                if ended:
                    self.resolve_dependents(ended, conn)
                repeats = [spec for job_id, spec in batch.next_runs.items()
                           if job_id in recorded]
                if repeats:
                    self.insert_in(conn, repeats)
            return recorded

        return self.db.run("record outcomes", write)

    def record_progress(self, worker_id: str, progress: str) -> set[int]:
        """Write the progress of running jobs (a JSON array, see ``job_progress_many``),
        each only while its attempt is still ``worker_id``'s. Returns the ids written."""
        rows = self.fetch("job_progress_many", {"batch": progress, "worker": worker_id})
        return {row["id"] for row in rows}

    def fail_unrecordable(self, worker_id: str, job_id: int, attempt: int,
                          reason: str) -> set[int]:
        """End one attempt ``failed`` with ``reason`` (the last resort for an outcome the
        batch could not write). Returns ``{job_id}`` if it was still this worker's."""
        rows = self.fetch("job_fail_unrecordable", {
            "id": job_id, "attempt": attempt, "worker": worker_id,
            "error": reason.replace("\x00", "\\x00"), "channel": self.channel})
        if rows and rows[0]["has_dependents"]:
            self.resolve_dependents([job_id])
        return {row["id"] for row in rows}

    def release(self, worker_id: str, ids: list[int]) -> list[Row]:
        """Put back jobs a stopping worker did not finish (see ``job_release_many``).
        Rows of the jobs put back: ``id``, ``status`` (``queued``, or ``aborted`` for one
        that was asked to abort)."""
        rows = self.fetch("job_release_many",
                          {"ids": ids, "worker": worker_id, "channel": self.channel})
        self.resolve_dependents([r["id"] for r in rows
                                 if r["status"] == "aborted" and r["has_dependents"]])
        return rows

    def unclaim(self, worker_id: str, ids: list[int]) -> list[Row]:
        """Give back claimed jobs that never started, as if never claimed."""
        rows = self.fetch("job_unclaim_many",
                          {"ids": ids, "worker": worker_id, "channel": self.channel})
        self.resolve_dependents([r["id"] for r in rows
                                 if r["status"] == "aborted" and r["has_dependents"]])
        return rows

    def stage_scheduled(self, now: datetime | None = None) -> tuple[int, float | None]:
        """Queue the scheduled jobs that are due: how many, and seconds until the next."""
        rows = self.fetch("job_stage_scheduled", {"channel": self.channel, "now": now})
        if not rows:
            return 0, None
        due_in = rows[0]["next_due_in"]
        return int(rows[0]["staged"]), None if due_in is None else float(due_in)

    # -- workers ---------------------------------------------------------------------------

    def register_worker(self, registration: Mapping[str, Any],
                        conn: psycopg.Connection[Any] | None = None) -> None:
        self.fetch("worker_register", registration, conn)

    def worker_stopping(self, worker_id: str) -> None:
        self.fetch("worker_stopping", {"id": worker_id})

    def unregister_worker(self, worker_id: str) -> None:
        self.fetch("worker_unregister", {"id": worker_id})

    def heartbeat(self, conn: psycopg.Connection[Any], worker_id: str,
                  job_ids: list[int]) -> Row:
        """Renew the worker and its heartbeating jobs: ``registered`` (0 once presumed
        dead), ``aborting`` (ids asked to abort), ``held`` (``"id:attempt"`` it holds)."""
        return self.fetch("job_heartbeat_many", {"worker": worker_id, "job_ids": job_ids},
                          conn)[0]

    # -- maintenance (the sweep) ---------------------------------------------------------

    def sweep_lock(self, conn: psycopg.Connection[Any], key: int) -> bool:
        """Lead this transaction's sweep, if no one else does (and bound its waits)."""
        return bool(self.fetch("sweep_lock", {"lock": key}, conn)[0]["leader"])

    def rescue_orphans(self, conn: psycopg.Connection[Any] | None = None,
                       now: datetime | None = None) -> list[Row]:
        """Requeue (or fail, or end aborted) active jobs whose worker or heartbeat is gone;
        their dependents are resolved, stale group slots freed."""
        rows = self.fetch("sweep_rescue_orphans", {
            "max_active": self.config.max_active_secs, "max_lost": self.config.max_lost,
            "channel": self.channel, "now": now}, conn)
        self.resolve_dependents(
            [r["id"] for r in rows if r["status"] != "queued" and r["has_dependents"]], conn)
        self.fetch("sweep_release_groups", {}, conn)
        return rows

    def expire(self, conn: psycopg.Connection[Any] | None = None,
               now: datetime | None = None) -> int:
        """End unstarted jobs past their ``_ttl`` as ``expired``."""
        rows = self.fetch("sweep_expire", {"channel": self.channel, "now": now}, conn)
        self.resolve_dependents([r["id"] for r in rows if r["has_dependents"]], conn)
        return len(rows)

    def resolve_waiting(self, conn: psycopg.Connection[Any] | None = None) -> int:
        """Promote or fail every waiting job whose dependencies all ended."""
        rows = self.fetch("deps_resolve_all", {"ids": None, "channel": self.channel}, conn)
        failed = [r["id"] for r in rows if r["status"] == "failed" and r["has_dependents"]]
        return len(rows) + self.resolve_dependents(failed, conn)

    def prune(self, limit: int, conn: psycopg.Connection[Any] | None = None,
              now: datetime | None = None) -> int:
        """Delete up to ``limit`` ended jobs past their retention."""
        return int(self.fetch("sweep_prune", {"limit": limit, "now": now}, conn)[0]["deleted"])

    def prune_batches(self, keep: float, limit: int,
                      conn: psycopg.Connection[Any] | None = None,
                      now: datetime | None = None) -> int:
        """Delete up to ``limit`` batches that finished more than ``keep`` seconds ago."""
        return int(self.fetch("sweep_prune_batches", {"keep": keep, "limit": limit, "now": now},
                              conn)[0]["deleted"])

    def forget_workers(self, older_than: float, conn: psycopg.Connection[Any] | None = None,
                       now: datetime | None = None) -> int:
        """Drop rows of workers silent for ``older_than`` seconds."""
        return len(self.fetch("sweep_forget_workers", {"older_than": older_than, "now": now},
                              conn))

    def vacuum_if_due(self, conn: psycopg.Connection[Any], min_interval: float) -> int | None:
        """VACUUM the jobs table when dead rows piled up (``conn`` outside a transaction).
        The number of dead rows it cleared, None if it was not due."""
        rows = self.fetch("sweep_vacuum_due", {"min_interval": min_interval}, conn)
        if not rows or not rows[0]["due"]:
            return None
        self.fetch("sweep_vacuum", {}, conn)
        return int(rows[0]["dead"])

    # -- cron and leadership --------------------------------------------------------------

    def cron_upsert(self, schedules: Mapping[str, list[str]],
                    conn: psycopg.Connection[Any] | None = None) -> None:
        self.fetch("cron_upsert", schedules, conn)

    def cron_state(self, conn: psycopg.Connection[Any], names: list[str]) -> list[Row]:
        return self.fetch("cron_state", {"names": names}, conn)

    def cron_advance(self, conn: psycopg.Connection[Any], names: list[str],
                     last_ticks: list[datetime], next_ticks: list[datetime | None]) -> None:
        self.fetch("cron_advance", {"names": names, "last_ticks": last_ticks,
                                    "next_ticks": next_ticks}, conn)

    def cron_list(self) -> list[Row]:
        return self.fetch("cron_list")

    def cron_pause(self, name: str, paused: bool) -> bool:
        return bool(self.fetch("cron_pause", {"name": name, "paused": paused}))

    def cron_delete(self, name: str) -> bool:
        return bool(self.fetch("cron_delete", {"name": name}))

    def advisory_lock(self, conn: psycopg.Connection[Any], key: int) -> bool:
        """Try to take a session advisory lock on ``conn``."""
        rows = self.fetch("cron_lock", {"lock": key}, conn)
        return bool(rows and rows[0]["leader"])

    def advisory_unlock(self, conn: psycopg.Connection[Any], key: int) -> None:
        self.fetch("cron_unlock", {"lock": key}, conn)

    def lease_acquire(self, conn: psycopg.Connection[Any], name: str, holder: str,
                      ttl: float) -> bool:
        return bool(self.fetch("lease_acquire", {"name": name, "holder": holder, "ttl": ttl},
                               conn))

    def lease_release(self, conn: psycopg.Connection[Any], name: str, holder: str) -> None:
        self.fetch("lease_release", {"name": name, "holder": holder}, conn)


#: JSON for the batch insert's one parameter; ``_at`` is the only value JSON lacks a type for.
_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                          default=datetime.isoformat).encode


def _unique_columns(unique: Any) -> dict[str, Any]:
    """The ``UNIQUE_COLUMNS`` of one job (``options.UniqueKey``, or None for the jobs of a
    batch that are not unique)."""
    if unique is None:
        return {"unique_base": None, "unique_states": None, "unique_period": None}
    return {"unique_base": unique.key, "unique_states": ",".join(unique.states),
            "unique_period": unique.period}


def _fetcher(conn: psycopg.Connection[Any]) -> Any:
    def fetch(query: bytes, params: Mapping[str, Any]) -> list[Row]:
        return rows_of(conn.execute(query, params))
    return fetch
