"""Settings of a ``Werk``, checked once when the app is built."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from typing import Any

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

    def __post_init__(self) -> None:
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
        # Zero makes no sense for these two: every job would be lost at once, and libpq
        # reads a connect_timeout of zero as "wait forever".
        for name, positive in (("result_ttl", False), ("failure_ttl", False),
                               ("max_active_secs", True), ("connect_timeout", True)):
            value = getattr(self, name)
            if value is None and name == "connect_timeout":
                raise ValueError("connect_timeout must be a number of seconds, got None")
            object.__setattr__(self, name, seconds(name, value, positive=positive))

    def merged(self, **overrides: Any) -> WerkConfig:
        """A copy with the given settings replaced; unknown names are a ``TypeError``."""
        names = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(
                f"unknown Werk option(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}"
            )
        return replace(self, **overrides)
