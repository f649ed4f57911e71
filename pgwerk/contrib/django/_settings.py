"""The ``PGWERK`` Django setting, read and checked once: which database, which options."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from pgwerk.contrib._dsn import libpq_dsn

#: Keys of ``settings.PGWERK``.
KEYS = ("DSN", "DATABASE", "TRANSACTIONAL", "OPTIONS")


@dataclass(frozen=True)
class PgwerkSettings:
    """What ``settings.PGWERK`` says, with the defaults filled in.

    Attributes:
        dsn: where pgwerk's tables live.
        database: the Django database alias whose connection ``enqueue`` writes through
            (so the job commits or rolls back with Django's transaction); ``None`` when
            enqueue uses pgwerk's own pool.
        options: keyword options for ``Werk`` (``schema``, ``prefix``, ``max_pool_size`` ...).
    """

    dsn: str
    database: str | None
    options: dict[str, Any] = field(default_factory=dict)


def read_settings() -> PgwerkSettings:
    """``settings.PGWERK`` checked: unknown keys, a missing or non-PostgreSQL database and
    wrongly typed values raise ``ImproperlyConfigured`` naming the key."""
    raw = getattr(settings, "PGWERK", None)
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured(f"PGWERK must be a dict, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ImproperlyConfigured(
            f"PGWERK has unknown key(s) {', '.join(map(repr, unknown))}; valid: {', '.join(KEYS)}")
    dsn = raw.get("DSN")
    if dsn is not None and (not isinstance(dsn, str) or not dsn):
        raise ImproperlyConfigured(f"PGWERK['DSN'] must be a non-empty string, got {dsn!r}")
    alias = raw.get("DATABASE", "default")
    if not isinstance(alias, str) or alias not in settings.DATABASES:
        raise ImproperlyConfigured(
            f"PGWERK['DATABASE'] must name one of DATABASES ({', '.join(settings.DATABASES)}), "
            f"got {alias!r}")
    # With a DSN of its own pgwerk may live in another database than Django's: writing the
    # job through Django's connection would then put it in the wrong place. Only when the
    # DSN is derived from DATABASES (or the user says it is the same database) is that safe.
    transactional = raw.get("TRANSACTIONAL", dsn is None)
    if not isinstance(transactional, bool):
        raise ImproperlyConfigured(
            f"PGWERK['TRANSACTIONAL'] must be True or False, got {transactional!r}")
    options = raw.get("OPTIONS", {})
    if not isinstance(options, Mapping):
        raise ImproperlyConfigured(
            f"PGWERK['OPTIONS'] must be a dict of Werk options, got {type(options).__name__}")
    if dsn is None or transactional:
        _check_postgresql(alias)
    return PgwerkSettings(dsn=dsn or dsn_from_database(alias),
                          database=alias if transactional else None, options=dict(options))


def _check_postgresql(alias: str) -> None:
    engine = settings.DATABASES[alias].get("ENGINE", "")
    if connections[alias].vendor != "postgresql":
        raise ImproperlyConfigured(
            f"pgwerk needs PostgreSQL, but DATABASES[{alias!r}] uses {engine!r}; set "
            f"PGWERK['DSN'] to a PostgreSQL database (and PGWERK['TRANSACTIONAL'] = False)")


def dsn_from_database(alias: str) -> str:
    """A libpq connection string for ``DATABASES[alias]``: name, user, password, host,
    port, and those ``OPTIONS`` that libpq knows (``sslmode``, ``options``, ``service`` ...);
    Django's own options (``isolation_level``, ``pool`` ...) are left out."""
    db = settings.DATABASES[alias]
    return libpq_dsn(db.get("OPTIONS") or {}, dbname=db.get("NAME"), user=db.get("USER"),
                     password=db.get("PASSWORD"), host=db.get("HOST"), port=db.get("PORT"))
