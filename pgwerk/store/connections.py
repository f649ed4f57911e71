"""Connections: a lazily opened pool that is never shared across ``fork``, the reconnect
policy, and adapters that run a statement on a caller's own connection (``_conn``)."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
import tenacity
from psycopg.rows import dict_row, tuple_row
from psycopg_pool import ConnectionPool, PoolTimeout

from pgwerk.config import WerkConfig
from pgwerk.exceptions import ConfigurationError, DatabaseUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")
Row = dict[str, Any]

#: Errors that mean "the database could not be reached", as opposed to a bad statement.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (psycopg.OperationalError, PoolTimeout)
#: What background loops ride out (and retry) instead of treating as a bad item.
UNREACHABLE: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, DatabaseUnavailable)

# Every connection this process opened. A forked child must never talk on them: libpq
# would send a Terminate message on the parent's socket when the child frees them.
_OPEN_CONNECTIONS: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()
# Pools inherited across fork are kept alive here so that their finalizers never run.
_INHERITED: list[object] = []


_DATABASES: weakref.WeakSet[Database] = weakref.WeakSet()


# -- DSNs in messages: never a secret ----------------------------------------------------

#: Connection parameters whose values are secrets (password, sslpassword, and the like).
_SECRET_KEY = re.compile(r"pass|secret|token|credential|pwd", re.IGNORECASE)
_MASK = "***"
# A secret inside DSN text: ``key=value`` (value bare or single-quoted), ``?key=value`` in
# a URL, and the password of a URL's ``user:password@``.
_SECRET_PAIR = re.compile(
    r"(?P<key>\b[\w-]*(?:pass|secret|token|credential|pwd)[\w-]*\s*=\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*'?|[^\s&'\"]+)", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/@\s\"]*:)(?P<value>[^@\s\"]*)(?=@)",
                           re.IGNORECASE)

#: Values libpq accepts for its enumerated options; anything else is a configuration
#: error, found when the app is built instead of at the first connect (where libpq's
#: "connection is bad" would look like an outage and be retried).
_CHOICES = {
    "sslmode": ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    "gssencmode": ("disable", "prefer", "require"),
    "channel_binding": ("disable", "prefer", "require"),
    "target_session_attrs": ("any", "read-write", "read-only", "primary", "standby",
                             "prefer-standby"),
    "load_balance_hosts": ("disable", "random"),
    "sslcertmode": ("disable", "allow", "require"),
}
# libpq's own words for a bad setting (as opposed to a server it cannot reach).
_BAD_SETTING = re.compile(r"invalid (?:[\w ]+ value|port number|connection option|"
                          r"URI query parameter|integer value)|unsupported [\w ]+ value",
                          re.IGNORECASE)


def _secrets_of(dsn: str) -> list[str]:
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        found = [m.group("value").strip("'") for m in _SECRET_PAIR.finditer(dsn)]
        found += [m.group("value") for m in _URL_PASSWORD.finditer(dsn)]
    else:
        found = [str(v) for k, v in params.items() if _SECRET_KEY.search(k) and v]
    # Longest first, so that a secret containing another is masked whole.
    return sorted({s for s in found if s}, key=len, reverse=True)


def redact(text: str, dsn: str | None = None) -> str:
    """``text`` with every secret of ``dsn`` and every DSN-looking secret masked."""
    text = _SECRET_PAIR.sub(lambda m: m.group("key") + _MASK, text)
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + _MASK, text)
    if dsn:
        for secret in _secrets_of(dsn):
            if len(secret) >= 3:  # shorter ones are masked where they appear as a pair
                text = text.replace(secret, _MASK)
    return text


def redact_dsn(dsn: str) -> str:
    """The DSN as ``key=value`` pairs without its secrets (password, sslpassword, ...),
    for messages and logs; an unparsable one with its secrets masked."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        return redact(dsn, dsn)
    return psycopg.conninfo.make_conninfo(**{
        k: str(v) for k, v in params.items() if not _SECRET_KEY.search(k)})


def check_dsn(dsn: str) -> None:
    """Raise ``ConfigurationError`` (secrets masked) when libpq could never use ``dsn``."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        raise ConfigurationError(
            f"the DSN is not valid: {redact(str(exc).strip(), dsn)} (DSN: {redact_dsn(dsn)})"
        ) from None
    for name, allowed in _CHOICES.items():
        value = params.get(name)
        if value is not None and str(value) not in allowed:
            raise ConfigurationError(
                f"the DSN's {name}={value!r} is not valid; allowed: {', '.join(allowed)} "
                f"(DSN: {redact_dsn(dsn)})")
    for port in str(params.get("port") or "").split(","):
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ConfigurationError(
                f"the DSN's port {port!r} is not a port number (1-65535) (DSN: {redact_dsn(dsn)})")


def is_bad_setting(exc: BaseException) -> bool:
    """Whether a connection error means the DSN is wrong, not the server unreachable."""
    return isinstance(exc, psycopg.Error) and bool(_BAD_SETTING.search(str(exc)))


def connect_once(dsn: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """``psycopg.connect`` whose errors never carry a secret: a bad setting is a
    ``ConfigurationError``, an unreachable server an ``OperationalError`` (retryable)."""
    try:
        return psycopg.connect(dsn, **kwargs)
    except psycopg.Error as exc:
        message = redact(str(exc).strip(), dsn)
        if is_bad_setting(exc) or not isinstance(exc, psycopg.OperationalError):
            raise ConfigurationError(
                f"cannot use the DSN: {message} (DSN: {redact_dsn(dsn)})") from None
        raise psycopg.OperationalError(message) from None


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


def rows_of(cur: psycopg.Cursor[Any]) -> list[Any]:
    """The rows of the statement ``cur`` just ran; none for one without a result. Cheaper
    than testing ``cur.description``, which builds a column object per column each time.
    In pipeline mode the result is not there until asked for: it is fetched."""
    result = cur.pgresult
    if result is None and cur.connection.info.pipeline_status:
        try:
            return cur.fetchall()
        except psycopg.ProgrammingError:  # a statement without rows
            return []
    return cur.fetchall() if result is not None and result.status == _TUPLES_OK else []


_TUPLES_OK = psycopg.pq.ExecStatus.TUPLES_OK


def _track(conn: psycopg.Connection[Any]) -> None:
    _OPEN_CONNECTIONS.add(conn)


_NEVER_BY_COUNT = 2**31 - 1


def _configure_pooled(conn: psycopg.Connection[Any]) -> None:
    """Every pooled connection: tracked for fork safety, without JIT, and with generic
    plans for the statements it prepares.

    Only the statements of the hot path are prepared (``Database.fetch(prepare=True)``;
    nothing else is, the pool's connections never prepare by themselves), and each has a
    generic plan as good as a custom one (tests/integration/test_claim_plan.py,
    test_complete_plan.py). PostgreSQL's own choice would re-plan the claim at every run,
    since a generic plan's estimate of ``LIMIT $n`` (a tenth of the table) makes it look
    dearer: about 0.2 ms of planning for 0.1 ms of work when a worker claims on a wake-up.

    pgwerk's statements touch a handful of rows, but their estimated cost can be large:
    at a million queued jobs a generic plan crosses ``jit_above_cost`` and the claim then
    spends ~1.5 s compiling for ~3 ms of work. JIT never pays off for such statements.
    """
    _track(conn)
    conn.execute("SET jit = off")
    conn.execute("SET plan_cache_mode = force_generic_plan")


def _configure_pooled_pgbouncer(conn: psycopg.Connection[Any]) -> None:
    """A pooled connection through PgBouncer in transaction mode: tracked, and no session
    state. A ``SET`` would stay on whichever server connection ran it, for other clients,
    and none of ours. The generic plans that made JIT costly never arise here, since
    nothing is prepared (set ``jit = off`` on the role or database if wanted)."""
    _track(conn)


class Database:
    """The pool of one ``Werk``: opened on first use, reopened in a forked child."""

    def __init__(self, dsn: str, config: WerkConfig) -> None:
        check_dsn(dsn)
        self.dsn = dsn
        self.config = config
        self._lock = threading.Lock()
        self._pool: ConnectionPool[psycopg.Connection[Row]] | None = None
        self._pid = os.getpid()
        self._on_first_connect: list[Callable[[psycopg.Connection[Any]], None]] = []
        self._wait_for_connection = min(config.connect_timeout, config.enqueue_timeout)
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
        else:
            # Prepared only when asked (fetch(prepare=True)), never by a count of runs: see
            # _configure_pooled. (None would refuse even when asked.)
            kwargs["prepare_threshold"] = _NEVER_BY_COUNT
        return kwargs

    def retrying(self, what: str, deadline: float | None = None) -> tenacity.Retrying:
        """The reconnect policy: exponential backoff, then ``DatabaseUnavailable`` after
        ``connect_attempts`` attempts, or when the next try would start past ``deadline``
        (a ``time.monotonic()`` value: the time budget of a caller's call)."""


        def give_up(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            detail = redact(str(exc).strip(), self.dsn) or type(exc).__name__
            raise DatabaseUnavailable(
                f"cannot reach PostgreSQL to {what} after {state.attempt_number} attempt(s): "
                f"{detail}"
            ) from exc

        return tenacity.Retrying(
            stop=tenacity.stop_any(tenacity.stop_after_attempt(self.config.connect_attempts),
                                   _StopAt(deadline)),
            wait=tenacity.wait_exponential(multiplier=0.1, max=2.0),
            retry=tenacity.retry_if_exception_type(CONNECTION_ERRORS),
            retry_error_callback=give_up,
            before_sleep=lambda s: logger.warning(
                "database unreachable (%s); retrying to %s",
                redact(str(s.outcome.exception() if s.outcome else ""), self.dsn), what,
            ),
        )

    def connect_direct(self, what: str = "connect", deadline: float | None = None,
                       role: str | None = None) -> psycopg.Connection[Row]:
        """A dedicated autocommit connection outside the pool (LISTEN, advisory locks, the
        heartbeat); ``role`` is appended to its ``application_name`` (``pgwerk:heartbeat``)."""

        def connect() -> psycopg.Connection[Row]:
            kwargs = self.connect_kwargs()
            if role:
                kwargs["application_name"] = f"{kwargs['application_name']}:{role}"[:63]
            if deadline is not None:  # libpq counts whole seconds, and at least 2
                left = deadline - time.monotonic()
                kwargs["connect_timeout"] = max(2, min(kwargs["connect_timeout"], int(left)))
            return connect_once(self.dsn, row_factory=dict_row, **kwargs)

        conn: psycopg.Connection[Row] = self.retrying(what, deadline)(connect)
        _track(conn)
        return conn

    def on_first_connect(self, callback: Callable[[psycopg.Connection[Any]], None]) -> None:
        self._on_first_connect.append(callback)

    def pool(self, deadline: float | None = None) -> ConnectionPool[psycopg.Connection[Row]]:
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
                first = self.connect_direct("open the connection pool", deadline)
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
    def connection(self, deadline: float | None = None) -> Iterator[psycopg.Connection[Row]]:
        """A pooled connection; waits at most until ``deadline`` (``time.monotonic()``)
        for one, else ``connect_timeout``."""
        pool = self.pool(deadline)
        timeout = self.config.connect_timeout
        if deadline is not None:
            timeout = min(timeout, max(0.01, deadline - time.monotonic()))
        with pool.connection(timeout=timeout) as conn:
            yield conn

    def run(self, what: str, fn: Callable[[psycopg.Connection[Row]], T],
            deadline: float | None = None) -> T:
        """Run ``fn`` on a pooled connection, retrying when the connection fails, for at
        most ``enqueue_timeout`` seconds in all (then ``DatabaseUnavailable``): a web
        request that enqueues during an outage fails fast. Workers ride out outages in
        their own loops, around this. ``deadline`` (``time.monotonic()``): a bound the
        caller set earlier, instead of ``enqueue_timeout`` from now."""
        if deadline is None:
            deadline = time.monotonic() + self.config.enqueue_timeout

        def attempt() -> T:
            with self.connection(deadline) as conn:
                return fn(conn)

        try:  # the common case, without building a retry policy
            return attempt()
        except CONNECTION_ERRORS:
            logger.warning("database connection failed; retrying to %s", what)
        return self.retrying(what, deadline)(attempt)

    @property
    def prepares(self) -> bool:
        """Whether statements may be prepared on the pool's connections (not behind
        PgBouncer in transaction mode)."""
        return not self.config.pgbouncer

    def fetch(self, what: str, query: bytes,
              params: Mapping[str, Any] | Sequence[Any] | None = None,
              prepare: bool = False) -> list[Row]:
        """Run one statement (autocommit) and return its rows as dicts. ``prepare``: a
        statement of the hot path, prepared on each connection and run with a generic plan
        (see ``_configure_pooled``)."""
        return self._fetch(what, query, params, prepare, dict_row)

    def fetch_tuples(self, what: str, query: bytes,
                     params: Mapping[str, Any] | Sequence[Any] | None = None,
                     prepare: bool = False) -> list[tuple[Any, ...]]:
        """``fetch``, the rows as tuples: for the hot path's few columns (building a dict
        costs psycopg a description of the columns at every run)."""
        return self._fetch(what, query, params, prepare, tuple_row)

    def _fetch(self, what: str, query: bytes, params: Mapping[str, Any] | Sequence[Any] | None,
               prepare: bool, factory: Any) -> list[Any]:
        prepare = prepare and self.prepares
        pool, deadline = self._pool, None
        if pool is not None and self._pid == os.getpid():
            # The common case, on the hot path of enqueue and of the worker: an open pool.
            # Waiting for a connection is bounded as in ``run`` (within enqueue_timeout).
            # getconn/putconn rather than pool.connection(): the same for an autocommit
            # statement (putconn replaces a broken connection), without a context manager's
            # cost on every enqueue.
            started = time.monotonic()
            try:
                conn = pool.getconn(timeout=self._wait_for_connection)
                try:
                    cur = conn.cursor(row_factory=factory)
                    return rows_of(cur.execute(query, params, prepare=prepare))
                finally:
                    pool.putconn(conn)
            except CONNECTION_ERRORS:
                logger.warning("database connection failed; retrying to %s", what)
            deadline = started + self.config.enqueue_timeout

        def go(conn: psycopg.Connection[Row]) -> list[Any]:
            cur = conn.cursor(row_factory=factory)
            return rows_of(cur.execute(query, params, prepare=prepare))

        return self.run(what, go, deadline)


class _StopAt(tenacity.stop.stop_base):
    """Stop retrying when the next try would start past ``deadline`` (monotonic)."""

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        upcoming = retry_state.upcoming_sleep or 0.0
        return self.deadline is not None and time.monotonic() + upcoming >= self.deadline


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
    # django.db.connection is a ConnectionProxy (django.utils.connection) that forwards
    # attribute access to the default database's wrapper.
    if module.startswith("django.db") or module == "django.utils.connection":
        conn.ensure_connection()  # type: ignore[attr-defined]
        return _unwrap(conn.connection)  # type: ignore[attr-defined]
    return conn
