"""The read-only statements of ``pgwerk doctor`` (``sql/doctor.sql``), on one connection of
its own. Answers are cached per statement for one run of the checks, since several checks
read the same facts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg

from pgwerk.store import migrate
from pgwerk.store.core import Store
from pgwerk.store.statements import blocks, compose


class Diagnostics:
    """Runs the named blocks of ``doctor.sql`` for one app on ``conn``."""

    def __init__(self, store: Store, conn: psycopg.Connection[Any]) -> None:
        self.store = store
        self.conn = conn
        self._blocks = blocks("doctor.sql")
        self._cache: dict[str, list[dict[str, Any]]] = {}

    def fetch(self, name: str, params: Mapping[str, Any] | None = None,
              cached: bool = True) -> list[dict[str, Any]]:
        if cached and name in self._cache:
            return self._cache[name]
        config = self.store.config
        query = compose(self._blocks[name], config.schema, config.prefix).as_bytes(None)
        try:
            cur = self.conn.execute(query, dict(params or {}))
        except psycopg.Error:
            if self.conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
                self.conn.rollback()  # so that the next check can run
            raise
        rows = cur.fetchall() if cur.description else []
        if cached:
            self._cache[name] = rows
        return rows

    def schema_version(self) -> int:
        return migrate.current_version(self.conn, self.store.config.schema,
                                       self.store.config.prefix)


def cron_leader_pid(store: Store, lock_key: int) -> int | None:
    """The server process id of the connection that holds the cron leader's lock, if any."""
    conn = store.connect_direct("find the cron scheduler")
    try:
        rows = Diagnostics(store, conn).fetch("doctor_cron_leader", {"lock": lock_key})
    finally:
        conn.close()
    return int(rows[0]["pid"]) if rows else None
