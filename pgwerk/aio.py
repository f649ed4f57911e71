"""``AsyncWerk``: the blocking ``Werk`` API as coroutines, for asyncio callers.

Each method is ``await asyncio.to_thread(...)`` around the same method of a ``Werk`` (which
``AsyncWerk.sync`` is): the options, checks and statements are the blocking API's, so the
two cannot disagree. A test compares their signatures.

Differences from ``Werk``:

- every method is a coroutine, and ``async with app:`` replaces ``with app:``;
- ``_conn`` may also be a psycopg ``AsyncConnection``: the job is then inserted with
  ``await`` on that connection, inside the caller's transaction (built by the same code
  as a blocking enqueue, driven natively), so it appears only when the caller commits;
- a blocking call runs in the default executor's threads: a cancelled ``await`` does not
  stop it (``wait_for``/``apply`` go on waiting until their ``timeout``), and as many calls
  run at once as that executor has threads;
- ``batch`` is not a coroutine: it returns an ``AsyncBatchBuilder``, used with
  ``async with app.batch(...) as batch:`` and ``await batch.enqueue(...)``; the batch is
  written when the block ends (natively on a psycopg ``AsyncConnection`` given as
  ``_conn``).

Example::

    from pgwerk.aio import AsyncWerk, Retry

    async with AsyncWerk("postgresql://localhost/mydb") as app:
        job = await app.enqueue(send_email, to="a@b.c", _retry=Retry(max=3))
        result = await app.apply(greet, name="world", timeout=30)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import psycopg

from pgwerk._allowlist import check_enqueue
from pgwerk.app import RateLimit, Werk
from pgwerk.batches import BatchBuilder, BatchCallback
from pgwerk.config import WerkConfig
from pgwerk.job import (
    KEEP,
    Batch,
    Callback,
    Dependency,
    EnqueueParams,
    Execution,
    Job,
    JobStatus,
    Keep,
    QueueLimit,
    Repeat,
    Retry,
    Unique,
    WorkerInfo,
)
from pgwerk.options import JobSpec, build_spec, params_from_call

__all__ = ["AsyncBatchBuilder", "AsyncWerk", "Callback", "Dependency", "EnqueueParams",
           "Repeat", "Retry", "Unique"]


def is_async_connection(conn: object) -> bool:
    """Whether ``conn`` is an asyncio connection pgwerk drives natively."""
    return isinstance(conn, psycopg.AsyncConnection)


class AsyncWerk:
    """A ``Werk`` for asyncio code: same constructor, same methods, each a coroutine.

    Args:
        dsn: libpq connection string or URL; default ``$PGWERK_DSN``, then ``$DATABASE_URL``.
        config: a ``WerkConfig``; keyword arguments override its fields.
        **options: any ``WerkConfig`` field.

    Use ``AsyncWerk.wrap(app)`` to share an existing ``Werk`` (and its pool), and
    ``.sync`` for the ``Werk`` underneath (a ``Worker`` takes that one).
    """

    def __init__(self, dsn: str | None = None, *, config: WerkConfig | None = None,
                 **options: Any) -> None:
        self.sync = Werk(dsn, config=config, **options)

    @classmethod
    def wrap(cls, app: Werk) -> AsyncWerk:
        """An ``AsyncWerk`` over an existing ``Werk`` (same pool, same settings)."""
        if not isinstance(app, Werk):
            raise TypeError(f"AsyncWerk.wrap takes a Werk, got {type(app).__name__}")
        wrapped = cls.__new__(cls)
        wrapped.sync = app
        return wrapped

    def __repr__(self) -> str:
        return f"<AsyncWerk schema={self.config.schema!r} prefix={self.config.prefix!r}>"

    @property
    def config(self) -> WerkConfig:
        return self.sync.config

    @property
    def dsn(self) -> str:
        return self.sync.dsn

    # -- lifecycle -------------------------------------------------------------------

    async def connect(self) -> AsyncWerk:
        """Open the pool now. Idempotent."""
        await asyncio.to_thread(self.sync.connect)
        return self

    async def close(self) -> None:
        """Stop listening and close the pool."""
        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self) -> AsyncWerk:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def migrate(self) -> int:
        """See ``Werk.migrate``."""
        return await asyncio.to_thread(self.sync.migrate)

    async def migration_sql(self) -> str:
        """See ``Werk.migration_sql`` (no I/O)."""
        return self.sync.migration_sql()


    # -- enqueue -----------------------------------------------------------------------

    async def enqueue(self, func: Callable[..., Any] | str, *args: Any,
                      **kwargs: Any) -> Job | None:
        """See ``Werk.enqueue``. ``_conn`` may be a psycopg ``AsyncConnection``."""
        if is_async_connection(kwargs.get("_conn")):
            params, conn = params_from_call(func, args, kwargs)
            return (await self._insert([build_spec(params, self.sync.config)], conn))[0]
        return await asyncio.to_thread(self.sync.enqueue, func, *args, **kwargs)

    async def enqueue_many(self, params: Sequence[EnqueueParams], _conn: Any = None,
                           batch: AsyncBatchBuilder | None = None) -> list[Job | None]:
        """See ``Werk.enqueue_many``. ``_conn`` may be a psycopg ``AsyncConnection``."""
        if batch is not None:
            if not isinstance(batch, AsyncBatchBuilder):
                raise TypeError(f"batch must be what app.batch(...) returned, got {batch!r}")
            return self.sync.enqueue_many(params, _conn, batch.builder)  # no I/O
        if is_async_connection(_conn):
            specs = self.sync._many_specs(params)
            return await self._insert(specs, _conn) if specs else []
        return await asyncio.to_thread(self.sync.enqueue_many, params, _conn)

    async def _insert(self, specs: list[JobSpec], conn: Any = None) -> list[Job | None]:
        if is_async_connection(conn):
            if conn.closed:
                raise ValueError("_conn is closed")
            check_enqueue(self.sync, (spec.row for spec in specs))
            if not self.sync._store.is_open:
                await self.connect()  # creates or checks the tables, as any first use does
            return await self.sync._store.insert_async(conn, specs)
        return await asyncio.to_thread(self.sync._insert, specs, conn)

    def batch(self, *, on_complete: BatchCallback | None = None,
              on_success: BatchCallback | None = None,
              on_failure: BatchCallback | None = None, description: str | None = None,
              _conn: Any = None) -> AsyncBatchBuilder:
        """See ``Werk.batch``; use it with ``async with``. ``_conn`` may be a psycopg
        ``AsyncConnection``."""
        native = is_async_connection(_conn)
        builder = self.sync.batch(on_complete=on_complete, on_success=on_success,
                                  on_failure=on_failure, description=description,
                                  _conn=None if native else _conn)
        return AsyncBatchBuilder(self, builder, _conn if native else None)

    async def get_batch(self, batch_id: int | str) -> Batch:
        """See ``Werk.get_batch``."""
        return await asyncio.to_thread(self.sync.get_batch, batch_id)

    async def list_batches(self, limit: int = 50, offset: int = 0) -> list[Batch]:
        """See ``Werk.list_batches``."""
        return await asyncio.to_thread(self.sync.list_batches, limit, offset)

    # -- waiting for results ------------------------------------------------------------

    async def apply(self, func: Callable[..., Any] | str, *args: Any,
                    timeout: float | None = None, **kwargs: Any) -> Any:
        """See ``Werk.apply``."""
        if is_async_connection(kwargs.get("_conn")):
            raise TypeError(
                "apply cannot wait for a job whose transaction is still open: enqueue it "
                "with _conn=..., commit, then await app.wait_for(job)"
            )
        return await asyncio.to_thread(self.sync.apply, func, *args, timeout=timeout, **kwargs)

    async def map(self, func: Callable[..., Any] | str, items: Iterable[Mapping[str, Any]],
                  timeout: float | None = None, return_exceptions: bool = False,
                  **shared: Any) -> list[Any]:
        """See ``Werk.map``."""
        return await asyncio.to_thread(self.sync.map, func, items, timeout=timeout,
                                       return_exceptions=return_exceptions, **shared)

    async def wait_for(self, job: Job | int | str, timeout: float | None = None) -> Job:
        """See ``Werk.wait_for``."""
        return await asyncio.to_thread(self.sync.wait_for, job, timeout)

    # -- managing jobs -------------------------------------------------------------------

    async def get_job(self, job_id: int | str) -> Job:
        """See ``Werk.get_job``."""
        return await asyncio.to_thread(self.sync.get_job, job_id)

    async def list_jobs(self, queue: str | None = None, status: JobStatus | str | None = None,
                        function: str | Callable[..., Any] | None = None, *,
                        key: str | None = None, search: str | None = None,
                        job_id: int | str | None = None,
                        older_than: float | timedelta | None = None,
                        batch: int | str | None = None, limit: int = 50,
                        offset: int = 0) -> list[Job]:
        """See ``Werk.list_jobs``."""
        return await asyncio.to_thread(
            self.sync.list_jobs, queue, status, function, key=key, search=search,
            job_id=job_id, older_than=older_than, batch=batch, limit=limit, offset=offset)

    async def count_jobs(self, queue: str | None = None, status: JobStatus | str | None = None,
                         function: str | Callable[..., Any] | None = None, *,
                         key: str | None = None, search: str | None = None,
                         job_id: int | str | None = None,
                         older_than: float | timedelta | None = None,
                         batch: int | str | None = None) -> int:
        """See ``Werk.count_jobs``."""
        return await asyncio.to_thread(
            self.sync.count_jobs, queue, status, function, key=key, search=search,
            job_id=job_id, older_than=older_than, batch=batch)

    async def cancel_job(self, job_id: int | str) -> bool:
        """See ``Werk.cancel_job``."""
        return await asyncio.to_thread(self.sync.cancel_job, job_id)

    async def abort_job(self, job_id: int | str) -> bool:
        """See ``Werk.abort_job``."""
        return await asyncio.to_thread(self.sync.abort_job, job_id)

    async def requeue_job(self, job_id: int | str) -> bool:
        """See ``Werk.requeue_job``."""
        return await asyncio.to_thread(self.sync.requeue_job, job_id)

    async def delete_job(self, job_id: int | str) -> bool:
        """See ``Werk.delete_job``."""
        return await asyncio.to_thread(self.sync.delete_job, job_id)

    async def touch_job(self, job_id: int | str) -> bool:
        """See ``Werk.touch_job``."""
        return await asyncio.to_thread(self.sync.touch_job, job_id)

    async def get_executions(self, job_id: int | str) -> list[Execution]:
        """See ``Werk.get_executions``."""
        return await asyncio.to_thread(self.sync.get_executions, job_id)

    async def get_job_dependencies(self, job_id: int | str) -> list[dict[str, Any]]:
        """See ``Werk.get_job_dependencies``."""
        return await asyncio.to_thread(self.sync.get_job_dependencies, job_id)

    async def queue_stats(self) -> dict[str, dict[str, Any]]:
        """See ``Werk.queue_stats``."""
        return await asyncio.to_thread(self.sync.queue_stats)

    async def throughput(self, minutes: int = 60) -> list[dict[str, Any]]:
        """See ``Werk.throughput``."""
        return await asyncio.to_thread(self.sync.throughput, minutes)

    async def list_workers(self) -> list[WorkerInfo]:
        """See ``Werk.list_workers``."""
        return await asyncio.to_thread(self.sync.list_workers)

    async def configure_queue(self, queue: str, *, rate_limit: RateLimit | None | Keep = KEEP,
                              concurrency: int | None | Keep = KEEP,
                              function: str | Callable[..., Any] | None = None
                              ) -> QueueLimit | None:
        """See ``Werk.configure_queue``."""
        return await asyncio.to_thread(self.sync.configure_queue, queue, rate_limit=rate_limit,
                                       concurrency=concurrency, function=function)

    async def queue_limits(self, queue: str | None = None) -> list[QueueLimit]:
        """See ``Werk.queue_limits``."""
        return await asyncio.to_thread(self.sync.queue_limits, queue)

    async def sweep(self) -> dict[str, int]:
        """See ``Werk.sweep``."""
        return await asyncio.to_thread(self.sync.sweep)

    async def purge_jobs(self, statuses: Iterable[JobStatus | str] = ("complete",),
                         queue: str | None = None,
                         function: str | Callable[..., Any] | None = None,
                         older_than: float | timedelta | None = None,
                         dry_run: bool = False) -> int:
        """See ``Werk.purge_jobs``."""
        return await asyncio.to_thread(self.sync.purge_jobs, statuses, queue, function,
                                       older_than, dry_run)

    async def bulk_requeue_jobs(self, queue: str | None = None,
                                function: str | Callable[..., Any] | None = None,
                                statuses: Iterable[JobStatus | str] = (
                                    "failed", "aborted", "expired"),
                                older_than: float | timedelta | None = None,
                                dry_run: bool = False) -> int:
        """See ``Werk.bulk_requeue_jobs``."""
        return await asyncio.to_thread(self.sync.bulk_requeue_jobs, queue, function, statuses,
                                       older_than, dry_run)

    async def bulk_cancel_jobs(self, queue: str | None = None,
                               function: str | Callable[..., Any] | None = None,
                               dry_run: bool = False) -> int:
        """See ``Werk.bulk_cancel_jobs``."""
        return await asyncio.to_thread(self.sync.bulk_cancel_jobs, queue, function, dry_run)

    async def truncate(self) -> None:
        """See ``Werk.truncate``."""
        await asyncio.to_thread(self.sync.truncate)


class AsyncBatchBuilder:
    """``BatchBuilder`` for asyncio code: ``async with app.batch(...) as batch:``, then
    ``await batch.enqueue(...)`` / ``await batch.enqueue_many(...)`` inside the block. The
    batch is written when the block ends without an exception; ``id`` and ``jobs`` are set
    then."""

    def __init__(self, app: AsyncWerk, builder: BatchBuilder, conn: Any = None) -> None:
        self.app = app
        self.builder = builder
        self._conn = conn

    def __repr__(self) -> str:
        return repr(self.builder).replace("<BatchBuilder", "<AsyncBatchBuilder", 1)

    def __len__(self) -> int:
        return len(self.builder)

    @property
    def id(self) -> int | None:
        """The batch's id, once written."""
        return self.builder.id

    @property
    def jobs(self) -> list[Job | None]:
        """The members as written (``None`` where a key collided), once written."""
        return self.builder.jobs

    async def __aenter__(self) -> AsyncBatchBuilder:
        self.builder.__enter__()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None:
            self.builder.__exit__(exc_type, *exc)
            return
        if self._conn is None:
            await asyncio.to_thread(self.builder.write)
            return
        if self._conn.closed:
            raise ValueError("_conn is closed")
        specs, callbacks, description = self.builder._take()
        if not self.app.sync._store.is_open:
            await self.app.connect()  # creates or checks the tables, as any first use does
        batch_id, jobs = await self.app.sync._store.insert_batch_async(
            self._conn, specs, callbacks, description)
        self.builder._written(batch_id, jobs)

    async def enqueue(self, func: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> None:
        """See ``BatchBuilder.enqueue`` (no I/O: the batch is written when its block ends)."""
        self.builder.enqueue(func, *args, **kwargs)

    async def enqueue_many(self, params: Sequence[EnqueueParams]) -> None:
        """See ``BatchBuilder.enqueue_many``."""
        self.builder.enqueue_many(params)
