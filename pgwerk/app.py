"""``Werk``: the app object. Connects lazily, enqueues, waits for results, manages jobs.

Each method validates its input, runs one named statement and returns a record.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import psycopg

from pgwerk import _migrate
from pgwerk._allowlist import check_enqueue
from pgwerk._db import CallerConnection, Database, Row, as_arrays
from pgwerk._notify import Listener, Poller, Waiters, channel_name, make_listener
from pgwerk._rows import job_from_row
from pgwerk._sql import Queries
from pgwerk._validate import BIGINT_MAX, integer, job_id_or_none, seconds
from pgwerk.config import WerkConfig
from pgwerk.exceptions import ConfigurationError, JobError, JobNotFound, WerkError
from pgwerk.job import (
    TERMINAL_STATUSES,
    EnqueueParams,
    Execution,
    Job,
    JobStatus,
    WorkerInfo,
)
from pgwerk.options import (
    INSERT_COLUMNS,
    JobSpec,
    build_spec,
    params_from_call,
    plain_spec,
    plain_template,
)

logger = logging.getLogger(__name__)

Fetch = Callable[[bytes, Mapping[str, Any]], list[Row]]
Statement = tuple[bytes, Mapping[str, Any]]
#: What ``Werk._insert_steps`` is: yields statements, is sent their rows, returns the jobs.
InsertSteps = Generator[Statement, list[Row], list["Job | None"]]
_TERMINAL = {s.value for s in TERMINAL_STATUSES}


def resolve_dsn(dsn: str | None) -> str:
    """The DSN argument, else ``$PGWERK_DSN``, else ``$DATABASE_URL``."""
    found = dsn or os.environ.get("PGWERK_DSN") or os.environ.get("DATABASE_URL")
    if not found:
        raise ConfigurationError(
            "no database given: pass a DSN to Werk(...) or set PGWERK_DSN "
            "(or DATABASE_URL), e.g. PGWERK_DSN=postgresql://user@localhost/mydb"
        )
    if not isinstance(found, str):
        raise ConfigurationError(f"the DSN must be a string, got {type(found).__name__}")
    return found


class Werk:
    """A job queue in PostgreSQL.

    Args:
        dsn: libpq connection string or URL; default ``$PGWERK_DSN``, then ``$DATABASE_URL``.
        config: a ``WerkConfig``; keyword arguments override its fields.
        **options: any ``WerkConfig`` field (``schema``, ``prefix``, ``max_pool_size``,
            ``serializer``, ``auto_migrate``, ``result_ttl``, ...).

    Example::

        app = Werk("postgresql://localhost/mydb")
        with app:
            job = app.enqueue("myapp.tasks.send_email", to="a@b.c", _queue="mail")
    """

    def __init__(self, dsn: str | None = None, *, config: WerkConfig | None = None,
                 **options: Any) -> None:
        if config is not None and not isinstance(config, WerkConfig):
            raise ConfigurationError(f"config must be a WerkConfig, got {type(config).__name__}")
        self.config = (config or WerkConfig()).merged(**options)
        self.dsn = resolve_dsn(dsn)
        self.serializer = self.config.serializer
        self.queries = Queries(self.config.schema, self.config.prefix)
        self.channel = channel_name(self.config.schema, self.config.prefix)
        self._db = Database(self.dsn, self.config)
        self._db.on_first_connect(self._prepare_schema)
        self._listener = make_listener(self._db, self.channel)
        self._waiters = Waiters()
        self._waiting_subscribed = False
        self._plain: JobSpec | None = None

    def __repr__(self) -> str:
        return f"<Werk schema={self.config.schema!r} prefix={self.config.prefix!r}>"

    # -- lifecycle -------------------------------------------------------------------

    def connect(self) -> Werk:
        """Open the pool now (otherwise the first call that needs it does). Idempotent."""
        self._db.pool()
        return self

    def close(self) -> None:
        """Stop listening and close the pool. The app reconnects if used again."""
        self._listener.stop()
        self._db.close()

    def __enter__(self) -> Werk:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _prepare_schema(self, conn: psycopg.Connection[Any]) -> None:
        if self.config.auto_migrate:
            _migrate.migrate(conn, self.config.schema, self.config.prefix)
        else:
            _migrate.check_schema(conn, self.config.schema, self.config.prefix)

    def migrate(self) -> int:
        """Create or upgrade the tables now; returns how many migrations ran."""
        conn = self._db.connect_direct("migrate")
        try:
            return _migrate.migrate(conn, self.config.schema, self.config.prefix)
        finally:
            conn.close()

    def migration_sql(self) -> str:
        """The DDL ``migrate`` would run on an empty database, for a DBA to review."""
        return _migrate.migration_sql(self.config.schema, self.config.prefix)

    @property
    def db(self) -> Database:
        return self._db

    @property
    def listener(self) -> Listener | Poller:
        return self._listener

    def fetch(self, name: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        """Run the named statement on a pooled connection (autocommit)."""
        return self._db.fetch(name, self.queries[name], params or {})

    # -- enqueue ---------------------------------------------------------------------

    def enqueue(self, func: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> Job | None:
        """Enqueue ``func(*args, **kwargs)``.

        Keyword arguments starting with ``_`` are options (``_queue``, ``_priority``,
        ``_delay``, ``_at``, ``_retry``, ``_timeout``, ``_heartbeat``, ``_key``, ``_group``,
        ``_meta``, ``_ttl``, ``_result_ttl``, ``_failure_ttl``, ``_failure_mode``,
        ``_on_success``, ``_on_failure``, ``_on_stopped``, ``_repeat``, ``_depends_on``,
        ``_conn``); the rest is the handler's payload.

        Returns:
            The stored ``Job``, or ``None`` when a job with the same ``_key`` exists.
        """
        for name in kwargs:
            if name[:1] == "_":
                params, conn = params_from_call(func, args, kwargs)
                return self.enqueue_specs([build_spec(params, self.config)], conn)[0]
        # No options: the common case, without re-validating the defaults every time.
        if self._plain is None:
            self._plain = plain_template(self.config)
        return self.enqueue_specs([plain_spec(self._plain, func, args, kwargs, self.config)])[0]

    def enqueue_many(self, params: Sequence[EnqueueParams], _conn: Any = None) -> list[Job | None]:
        """Enqueue many jobs in one statement; results in input order, ``None`` where a
        key collided."""
        specs = self._many_specs(params)
        return self.enqueue_specs(specs, _conn) if specs else []

    def _many_specs(self, params: Sequence[EnqueueParams]) -> list[JobSpec]:
        if isinstance(params, (str, bytes)) or not isinstance(params, Sequence):
            raise TypeError("enqueue_many takes a list of EnqueueParams")
        for i, item in enumerate(params):
            if not isinstance(item, EnqueueParams):
                raise TypeError(
                    f"enqueue_many: item {i} is {type(item).__name__}, not EnqueueParams")
        return [build_spec(p, self.config) for p in params]

    def enqueue_specs(self, specs: list[JobSpec], conn: Any = None) -> list[Job | None]:
        """Insert validated specs, on the caller's connection or a pooled one."""
        check_enqueue(self, (spec.row for spec in specs))
        if conn is not None:
            caller = CallerConnection(conn)
            if not self._db.is_open:  # creates or checks the tables, as any first use does
                self._db.pool(deadline=time.monotonic() + self.config.enqueue_timeout)
            return self.insert_specs(caller.fetch, specs)
        if not any(spec.depends_on for spec in specs):
            query, params = self._insert_statement(specs)
            return self._inserted_jobs(specs, self._db.fetch("enqueue", query, params))

        def in_transaction(db_conn: psycopg.Connection[Row]) -> list[Job | None]:
            with db_conn.transaction():
                def fetch(query: bytes, params: Mapping[str, Any]) -> list[Row]:
                    cur = db_conn.execute(query, params)
                    return cur.fetchall() if cur.description else []
                return self.insert_specs(fetch, specs)

        return self._db.run("enqueue", in_transaction)

    def _insert_statement(self, specs: list[JobSpec]) -> tuple[bytes, dict[str, Any]]:
        if len(specs) == 1:
            return self.queries["job_insert_one"], {**specs[0].row, "channel": self.channel}
        params: dict[str, Any] = as_arrays([s.row for s in specs], INSERT_COLUMNS)
        params["channel"] = self.channel
        return self.queries["job_insert"], params

    def _inserted_jobs(self, specs: list[JobSpec], rows: list[Row]) -> list[Job | None]:
        if len(specs) == 1 and not rows:  # the one-row insert returns nothing on a collision
            return [None]
        return [
            job_from_row({**spec.row, **row, "attempts": 0, "lost": 0, "released": 0},
                         self.serializer)
            if row["id"] is not None else None
            for spec, row in zip(specs, rows, strict=True)
        ]

    def insert_specs(self, fetch: Fetch, specs: list[JobSpec]) -> list[Job | None]:
        """The statements of an enqueue, run through ``fetch`` (one transaction)."""
        steps = self._insert_steps(specs)
        statement = next(steps)
        while True:
            try:
                statement = steps.send(fetch(*statement))
            except StopIteration as done:
                return done.value

    def _insert_steps(self, specs: list[JobSpec]) -> InsertSteps:
        """The statements of an enqueue as a generator: it yields ``(query, params)``, is
        sent the rows, and returns the jobs. Drivers run it on a blocking connection
        (``insert_specs``) or on an asyncio one (``pgwerk.aio``) with the same logic."""
        check_enqueue(self, (spec.row for spec in specs))
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
        rows = yield self._insert_statement(specs)
        if len(specs) == 1 and not rows:
            rows = [{"id": None}]
        if upstream:
            links = [(row["id"], d.job_id, d.allow_failure)
                     for row, spec in zip(rows, specs, strict=True) if row["id"] is not None
                     for d in spec.depends_on]
            if links:
                job_ids, up, allow = zip(*links, strict=True)
                yield (self.queries["job_deps_link"],
                       {"job_ids": list(job_ids), "upstream": list(up), "allow": list(allow)})
        return self._inserted_jobs(specs, rows)

    # -- waiting for results ------------------------------------------------------------

    def apply(self, func: Callable[..., Any] | str, *args: Any, timeout: float | None = None,
              **kwargs: Any) -> Any:
        """Enqueue and block until the job ends; return its result.

        Raises:
            JobError: the job failed, was aborted or expired (``.job`` has the details).
            TimeoutError: ``timeout`` seconds passed first (the job keeps going).
        """
        job = self.enqueue(func, *args, **kwargs)
        if job is None:
            raise WerkError(f"apply: a job with key {kwargs.get('_key')!r} already exists")
        done = self.wait_for(job, timeout=timeout)
        if done.status is not JobStatus.Complete:
            raise JobError(done)
        return done.result

    def map(self, func: Callable[..., Any] | str, items: Iterable[Mapping[str, Any]],
            timeout: float | None = None, return_exceptions: bool = False,
            **shared: Any) -> list[Any]:
        """Run ``func(**item)`` for each item as parallel jobs (one bulk enqueue) and return
        their results in input order. ``shared`` options (``_queue=...``) and payload apply
        to every item. With ``return_exceptions`` a failed job gives its ``JobError`` in
        place of a result instead of raising."""
        items = list(items)
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise TypeError(f"map: item {i} must be a dict of keyword arguments, got {item!r}")
        specs = []
        for item in items:
            params, conn = params_from_call(func, (), {**shared, **item})
            if conn is not None:
                raise TypeError("map does not take _conn")
            specs.append(build_spec(params, self.config))
        if not specs:
            return []
        jobs = self.enqueue_specs(specs)
        if any(j is None for j in jobs):
            raise WerkError("map: a job key collided with an existing job")
        done = self._wait_many([j.id for j in jobs if j is not None], timeout)
        results: list[Any] = []
        for job in jobs:
            assert job is not None
            end = done[job.id]
            if end.status is JobStatus.Complete:
                results.append(end.result)
            elif return_exceptions:
                results.append(JobError(end))
            else:
                raise JobError(end)
        return results

    def wait_for(self, job: Job | int | str, timeout: float | None = None) -> Job:
        """Block until the job is in a terminal state and return it. ``job`` is a ``Job``
        or its id (an int, or a string of digits as found in a URL).

        Raises:
            TimeoutError: ``timeout`` seconds passed first.
            JobNotFound: the job does not exist (or was deleted while waiting).
        """
        job_id = _existing_id(job)
        return self._wait_many([job_id], timeout)[job_id]

    def _wait_many(self, ids: list[int], timeout: float | None) -> dict[int, Job]:
        timeout = seconds("timeout", timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._waiting_subscribed:
            self._listener.subscribe(self._waiters.notify)
            self._waiting_subscribed = True
        self._listener.wait_ready(timeout=2.0)
        event = self._waiters.register(ids)
        try:
            pending = set(ids)
            fallback = 0.5
            while pending:
                event.clear()
                rows = self.fetch("job_statuses", {"ids": sorted(pending)})
                seen = {r["id"]: r["status"] for r in rows}
                for job_id in list(pending):
                    if job_id not in seen:
                        raise JobNotFound(job_id)
                    if seen[job_id] in _TERMINAL:
                        pending.discard(job_id)
                if not pending:
                    break
                wait = fallback
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError(
                            f"{len(pending)} job(s) not finished after {timeout}s: "
                            f"{', '.join(map(str, sorted(pending)[:10]))}"
                        )
                    wait = min(wait, remaining)
                event.wait(wait)
                fallback = min(fallback * 2, 5.0)
        finally:
            self._waiters.unregister(ids, event)
        rows = self.fetch("job_get_many", {"ids": ids})
        jobs = {r["id"]: job_from_row(r, self.serializer) for r in rows}
        for job_id in ids:
            if job_id not in jobs:
                raise JobNotFound(job_id)
        return jobs

    # -- managing jobs -------------------------------------------------------------------

    def get_job(self, job_id: int | str) -> Job:
        """The job with this id (an int, or a string of digits as found in a URL or a
        form). Raises ``JobNotFound``, also for a string that is not an id."""
        rows = self.fetch("job_get", {"id": _existing_id(job_id)})
        if not rows:
            raise JobNotFound(job_id)
        return job_from_row(rows[0], self.serializer)

    def _exists_or_raise(self, job_id: int) -> None:
        if not self.fetch("job_statuses", {"ids": [job_id]}):
            raise JobNotFound(job_id)

    def cancel_job(self, job_id: int | str) -> bool:
        """Cancel a job that has not started: it ends ``aborted`` and never runs.

        Returns False when the job already started or ended. Raises ``JobNotFound``."""
        job_id = _existing_id(job_id)
        rows = self.fetch("job_cancel", {"ids": [job_id], "channel": self.channel})
        if not rows:
            self._exists_or_raise(job_id)
            return False
        self.resolve_dependents(self.fetch_via_pool, [r["id"] for r in rows if r["has_dependents"]])
        return True

    def abort_job(self, job_id: int | str) -> bool:
        """Stop a job: cancel it if it has not started, or ask its worker to interrupt it
        (``aborting``, then ``aborted`` with ``on_stopped`` called). Returns False when
        the job already ended. Raises ``JobNotFound``."""
        job_id = _existing_id(job_id)
        if self.cancel_job(job_id):
            return True
        rows = self.fetch("job_abort", {"id": job_id, "channel": self.channel})
        return bool(rows)

    def requeue_job(self, job_id: int | str) -> bool:
        """Run a failed, aborted or expired job again (one more attempt).

        Returns False when the job is not in one of those states. Raises ``JobNotFound``."""
        job_id = _existing_id(job_id)
        rows = self.fetch("job_requeue", {"ids": [job_id], "channel": self.channel})
        if not rows:
            self._exists_or_raise(job_id)
            return False
        return True

    def touch_job(self, job_id: int | str) -> bool:
        """Renew a job's heartbeat, as its worker does for ``_heartbeat`` jobs. Returns
        False if the job does not exist or is not running."""
        found = _job_id(job_id)
        return found is not None and bool(self.fetch("job_touch", {"id": found}))

    def get_executions(self, job_id: int | str) -> list[Execution]:
        """One record per attempt of the job, oldest first."""
        job = self.get_job(job_id)
        rows = self.fetch("execution_list", {"id": job.id})
        runs = [Execution(**r) for r in rows]
        recorded = {r.attempt for r in runs}
        if job.attempts > 0 and job.attempts not in recorded and job.started_at is not None:
            runs.append(Execution(
                job_id=job.id, attempt=job.attempts, worker_id=job.worker_id,
                started_at=job.started_at, finished_at=job.completed_at,
                outcome=_last_outcome(job), error=job.error,
            ))
        return runs

    def get_job_dependencies(self, job_id: int | str) -> list[dict[str, Any]]:
        """The jobs this job depends on: ``{"id", "allow_failure", "status"}`` each
        (``status`` is None for a dependency whose row is gone). Raises ``JobNotFound``."""
        job_id = _existing_id(job_id)
        self._exists_or_raise(job_id)
        return self.fetch("job_dependencies", {"id": job_id})

    def list_workers(self) -> list[WorkerInfo]:
        """Registered workers with their last heartbeat."""
        return [
            WorkerInfo(
                id=r["id"], hostname=r["hostname"], pid=r["pid"], queues=tuple(r["queues"]),
                concurrency=r["concurrency"], pool=r["pool"], started_at=r["started_at"],
                heartbeat_at=r["heartbeat_at"], heartbeat_age=float(r["heartbeat_age"]),
                active_jobs=int(r["active_jobs"]), stopping=r["stopping"],
            )
            for r in self.fetch("worker_list")
        ]

    def sweep(self) -> dict[str, int]:
        """One pass of the maintenance steps (rescue, expire, dependents, prune), if no
        other process is sweeping right now. Returns counts per step ({} if skipped)."""
        from pgwerk._sweep import run_sweep

        return run_sweep(self)

    # -- admin: finding jobs, and acting on many at once -------------------------------------
    # One filter (``_job_filter``) serves the list, the count and the bulk actions, so the
    # count a dashboard or CLI shows before a bulk action is the set the action touches.

    def list_jobs(self, queue: str | None = None, status: JobStatus | str | None = None,
                  function: str | Callable[..., Any] | None = None, *, key: str | None = None,
                  search: str | None = None, job_id: int | str | None = None,
                  older_than: float | timedelta | None = None, limit: int = 50,
                  offset: int = 0) -> list[Job]:
        """Jobs matching every filter given, newest first.

        Args:
            queue: only this queue.
            status: only this status (a ``JobStatus`` or its value).
            function: only this handler (a dotted path or the function itself).
            key: only the job with this ``_key``; a key ending in ``*`` matches every key
                starting with the rest (``"cron:nightly:*"``).
            search: text the job's arguments contain (JSON payloads; case-insensitive).
            job_id: only the job with this id (an int or a decimal string).
            older_than: only jobs that ended (or, still unended, were enqueued) more than
                this many seconds ago; a number or a ``timedelta``.
            limit: page size, 1 to 10,000.
            offset: jobs to skip, for the next pages.

        Example::

            failed = app.list_jobs(queue="mail", status="failed", search="a@b.c")
        """
        integer("limit", limit, minimum=1, maximum=10_000)
        integer("offset", offset, minimum=0, maximum=BIGINT_MAX)
        params = self._job_filter(queue, [status] if status is not None else None, function,
                                  key=key, search=search, job_id=job_id, older_than=older_than)
        rows = self.fetch("admin_job_list", {**params, "limit": limit, "offset": offset})
        return [job_from_row(r, self.serializer) for r in rows]

    def count_jobs(self, queue: str | None = None, status: JobStatus | str | None = None,
                   function: str | Callable[..., Any] | None = None, *, key: str | None = None,
                   search: str | None = None, job_id: int | str | None = None,
                   older_than: float | timedelta | None = None) -> int:
        """How many jobs ``list_jobs`` with the same filters would find over all pages."""
        params = self._job_filter(queue, [status] if status is not None else None, function,
                                  key=key, search=search, job_id=job_id, older_than=older_than)
        return int(self.fetch("admin_job_count", params)[0]["total"])

    def bulk_requeue_jobs(self, queue: str | None = None,
                          function: str | Callable[..., Any] | None = None,
                          statuses: Iterable[JobStatus | str] = ("failed", "aborted", "expired"),
                          older_than: float | timedelta | None = None,
                          dry_run: bool = False) -> int:
        """Run again every ended job that matches (as ``requeue_job`` does for one).

        Args:
            queue, function: only jobs of this queue / handler (None: any).
            statuses: which ended statuses to requeue; a subset of failed, aborted, expired.
            older_than: only jobs that ended more than this many seconds ago.
            dry_run: count the jobs that would be requeued and change nothing.

        Returns:
            How many jobs were (or, with ``dry_run``, would be) requeued.
        """
        wanted = _statuses("bulk_requeue_jobs", statuses, _REQUEUABLE,
                           "cannot be requeued")
        params = self._job_filter(queue, wanted, function, older_than=older_than)
        ids = [r["id"] for r in self.fetch("admin_job_select", params)]
        if dry_run or not ids:
            return len(ids)
        return len(self.fetch("job_requeue", {"ids": ids, "channel": self.channel}))

    def bulk_cancel_jobs(self, queue: str | None = None,
                         function: str | Callable[..., Any] | None = None,
                         dry_run: bool = False) -> int:
        """Cancel every job that has not started (queued, scheduled or waiting) of a queue
        and/or handler (None: all). Running jobs are left alone: abort them one by one.

        Returns:
            How many jobs were (or, with ``dry_run``, would be) cancelled.
        """
        params = self._job_filter(queue, list(_CANCELLABLE), function)
        ids = [r["id"] for r in self.fetch("admin_job_select", params)]
        if dry_run or not ids:
            return len(ids)
        rows = self.fetch("job_cancel", {"ids": ids, "channel": self.channel})
        self.resolve_dependents(self.fetch_via_pool, [r["id"] for r in rows if r["has_dependents"]])
        return len(rows)

    def purge_jobs(self, statuses: Iterable[JobStatus | str] = ("complete",),
                   queue: str | None = None, function: str | Callable[..., Any] | None = None,
                   older_than: float | timedelta | None = None, dry_run: bool = False) -> int:
        """Delete ended jobs in ``statuses`` (end statuses only: running jobs are never
        deleted) that ended more than ``older_than`` seconds ago, of a queue and/or handler.

        Returns:
            How many jobs were (or, with ``dry_run``, would be) deleted.

        Example::

            app.purge_jobs(["failed", "aborted"], queue="mail", older_than=timedelta(days=7))
        """
        wanted = _statuses("purge_jobs", statuses, _TERMINAL, "is not an end status")
        params = self._job_filter(queue, wanted, function, older_than=older_than)
        params["older_than"] = params["older_than"] or 0.0  # ended before now, as before
        if dry_run:
            return int(self.fetch("admin_job_count", params)[0]["total"])
        return int(self.fetch("admin_job_purge", params)[0]["deleted"])

    def delete_job(self, job_id: int | str) -> bool:
        """Delete a job row that is not running. Returns False if it did not exist.

        Raises:
            WerkError: the job is running (``active`` or ``aborting``): abort it with
                ``abort_job`` instead; its row is kept.
        """
        found = _job_id(job_id)
        if found is None:
            return False
        rows = self.fetch("admin_job_delete", {"id": found})
        if not rows:
            return False
        if not rows[0]["deleted"]:
            raise WerkError(
                f"job {job_id} is {rows[0]['status']} and was not deleted: a running job "
                "cannot be deleted; abort it (abort_job) and delete it once it has ended")
        return True

    def queue_stats(self) -> dict[str, dict[str, Any]]:
        """Per queue: job counts by status, and ``oldest_queued_age``, the age in seconds
        of its oldest runnable job (queued, or scheduled and due; 0.0 when there is none),
        which is how long new work waits there right now."""
        stats: dict[str, dict[str, Any]] = {}
        for row in self.fetch("queue_stats"):
            stats.setdefault(row["queue"], {"oldest_queued_age": 0.0})[row["status"]] = int(
                row["count"])
        for row in self.fetch("admin_queue_latency"):
            if row["queue"] in stats:
                stats[row["queue"]]["oldest_queued_age"] = max(0.0, row["oldest_queued_age"])
        return stats

    def throughput(self, minutes: int = 60) -> list[dict[str, Any]]:
        """Attempts that ended in each of the last ``minutes`` minutes (1 to 1440), oldest
        first and zero-filled: ``{"minute": datetime, "processed": int, "failed": int}``.
        ``processed`` counts every attempt that ended (whatever its outcome), ``failed``
        those that failed. Ended jobs already purged are no longer counted."""
        if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= 1440:
            raise ValueError(f"minutes must be an int from 1 to 1440, got {minutes!r}")
        return [{"minute": r["minute"], "processed": int(r["processed"]),
                 "failed": int(r["failed"])}
                for r in self.fetch("admin_throughput", {"minutes": minutes})]

    def _job_filter(self, queue: str | None, statuses: list[Any] | None,
                    function: str | Callable[..., Any] | None, *, key: str | None = None,
                    search: str | None = None, job_id: int | str | None = None,
                    older_than: float | timedelta | None = None) -> dict[str, Any]:
        """The parameters of the admin filter, each checked (``TypeError``/``ValueError``
        naming the option) before anything runs."""
        for name, value in (("queue", queue), ("key", key), ("search", search)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a string, got {value!r}")
        if function is not None and not isinstance(function, str):
            from pgwerk.options import function_path
            function = function_path(function, "function")
        wanted = None
        if statuses is not None:
            wanted = [_status_value(s) for s in statuses]
        if job_id is not None:
            if isinstance(job_id, str) and job_id.isascii() and job_id.isdigit():
                job_id = int(job_id)
            if isinstance(job_id, bool) or not isinstance(job_id, int) or job_id < 0:
                raise ValueError(f"job_id must be a job id (an int or decimal string), "
                                 f"got {job_id!r}")
            if job_id > 2**63 - 1:
                job_id = -1  # no such job; a bigint parameter cannot hold it
        age = seconds("older_than", older_than)
        if age is not None and age > _MAX_AGE:
            raise ValueError(f"older_than must be at most {_MAX_AGE:.0f} seconds (100 years), "
                             f"got {older_than!r}")
        return {"queue": queue, "statuses": wanted, "function": function, "key": key or None,
                "search": search or None, "job_id": job_id, "older_than": age}


    def truncate(self) -> None:
        """Delete every job, worker and schedule of this app. For tests."""
        self.fetch("truncate")

    # -- shared with the worker and the sweep ---------------------------------------------

    def fetch_via_pool(self, query: bytes, params: Mapping[str, Any]) -> list[Row]:
        return self._db.fetch("run a statement", query, params)

    def resolve_dependents(self, fetch: Fetch, ids: list[int]) -> int:
        """Promote or fail the waiting dependents of ended jobs, down the chain."""
        total = 0
        while ids:
            rows = fetch(self.queries["deps_resolve"], {"ids": ids, "channel": self.channel})
            total += len(rows)
            ids = [r["id"] for r in rows if r["status"] == "failed" and r["has_dependents"]]
        return total


_TIMED_OUT = re.compile(r"^(pgwerk\.exceptions\.)?JobTimeout\b", re.MULTILINE)


def _last_outcome(job: Job) -> str:
    """How the job's last attempt ended, as its history names it: a timeout is a
    ``timeout``, though the job's status says ``failed``."""
    if job.status is JobStatus.Failed and _TIMED_OUT.search(job.error or ""):
        return "timeout"
    return job.status.value


def _job_id(job: Job | int | str) -> int | None:
    """The id of the job the caller names; ``None`` when the value cannot be a job id (a
    string that is not decimal digits, a number out of ``bigint`` range): it names no job.
    Raises ``TypeError`` for what is neither a ``Job``, an int nor a string."""
    return job.id if isinstance(job, Job) else job_id_or_none(job)


def _existing_id(job: Job | int | str) -> int:
    """``_job_id`` for calls that raise ``JobNotFound`` for a job that does not exist."""
    found = _job_id(job)
    if found is None:
        assert not isinstance(job, Job)
        raise JobNotFound(job)
    return found


_REQUEUABLE = frozenset({"failed", "aborted", "expired"})
_MAX_AGE = 100 * 365 * 86400.0
_CANCELLABLE = ("queued", "scheduled", "waiting")


def _status_value(status: JobStatus | str) -> str:
    try:
        return JobStatus(status).value
    except ValueError:
        raise ValueError(
            f"status must be one of {', '.join(s.value for s in JobStatus)}, got {status!r}"
        ) from None


def _statuses(what: str, statuses: Iterable[JobStatus | str], allowed: Iterable[str],
              refusal: str) -> list[str]:
    """Statuses given to a bulk action, each checked against what that action allows."""
    if isinstance(statuses, (str, JobStatus)):
        statuses = [statuses]
    if not isinstance(statuses, Iterable):
        raise TypeError(f"{what}: statuses must be a list of statuses, got {statuses!r}")
    allowed = set(allowed)
    wanted = []
    for status in statuses:
        try:
            value = JobStatus(status).value
        except ValueError:
            value = None
        if value is None or value not in allowed:
            raise ValueError(f"{what}: status {status!r} {refusal}; allowed: "
                             f"{', '.join(sorted(allowed))}")
        wanted.append(value)
    if not wanted:
        raise ValueError(f"{what}: statuses is empty; allowed: {', '.join(sorted(allowed))}")
    return wanted
