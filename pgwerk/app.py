"""``Werk``: the app object. Connects lazily, enqueues, waits for results, manages jobs.

Each method validates its input and calls one method of the store (``pgwerk.store``),
which runs the statement and returns records.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from pgwerk._allowlist import check_enqueue
from pgwerk._validate import (
    BIGINT_MAX,
    MAX_LIMIT,
    integer,
    is_int,
    job_id_or_none,
    seconds,
    text,
)
from pgwerk._validate import rate as _rate
from pgwerk.batches import BatchBuilder, BatchCallback, batch_callbacks, description_text
from pgwerk.config import WerkConfig
from pgwerk.exceptions import BatchNotFound, ConfigurationError, JobError, JobNotFound, WerkError
from pgwerk.job import (
    KEEP,
    TERMINAL_STATUSES,
    Batch,
    EnqueueParams,
    Execution,
    Job,
    JobStatus,
    Keep,
    QueueLimit,
    WorkerInfo,
)
from pgwerk.options import (
    JobSpec,
    build_spec,
    function_path,
    is_plain,
    params_from_call,
    plain_spec,
    plain_template,
)
from pgwerk.store import migrate as _migrate
from pgwerk.store.core import Store
from pgwerk.store.notify import Waiters

logger = logging.getLogger(__name__)

_TERMINAL = {s.value for s in TERMINAL_STATUSES}
#: A rate limit as ``configure_queue`` takes it: ``"10/s"`` or ``(count, seconds)``.
RateLimit = str | tuple[int, float | timedelta]


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
        self._store = Store(self.dsn, self.config)
        self._waiters = Waiters()
        self._waiting_subscribed = False
        self._plain: JobSpec | None = None

    def __repr__(self) -> str:
        return f"<Werk schema={self.config.schema!r} prefix={self.config.prefix!r}>"

    # -- lifecycle -------------------------------------------------------------------

    def connect(self) -> Werk:
        """Open the pool now (otherwise the first call that needs it does). Idempotent."""
        self._store.open()
        return self

    def close(self) -> None:
        """Stop listening and close the pool. The app reconnects if used again."""
        self._store.close()

    def __enter__(self) -> Werk:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def migrate(self) -> int:
        """Create or upgrade the tables now; returns how many migrations ran."""
        return self._store.migrate()

    def migration_sql(self) -> str:
        """The DDL ``migrate`` would run on an empty database, for a DBA to review."""
        return _migrate.migration_sql(self.config.schema, self.config.prefix)

    # -- enqueue ---------------------------------------------------------------------

    def enqueue(self, func: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> Job | None:
        """Enqueue ``func(*args, **kwargs)``.

        Keyword arguments starting with ``_`` are options (``_queue``, ``_priority``,
        ``_delay``, ``_at``, ``_retry``, ``_timeout``, ``_heartbeat``, ``_key``, ``_group``,
        ``_meta``, ``_ttl``, ``_result_ttl``, ``_failure_ttl``, ``_failure_mode``,
        ``_on_success``, ``_on_failure``, ``_on_stopped``, ``_repeat``, ``_depends_on``,
        ``_unique``, ``_conn``); the rest is the handler's payload.

        Returns:
            The stored ``Job``; ``None`` when a job with the same ``_key`` exists; with
            ``_unique``, the job that holds the key when a matching one exists (no row is
            written then).
        """
        for name in kwargs:
            if name[:1] == "_":
                params, conn = params_from_call(func, args, kwargs)
                return self._insert([build_spec(params, self.config)], conn)[0]
        return self._insert([self._plain_spec(func, args, kwargs)])[0]

    def _plain_spec(self, func: Callable[..., Any] | str, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> JobSpec:
        """The spec of a call without options: the common case, without re-validating the
        defaults every time."""
        return plain_spec(self._plain_template(), func, args, kwargs, self.config)

    def enqueue_many(self, params: Sequence[EnqueueParams], _conn: Any = None,
                     batch: BatchBuilder | None = None) -> list[Job | None]:
        """Enqueue many jobs in one statement; results in input order, ``None`` where a
        key collided, the job holding the key where a ``unique`` job matched one (also an
        earlier one of the same list).

        With ``batch`` (inside ``with app.batch(...) as batch:``) the jobs join that batch
        instead, as ``batch.enqueue_many(params)`` does: they are written when its block
        ends, so this returns ``[]`` and ``batch.jobs`` holds them afterwards.
        """
        if batch is not None:
            if not isinstance(batch, BatchBuilder):
                raise TypeError(f"batch must be what app.batch(...) returned, got {batch!r}")
            if _conn is not None:
                raise TypeError("enqueue_many takes _conn or batch, not both: a batch's jobs "
                                "are written on its own connection (app.batch(_conn=conn))")
            batch.enqueue_many(params)
            return []
        specs = self._many_specs(params)
        return self._insert(specs, _conn) if specs else []

    def _many_specs(self, params: Sequence[EnqueueParams]) -> list[JobSpec]:
        if isinstance(params, (str, bytes)) or not isinstance(params, Sequence):
            raise TypeError("enqueue_many takes a list of EnqueueParams")
        for i, item in enumerate(params):
            if not isinstance(item, EnqueueParams):
                raise TypeError(
                    f"enqueue_many: item {i} is {type(item).__name__}, not EnqueueParams")
        template = self._plain_template()
        return [plain_spec(template, p.func, p.args, p.kwargs, self.config)
                if is_plain(p) else build_spec(p, self.config) for p in params]

    def _plain_template(self) -> JobSpec:
        if self._plain is None:
            self._plain = plain_template(self.config)
        return self._plain

    def _insert(self, specs: list[JobSpec], conn: Any = None) -> list[Job | None]:
        """Insert validated specs, on the caller's connection or a pooled one."""
        check_enqueue(self, (spec.row for spec in specs))
        if conn is not None and not self._store.is_open:
            # Creates or checks the tables, as any first use does, within the time budget.
            self._store.open(deadline=time.monotonic() + self.config.enqueue_timeout)
        return self._store.insert(specs, conn)

    # -- batches ---------------------------------------------------------------------

    def batch(self, *, on_complete: BatchCallback | None = None,
              on_success: BatchCallback | None = None,
              on_failure: BatchCallback | None = None, description: str | None = None,
              _conn: Any = None) -> BatchBuilder:
        """A batch: jobs enqueued together, and callback jobs enqueued once every one of
        them has ended.

        Use it as a context manager; the jobs enqueued on it inside the block are written,
        with the batch, in one transaction when the block ends (nothing is written if it
        raises). When the last member ends (complete, failed, aborted or expired, whichever
        worker or statement ends it) the database enqueues, exactly once each:

        - ``on_complete``: always;
        - ``on_success``: when every member completed;
        - ``on_failure``: when a member did not complete (failed, aborted or expired).

        A callback job runs its function like any job; ``ctx.job.meta["batch"]`` holds the
        batch's ``id``, which ``callback`` it is and the counts (``total``, ``complete``,
        ``failed``, ``aborted``, ``expired``). A member requeued after the batch finished
        counts as pending again; callbacks not yet enqueued (``on_success`` after a
        failure) may then come when it ends, those already enqueued never twice.

        Args:
            on_complete, on_success, on_failure: a module-level function or its dotted
                path, a ``Callback`` (with a timeout), or an ``EnqueueParams`` for the
                callback job's arguments and options (not ``key`` nor ``depends_on``).
            description: a text shown with the batch (CLI, dashboard).
            _conn: the caller's connection, to write the batch in its transaction (as
                ``enqueue(_conn=...)``).

        Example::

            with app.batch(on_complete=notify_done, on_failure=report) as batch:
                for n in range(100):
                    batch.enqueue(resize, n)
            app.get_batch(batch.id).pending
        """
        callbacks = batch_callbacks(self, on_complete=on_complete, on_success=on_success,
                                    on_failure=on_failure)
        return BatchBuilder(self, callbacks, description_text(description), _conn)

    def _insert_batch(self, specs: list[JobSpec], callbacks: str, description: str | None,
                      conn: Any = None) -> tuple[int, list[Job | None]]:
        if conn is not None and not self._store.is_open:
            self._store.open(deadline=time.monotonic() + self.config.enqueue_timeout)
        return self._store.insert_batch(specs, callbacks, description, conn)

    def get_batch(self, batch_id: int | str) -> Batch:
        """The batch with this id (an int, or a string of digits): its counts, callbacks
        and status. Raises ``BatchNotFound``."""
        found = job_id_or_none(batch_id)
        batch = self._store.get_batch(found) if found is not None else None
        if batch is None:
            raise BatchNotFound(batch_id)
        return batch

    def list_batches(self, limit: int = 50, offset: int = 0) -> list[Batch]:
        """Batches, newest first, one page (``limit`` 1 to 10,000)."""
        integer("limit", limit, minimum=1, maximum=10_000)
        integer("offset", offset, minimum=0, maximum=BIGINT_MAX)
        return self._store.list_batches(limit, offset)

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
        jobs = self._insert(specs)
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
            self._store.listener.subscribe(self._waiters.notify)
            self._waiting_subscribed = True
        self._store.listener.wait_ready(timeout=2.0)
        event = self._waiters.register(ids)
        try:
            pending = set(ids)
            fallback = 0.5
            while pending:
                event.clear()
                seen = self._store.statuses(sorted(pending))
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
        jobs = self._store.get_jobs(ids)
        for job_id in ids:
            if job_id not in jobs:
                raise JobNotFound(job_id)
        return jobs

    # -- managing jobs -------------------------------------------------------------------

    def get_job(self, job_id: int | str) -> Job:
        """The job with this id (an int, or a string of digits as found in a URL or a
        form). Raises ``JobNotFound``, also for a string that is not an id."""
        row = self._store.get_job_row(_existing_id(job_id))
        if row is None:
            raise JobNotFound(job_id)
        return self._store.job(row)

    def _exists_or_raise(self, job_id: int) -> None:
        if not self._store.statuses([job_id]):
            raise JobNotFound(job_id)

    def cancel_job(self, job_id: int | str) -> bool:
        """Cancel a job that has not started: it ends ``aborted`` and never runs.

        Returns False when the job already started or ended. Raises ``JobNotFound``."""
        job_id = _existing_id(job_id)
        if not self._store.cancel([job_id]):
            self._exists_or_raise(job_id)
            return False
        return True

    def abort_job(self, job_id: int | str) -> bool:
        """Stop a job: cancel it if it has not started, or ask its worker to interrupt it
        (``aborting``, then ``aborted`` with ``on_stopped`` called). Returns False when
        the job already ended. Raises ``JobNotFound``."""
        job_id = _existing_id(job_id)
        if self.cancel_job(job_id):
            return True
        return self._store.abort(job_id)

    def requeue_job(self, job_id: int | str) -> bool:
        """Run a failed, aborted or expired job again (one more attempt).

        Returns False when the job is not in one of those states. Raises ``JobNotFound``."""
        job_id = _existing_id(job_id)
        if not self._store.requeue([job_id]):
            self._exists_or_raise(job_id)
            return False
        return True

    def touch_job(self, job_id: int | str) -> bool:
        """Renew a job's heartbeat, as its worker does for ``_heartbeat`` jobs. Returns
        False if the job does not exist or is not running."""
        found = _job_id(job_id)
        return found is not None and self._store.touch(found)

    def get_executions(self, job_id: int | str) -> list[Execution]:
        """One record per attempt of the job, oldest first."""
        job = self.get_job(job_id)
        runs = self._store.executions(job.id)
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
        return self._store.dependencies(job_id)

    def list_workers(self) -> list[WorkerInfo]:
        """Registered workers with their last heartbeat."""
        return self._store.list_workers()

    # -- queue limits --------------------------------------------------------------------

    def configure_queue(self, queue: str, *, rate_limit: RateLimit | None | Keep = KEEP,
                        concurrency: int | None | Keep = KEEP,
                        function: str | Callable[..., Any] | None = None) -> QueueLimit | None:
        """Set, change or remove the limits of a queue, for every worker at once and from
        the next claim on. A limit left out stays as it is; ``None`` removes it.

        Args:
            queue: the queue.
            rate_limit: at most N jobs start in any window: ``"10/s"``, ``"100/m"``,
                ``"1000/h"``, ``"5000/d"``, ``"50/15m"``, or ``(N, seconds)``.
            concurrency: at most this many jobs of the queue run at once across every
                worker and host (1 to 1,000,000).
            function: limit only the jobs of this function (a dotted path or the function
                itself) in the queue, on top of the queue's own limits.

        Returns:
            The limits now in force for ``queue`` (and ``function``), ``None`` when none is
            left.

        Example::

            app.configure_queue("mail", rate_limit="10/s", concurrency=3)
            app.configure_queue("mail", rate_limit=None)          # concurrency stays
            app.configure_queue("mail", function="myapp.tasks.send_sms", rate_limit="1/s")
        """
        text("queue", queue)
        path = "" if function is None else text("function", function_path(function, "function"))
        if rate_limit is KEEP and concurrency is KEEP:
            raise TypeError("configure_queue needs rate_limit= and/or concurrency= (None "
                            "removes a limit)")
        found_rate = None if rate_limit is KEEP or rate_limit is None \
            else _rate("rate_limit", rate_limit)
        found_concurrency = None if concurrency is KEEP or concurrency is None \
            else integer("concurrency", concurrency, minimum=1, maximum=MAX_LIMIT)
        self._store.set_queue_limit(
            queue, path, rate=found_rate, set_rate=rate_limit is not KEEP,
            concurrency=found_concurrency, set_concurrency=concurrency is not KEEP)
        now = self.queue_limits(queue)
        return next((limit for limit in now if (limit.function or "") == path), None)

    def queue_limits(self, queue: str | None = None) -> list[QueueLimit]:
        """The limits of ``queue`` (or of every queue), each with what it holds now: the
        jobs running against a concurrency limit and those started within the window of a
        rate limit. Ordered by queue, the queue's own limits before its functions'."""
        if queue is not None:
            text("queue", queue)
        return [QueueLimit(
            queue=r["queue"], function=r["function"] or None, rate_limit=r["rate_limit"],
            rate_period=r["rate_period"], concurrency=r["concurrency"], running=r["running"],
            recent=r["recent"], updated_at=r["updated_at"])
            for r in self._store.queue_limits(queue)]

    def sweep(self) -> dict[str, int]:
        """One pass of the maintenance steps (rescue, expire, dependents, prune), if no
        other process is sweeping right now. Returns counts per step ({} if skipped)."""
        from pgwerk._sweep import run_sweep

        return run_sweep(self._store)

    # -- admin: finding jobs, and acting on many at once -------------------------------------
    # One filter (``_job_filter``) serves the list, the count and the bulk actions, so the
    # count a dashboard or CLI shows before a bulk action is the set the action touches.

    def list_jobs(self, queue: str | None = None, status: JobStatus | str | None = None,
                  function: str | Callable[..., Any] | None = None, *, key: str | None = None,
                  search: str | None = None, job_id: int | str | None = None,
                  older_than: float | timedelta | None = None, batch: int | str | None = None,
                  limit: int = 50, offset: int = 0) -> list[Job]:
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
            batch: only the members of this batch (its id).
            limit: page size, 1 to 10,000.
            offset: jobs to skip, for the next pages.

        Example::

            failed = app.list_jobs(queue="mail", status="failed", search="a@b.c")
        """
        integer("limit", limit, minimum=1, maximum=10_000)
        integer("offset", offset, minimum=0, maximum=BIGINT_MAX)
        params = self._job_filter(queue, [status] if status is not None else None, function,
                                  key=key, search=search, job_id=job_id, older_than=older_than,
                                  batch=batch)
        return [self._store.job(r) for r in self._store.list_job_rows(params, limit, offset)]

    def count_jobs(self, queue: str | None = None, status: JobStatus | str | None = None,
                   function: str | Callable[..., Any] | None = None, *, key: str | None = None,
                   search: str | None = None, job_id: int | str | None = None,
                   older_than: float | timedelta | None = None,
                   batch: int | str | None = None) -> int:
        """How many jobs ``list_jobs`` with the same filters would find over all pages."""
        params = self._job_filter(queue, [status] if status is not None else None, function,
                                  key=key, search=search, job_id=job_id, older_than=older_than,
                                  batch=batch)
        return self._store.count_jobs(params)

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
        ids = self._store.select_job_ids(params)
        if dry_run or not ids:
            return len(ids)
        return self._store.requeue(ids)

    def bulk_cancel_jobs(self, queue: str | None = None,
                         function: str | Callable[..., Any] | None = None,
                         dry_run: bool = False) -> int:
        """Cancel every job that has not started (queued, scheduled or waiting) of a queue
        and/or handler (None: all). Running jobs are left alone: abort them one by one.

        Returns:
            How many jobs were (or, with ``dry_run``, would be) cancelled.
        """
        params = self._job_filter(queue, list(_CANCELLABLE), function)
        ids = self._store.select_job_ids(params)
        if dry_run or not ids:
            return len(ids)
        return len(self._store.cancel(ids))

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
            return self._store.count_jobs(params)
        return self._store.purge(params)

    def delete_job(self, job_id: int | str) -> bool:
        """Delete a job row that is not running. Returns False if it did not exist.

        Raises:
            WerkError: the job is running (``active`` or ``aborting``): abort it with
                ``abort_job`` instead; its row is kept.
        """
        found = _job_id(job_id)
        if found is None:
            return False
        row = self._store.delete_job(found)
        if row is None:
            return False
        if not row["deleted"]:
            raise WerkError(
                f"job {job_id} is {row['status']} and was not deleted: a running job "
                "cannot be deleted; abort it (abort_job) and delete it once it has ended")
        return True

    def queue_stats(self) -> dict[str, dict[str, Any]]:
        """Per queue: job counts by status, and ``oldest_queued_age``, the age in seconds
        of its oldest runnable job (queued, or scheduled and due; 0.0 when there is none),
        which is how long new work waits there right now."""
        stats: dict[str, dict[str, Any]] = {}
        for row in self._store.queue_counts():
            stats.setdefault(row["queue"], {"oldest_queued_age": 0.0})[row["status"]] = int(
                row["count"])
        for queue, age in self._store.queue_latency().items():
            if queue in stats:
                stats[queue]["oldest_queued_age"] = max(0.0, age)
        return stats

    def throughput(self, minutes: int = 60) -> list[dict[str, Any]]:
        """Attempts that ended in each of the last ``minutes`` minutes (1 to 1440), oldest
        first and zero-filled: ``{"minute": datetime, "processed": int, "failed": int}``.
        ``processed`` counts every attempt that ended (whatever its outcome), ``failed``
        those that failed. Ended jobs already purged are no longer counted."""
        if not is_int(minutes) or not 1 <= minutes <= 1440:
            raise ValueError(f"minutes must be an int from 1 to 1440, got {minutes!r}")
        return [{"minute": r["minute"], "processed": int(r["processed"]),
                 "failed": int(r["failed"])}
                for r in self._store.throughput(minutes)]

    def _job_filter(self, queue: str | None, statuses: list[Any] | None,
                    function: str | Callable[..., Any] | None, *, key: str | None = None,
                    search: str | None = None, job_id: int | str | None = None,
                    older_than: float | timedelta | None = None,
                    batch: int | str | None = None) -> dict[str, Any]:
        """The parameters of the admin filter, each checked (``TypeError``/``ValueError``
        naming the option) before anything runs."""
        for name, value in (("queue", queue), ("key", key), ("search", search)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a string, got {value!r}")
        if function is not None and not isinstance(function, str):
            function = function_path(function, "function")
        wanted = None
        if statuses is not None:
            wanted = [_status_value(s) for s in statuses]
        job_id = _filter_id("job_id", job_id)
        batch_id = _filter_id("batch", batch)
        age = seconds("older_than", older_than)
        if age is not None and age > _MAX_AGE:
            raise ValueError(f"older_than must be at most {_MAX_AGE:.0f} seconds (100 years), "
                             f"got {older_than!r}")
        return {"queue": queue, "statuses": wanted, "function": function, "key": key or None,
                "search": search or None, "job_id": job_id, "older_than": age,
                "batch_id": batch_id}


    def truncate(self) -> None:
        """Delete every job, worker and schedule of this app. For tests."""
        self._store.truncate()


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


def _filter_id(name: str, value: int | str | None) -> int | None:
    """A job or batch id to filter on: an int or a decimal string (``ValueError`` else);
    one beyond ``bigint`` matches nothing."""
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if not is_int(value) or value < 0:
        raise ValueError(f"{name} must be an id (an int or decimal string), got {value!r}")
    if value > BIGINT_MAX:
        return -1  # nothing has it; a bigint parameter cannot hold it
    return value


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
