"""Connections: a lazily opened pool that is never shared across ``fork``, the reconnect
policy, and adapters that run a statement on a caller's own connection (``_conn``)."""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
import tenacity
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from pgwerk.config import WerkConfig
from pgwerk.exceptions import DatabaseUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")
Row = dict[str, Any]

#: Errors that mean "the database could not be reached", as opposed to a bad statement.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (psycopg.OperationalError, PoolTimeout)

# Every connection this process opened. A forked child must never talk on them: libpq
# would send a Terminate message on the parent's socket when the child frees them.
_OPEN_CONNECTIONS: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()
# Pools inherited across fork are kept alive here so that their finalizers never run.
_INHERITED: list[object] = []


_DATABASES: weakref.WeakSet[Database] = weakref.WeakSet()


def _neutralize_inherited_connections() -> None:
    for db in list(_DATABASES):
        db._lock = threading.Lock()  # another thread may have held it at fork time
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
    except OSError:  # pragma: no cover - nothing sensible to do
        return
    try:
        for conn in list(_OPEN_CONNECTIONS):
            try:
                fd = conn.pgconn.socket
            except Exception:
                continue
            if fd >= 0:
                os.dup2(devnull, fd)
            _INHERITED.append(conn)
    finally:
        os.close(devnull)


os.register_at_fork(after_in_child=_neutralize_inherited_connections)


def _track(conn: psycopg.Connection[Any]) -> None:
    _OPEN_CONNECTIONS.add(conn)


def _configure_pooled(conn: psycopg.Connection[Any]) -> None:
    """Every pooled connection: tracked for fork safety, and without JIT.

    pgwerk's statements touch a handful of rows, but their estimated cost can be large: a
    generic plan (after psycopg prepares a statement, or under ``plan_cache_mode =
    force_generic_plan``) assumes ``LIMIT $n`` returns 10% of the queue, and at a million
    queued jobs that crosses ``jit_above_cost``: the claim then spends ~1.5 s compiling
    for ~3 ms of work. JIT never pays off for such statements.
    """
    _track(conn)
    conn.execute("SET jit = off")


def _configure_pooled_pgbouncer(conn: psycopg.Connection[Any]) -> None:
    """A pooled connection through PgBouncer in transaction mode: tracked, and no session
    state. A ``SET`` would stay on whichever server connection ran it, for other clients,
    and none of ours. The generic plans that made JIT costly never arise here, since
    nothing is prepared (set ``jit = off`` on the role or database if wanted)."""
    _track(conn)


class Database:
    """The pool of one ``Werk``: opened on first use, reopened in a forked child."""

    def __init__(self, dsn: str, config: WerkConfig) -> None:
        self.dsn = dsn
        self.config = config
        self._lock = threading.Lock()
        self._pool: ConnectionPool[psycopg.Connection[Row]] | None = None
        self._pid = os.getpid()
        self._on_first_connect: list[Callable[[psycopg.Connection[Any]], None]] = []
        _DATABASES.add(self)

    # -- lifecycle -----------------------------------------------------------------

    def connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(1, int(self.config.connect_timeout)),
            "application_name": self.config.application_name,
        }
        if self.config.pgbouncer:
            # A statement prepared on one server connection is unknown on the next one
            # PgBouncer hands out in transaction mode.
            kwargs["prepare_threshold"] = None
        return kwargs

    def retrying(self, what: str) -> tenacity.Retrying:
        """The reconnect policy: exponential backoff, then ``DatabaseUnavailable``."""

        def give_up(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            raise DatabaseUnavailable(
                f"cannot reach PostgreSQL to {what} after {state.attempt_number} attempt(s): "
                f"{str(exc).strip() or type(exc).__name__}"
            ) from exc

        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.config.connect_attempts),
            wait=tenacity.wait_exponential(multiplier=0.1, max=2.0),
            retry=tenacity.retry_if_exception_type(CONNECTION_ERRORS),
            retry_error_callback=give_up,
            before_sleep=lambda s: logger.warning(
                "database unreachable (%s); retrying to %s",
                s.outcome.exception() if s.outcome else "", what,
            ),
        )

    def connect_direct(self, what: str = "connect") -> psycopg.Connection[Row]:
        """A dedicated autocommit connection outside the pool (LISTEN, advisory locks)."""
        conn: psycopg.Connection[Row] = self.retrying(what)(
            psycopg.connect, self.dsn, row_factory=dict_row, **self.connect_kwargs()
        )
        _track(conn)
        return conn

    def on_first_connect(self, callback: Callable[[psycopg.Connection[Any]], None]) -> None:
        self._on_first_connect.append(callback)

    def pool(self) -> ConnectionPool[psycopg.Connection[Row]]:
        pool = self._pool
        if pool is not None and self._pid == os.getpid():
            return pool
        with self._lock:
            if self._pid != os.getpid():
                # Forked: the parent's pool and its sockets are not ours to use or close.
                if self._pool is not None:
                    _INHERITED.append(self._pool)
                self._pool = None
                self._pid = os.getpid()
            if self._pool is None:
                first = self.connect_direct("open the connection pool")
                try:
                    for callback in self._on_first_connect:
                        callback(first)
                finally:
                    first.close()
                pool = ConnectionPool(
                    self.dsn,
                    min_size=self.config.min_pool_size,
                    max_size=self.config.max_pool_size,
                    kwargs={**self.connect_kwargs(), "row_factory": dict_row},
                    configure=(_configure_pooled_pgbouncer if self.config.pgbouncer
                               else _configure_pooled),
                    open=False,
                    timeout=self.config.connect_timeout,
                    reconnect_timeout=max(30.0, self.config.connect_timeout * 4),
                    name=f"pgwerk-{self.config.schema}.{self.config.prefix}",
                )
                pool.open(wait=False)
                self._pool = pool
            return self._pool

    @property
    def is_open(self) -> bool:
        return self._pool is not None and self._pid == os.getpid()

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None and self._pid == os.getpid():
            pool.close()

    # -- running statements --------------------------------------------------------

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Row]]:
        with self.pool().connection() as conn:
            yield conn

    def run(self, what: str, fn: Callable[[psycopg.Connection[Row]], T]) -> T:
        """Run ``fn`` on a pooled connection, retrying when the connection fails."""

        def attempt() -> T:
            with self.connection() as conn:
                return fn(conn)

        try:  # the common case, without building a retry policy
            return attempt()
        except CONNECTION_ERRORS:
            logger.warning("database connection failed; retrying to %s", what)
        return self.retrying(what)(attempt)

    def fetch(self, what: str, query: bytes, params: Mapping[str, Any] | None = None) -> list[Row]:
        """Run one statement (autocommit) and return its rows as dicts."""

        def go(conn: psycopg.Connection[Row]) -> list[Row]:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

        return self.run(what, go)


# -- the caller's connection (_conn) ---------------------------------------------------


class CallerConnection:
    """Runs pgwerk statements inside a connection the caller owns, in its transaction.

    Accepts a psycopg 3 ``Connection``, a psycopg2 connection, a SQLAlchemy ``Connection``
    or ``Session`` and Django's connection wrapper; neither psycopg2, SQLAlchemy nor
    Django is imported unless such an object is passed.
    """

    def __init__(self, conn: object) -> None:
        self.raw = _unwrap(conn)
        module = type(self.raw).__module__
        if isinstance(self.raw, psycopg.Connection):
            self.kind = "psycopg"
        elif module.startswith("psycopg2"):
            self.kind = "psycopg2"
        else:
            raise TypeError(
                f"_conn must be an open psycopg 3 Connection, a psycopg2 connection, a "
                f"SQLAlchemy Connection/Session or Django's connection; got "
                f"{type(conn).__module__}.{type(conn).__qualname__}"
            )
        if getattr(self.raw, "closed", False):
            raise ValueError("_conn is closed")

    def fetch(self, query: bytes, params: Mapping[str, Any]) -> list[Row]:
        if self.kind == "psycopg":
            with self.raw.cursor(row_factory=dict_row) as cur:  # type: ignore[attr-defined]
                cur.execute(query, params)
                return cur.fetchall() if cur.description else []
        cur = self.raw.cursor()  # type: ignore[attr-defined]
        try:
            cur.execute(query.decode(), params)
            if not cur.description:
                return []
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        finally:
            cur.close()


def _unwrap(conn: object) -> object:
    module = type(conn).__module__
    if module.startswith("sqlalchemy"):
        if hasattr(conn, "dbapi_connection"):  # a pool-proxied DB-API connection
            return _unwrap(conn.dbapi_connection)
        if hasattr(conn, "get_bind") and callable(getattr(conn, "connection", None)):  # Session
            return _unwrap(conn.connection())  # type: ignore[attr-defined]
        if hasattr(conn, "connection"):  # Connection
            # SQLAlchemy begins its transaction when its own execute() first runs
            # ("autobegin"); statements sent to the DB-API connection underneath do not,
            # and conn.commit() would then commit nothing. Begin it as execute() would.
            in_transaction = getattr(conn, "in_transaction", None)
            if callable(in_transaction) and not in_transaction():
                conn.begin()  # type: ignore[attr-defined]
            return _unwrap(conn.connection)
    if module.startswith("django.db"):
        conn.ensure_connection()  # type: ignore[attr-defined]
        return _unwrap(conn.connection)  # type: ignore[attr-defined]
    return conn


def as_arrays(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> dict[str, list[Any]]:
    """Column-wise lists of a batch of rows, for statements that ``unnest`` arrays."""
    return {name: [row[name] for row in rows] for name in columns}
