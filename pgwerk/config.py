"""Settings of a ``Werk``, checked once when the app is built."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from pgwerk._allowlist import normalize_handlers
from pgwerk._validate import INT32_MAX, integer, seconds
from pgwerk.exceptions import ConfigurationError
from pgwerk.serializers import JSONSerializer, Serializer

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class WerkConfig:
    """Everything a ``Werk`` can be configured with. Keyword arguments to ``Werk`` win.

    Attributes:
        schema: PostgreSQL schema of the pgwerk tables (created if missing).
        prefix: prefix of the table names (``<prefix>_jobs``, ...).
        min_pool_size / max_pool_size: bounds of the connection pool.
        serializer: turns payloads and results into text; JSON by default.
        auto_migrate: create and migrate the tables on first connect.
        result_ttl: seconds a completed job's row is kept (``None``: forever).
        failure_ttl: seconds a failed, aborted or expired job's row is kept.
        max_active_secs: an active job that does not heartbeat is considered lost after
            this many seconds (or after its ``_timeout`` plus a minute, if longer).
        connect_attempts: attempts to reach PostgreSQL before ``DatabaseUnavailable``.
        connect_timeout: seconds one connection attempt may take.
        max_lost: how many times a job may be lost with its worker before it fails.
        application_name: shown in ``pg_stat_activity``.
        enqueue_timeout: seconds a call of the app (``enqueue``, ``get_job``, ...) may
            spend reaching the database, retries included, before ``DatabaseUnavailable``
            (workers keep retrying on their own).
        pgbouncer: work through PgBouncer in transaction mode: poll instead of LISTEN,
            a lease row instead of session advisory locks, no prepared statements.
            Default: ``$PGWERK_PGBOUNCER`` (``1``/``true``/``yes``/``on``), else off.
        poll_interval: in PgBouncer mode, seconds between looks for new work and for
            finished jobs (``apply``/``wait_for``), since no notification arrives.
        handlers: the functions workers may run (jobs and callbacks): module prefixes or
            exact dotted paths (``["myapp.tasks", "myapp.other.func"]``). A job naming
            anything else fails without being imported. ``None`` (the default) runs any
            function, which lets whoever can write to the jobs table run code.
        lease_ttl: in PgBouncer mode, seconds the cron leader's lease lasts unrenewed:
            another scheduler takes over about this long after the leader dies.
    """

    schema: str = "public"
    prefix: str = "_pgwerk"
    min_pool_size: int = 1
    max_pool_size: int = 3
    serializer: Serializer = field(default_factory=JSONSerializer)
    auto_migrate: bool = True
    result_ttl: float | None = 86400.0
    failure_ttl: float | None = 7 * 86400.0
    max_active_secs: float | None = 3600.0
    connect_attempts: int = 5
    connect_timeout: float = 5.0
    max_lost: int = 3
    application_name: str = "pgwerk"
    pgbouncer: bool = field(default_factory=lambda: pgbouncer_from_env())
    poll_interval: float = 0.5
    lease_ttl: float = 10.0
    enqueue_timeout: float = 5.0
    handlers: Sequence[str] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "handlers", normalize_handlers(self.handlers))
        _check_connection_settings(self)
        for name, limit in (("schema", 63), ("prefix", 40)):
            value = getattr(self, name)
            if not isinstance(value, str) or not _IDENTIFIER.match(value) or len(value) > limit:
                raise ConfigurationError(
                    f"{name} must be a plain identifier (letters, digits, underscore; not "
                    f"starting with a digit; at most {limit} characters), got {value!r}"
                )
        try:
            self._check_numbers()
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(str(exc)) from None
        if not (callable(getattr(self.serializer, "dumps", None))
                and callable(getattr(self.serializer, "loads", None))):
            raise ConfigurationError(
                f"serializer must have dumps(obj) -> str and loads(str) -> obj, "
                f"got {self.serializer!r}"
            )

    def _check_numbers(self) -> None:
        for name in ("min_pool_size", "max_pool_size", "connect_attempts"):
            integer(name, getattr(self, name), minimum=1, maximum=INT32_MAX)
        if self.max_pool_size < self.min_pool_size:
            raise ValueError(
                f"max_pool_size ({self.max_pool_size}) must be >= min_pool_size "
                f"({self.min_pool_size})"
            )
        integer("max_lost", self.max_lost, minimum=0, maximum=INT32_MAX)
        # Under a second makes no sense for these two: every running job would be taken
        # from its live worker at the next sweep, and libpq counts whole seconds (a pool
        # given less gives up on every connection at once).
        for name, positive in (("result_ttl", False), ("failure_ttl", False),
                               ("max_active_secs", True), ("connect_timeout", True)):
            value = getattr(self, name)
            if value is None and name == "connect_timeout":
                raise ValueError("connect_timeout must be a number of seconds, got None")
            checked = seconds(name, value, positive=positive)
            if name in ("max_active_secs", "connect_timeout") and checked is not None \
                    and checked < 1.0:
                raise ValueError(f"{name} must be at least 1 second, got {value!r}")
            object.__setattr__(self, name, checked)

    def merged(self, **overrides: Any) -> WerkConfig:
        """A copy with the given settings replaced; unknown names are a ``TypeError``."""
        names = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(
                f"unknown Werk option(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}"
            )
        return replace(self, **overrides)


# -- PgBouncer mode and time budgets -----------------------------------------------------

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")
#: Longest poll interval or lease accepted (a day): anything longer is a typo.
_MAX_SECONDS = 86400.0


def pgbouncer_from_env() -> bool:
    """``$PGWERK_PGBOUNCER`` as a boolean (unset: False)."""
    value = os.environ.get("PGWERK_PGBOUNCER", "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(
        f"PGWERK_PGBOUNCER must be one of {', '.join(_TRUE)} (on) or "
        f"{', '.join(repr(v) for v in _FALSE)} (off), got {os.environ['PGWERK_PGBOUNCER']!r}"
    )


def _positive_seconds(name: str, value: Any, low: float) -> float:
    try:
        number = seconds(name, value, positive=True)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(str(exc)) from None
    if number is None or not low <= number <= _MAX_SECONDS:
        raise ConfigurationError(
            f"{name} must be a number of seconds between {low:g} and {_MAX_SECONDS:g} "
            f"(or a timedelta), got {value!r}"
        )
    return number


def _check_connection_settings(config: WerkConfig) -> None:
    if not isinstance(config.pgbouncer, bool):
        raise ConfigurationError(f"pgbouncer must be True or False, got {config.pgbouncer!r}")
    object.__setattr__(config, "poll_interval",
                       _positive_seconds("poll_interval", config.poll_interval, 0.01))
    lease = _positive_seconds("lease_ttl", config.lease_ttl, 0.5)
    object.__setattr__(config, "lease_ttl", lease)
    object.__setattr__(config, "enqueue_timeout",
                       _positive_seconds("enqueue_timeout", config.enqueue_timeout, 0.1))
