"""Connection strings from a framework's database settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg


def libpq_dsn(params: Mapping[str, Any]) -> str:
    """A libpq connection string of those ``params`` libpq knows (``host``, ``sslmode``,
    ``options`` ...) that have a value; driver and framework options are left out."""
    known = {option.keyword.decode() for option in psycopg.pq.Conninfo.get_defaults()}
    kept = {k: str(v) for k, v in params.items()
            if k in known and v not in (None, "") and isinstance(v, (str, int))}
    return psycopg.conninfo.make_conninfo("", **kept)
