"""Connection strings from a framework's database settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg


def libpq_dsn(options: Mapping[str, Any], **main: Any) -> str:
    """A libpq connection string: the ``main`` parameters (``host``, ``dbname`` ...) that
    have a value, over those ``options`` libpq knows (``sslmode``, ``options``, ``host`` in
    a URL's query ...). Driver and framework options are left out."""
    known = {option.keyword.decode() for option in psycopg.pq.Conninfo.get_defaults()}
    kept = {k: str(v) for k, v in {**options, **{k: v for k, v in main.items() if v}}.items()
            if k in known and v not in (None, "") and isinstance(v, (str, int))}
    return psycopg.conninfo.make_conninfo("", **kept)
