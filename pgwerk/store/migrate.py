"""Creates and migrates the pgwerk tables, once, under an advisory lock.

The lock is transaction-scoped (``pg_advisory_xact_lock``) and taken in the transaction that
runs the DDL, so it works through PgBouncer in transaction mode as well: it needs no
session, and it ends with the transaction whichever server connection ran it.
"""

from __future__ import annotations

import logging
import zlib
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from pgwerk.exceptions import SchemaError
from pgwerk.store.statements import compose, migrations, quote_ident

logger = logging.getLogger(__name__)


def _lock_key(schema: str, prefix: str) -> int:
    return zlib.crc32(f"pgwerk:migrate:{schema}.{prefix}".encode())


def latest_version() -> int:
    return migrations()[-1][0]


def migration_sql(schema: str, prefix: str, *, since: int = 0) -> str:
    """The DDL that brings a schema from ``since`` to the latest version, as one script."""
    table = _migrations_table(schema, prefix)
    parts = [
        f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)};",
        f"CREATE TABLE IF NOT EXISTS {table} (\n    version integer PRIMARY KEY,\n"
        f"    name text NOT NULL,\n    applied_at timestamptz NOT NULL DEFAULT now()\n);",
    ]
    for version, name, text in migrations():
        if version > since:
            ddl = compose(text, schema, prefix).as_string(None)
            parts.append(f"-- migration {version:04d}_{name}\n" + ddl)
            parts.append(
                f"INSERT INTO {table} (version, name) VALUES ({version}, '{name}') "
                "ON CONFLICT DO NOTHING;"
            )
    return "\n\n".join(parts) + "\n"


def _migrations_table(schema: str, prefix: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(prefix + '_migrations')}"


def current_version(conn: psycopg.Connection[Any], schema: str, prefix: str) -> int:
    """The schema's version, 0 when the pgwerk tables do not exist."""
    table = _migrations_table(schema, prefix)
    with conn.cursor(row_factory=tuple_row) as cur:
        # Read the catalog with a fresh snapshot. to_regclass() answers from this backend's
        # cache, which still says "missing" after another process created the table while
        # this one waited for the migration lock: it would then run every migration again.
        present = cur.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c"
            " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname = %s)",
            (schema, f"{prefix}_migrations"),
        ).fetchone()
        if not present or not present[0]:
            return 0
        found = cur.execute(f"SELECT coalesce(max(version), 0) FROM {table}".encode()).fetchone()
    return int(found[0]) if found else 0


def migrate(conn: psycopg.Connection[Any], schema: str, prefix: str) -> int:
    """Bring the schema to the latest version; safe when many processes start at once.

    Returns the number of migrations applied.
    """
    if current_version(conn, schema, prefix) >= latest_version():
        return 0
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(schema, prefix),))
        since = current_version(conn, schema, prefix)
        if since >= latest_version():
            return 0
        conn.execute(migration_sql(schema, prefix, since=since).encode())
        applied = sum(1 for version, _name, _text in migrations() if version > since)
    logger.info("pgwerk schema %s.%s migrated to version %d", schema, prefix, latest_version())
    return applied


def check_schema(conn: psycopg.Connection[Any], schema: str, prefix: str) -> None:
    """Raise ``SchemaError`` unless the schema is at the version this code expects."""
    have, want = current_version(conn, schema, prefix), latest_version()
    if have < want:
        state = "missing" if have == 0 else f"at version {have}"
        raise SchemaError(
            f"pgwerk tables in schema {schema!r} (prefix {prefix!r}) are {state}; this "
            f"version needs {want}. Run `pgwerk migrate` (or `pgwerk migrate --sql` for the "
            f"DDL), or create the Werk with auto_migrate=True."
        )
