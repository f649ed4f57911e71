"""Leadership: which one of many processes does a duty (the cron scheduler).

Two ways to hold it, one interface (``acquire``, ``renew``, ``release``, ``renew_every``):

- ``SessionLock``, the default: a session advisory lock on the leader's own connection.
  When the leader dies its connection closes, the lock goes with it, and another process
  takes over at its next try.
- ``Lease``, in PgBouncer mode: a row in the ``leases`` table with an expiry, renewed by
  its holder. PgBouncer in transaction mode gives each transaction whichever server
  connection is free, so a session lock would stay on a server connection after its
  taker is gone (and could be "released" by nobody). A lease needs no session; when its
  holder dies, another process takes over once it has expired (``lease_ttl``).
"""

from __future__ import annotations

import math
import os
import socket
import uuid
from typing import TYPE_CHECKING, Any

import psycopg

if TYPE_CHECKING:
    from pgwerk.app import Werk


def _rows(conn: psycopg.Connection[Any], query: bytes,
          params: dict[str, Any]) -> list[dict[str, Any]]:
    cur = conn.execute(query, params)
    return cur.fetchall() if cur.description else []


class SessionLock:
    """Leadership as a session advisory lock held on ``conn`` (kept open by the leader)."""

    #: Nothing to renew: the lock lasts as long as the connection.
    renew_every = math.inf

    def __init__(self, app: Werk, key: int) -> None:
        self.app = app
        self.key = key

    def acquire(self, conn: psycopg.Connection[Any]) -> bool:
        rows = _rows(conn, self.app.queries["cron_lock"], {"lock": self.key})
        return bool(rows and rows[0]["leader"])

    def renew(self, conn: psycopg.Connection[Any]) -> bool:
        return True

    def release(self, conn: psycopg.Connection[Any]) -> None:
        _rows(conn, self.app.queries["cron_unlock"], {"lock": self.key})


class Lease:
    """Leadership as a row with an expiry; any connection (or PgBouncer) will do."""

    def __init__(self, app: Werk, name: str, ttl: float) -> None:
        self.app = app
        self.name = name
        self.ttl = ttl
        # Says who holds it, to an operator reading the table: host, pid, and a nonce.
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        #: Renewed three times per lease, so one slow renewal does not lose it.
        self.renew_every = ttl / 3

    def acquire(self, conn: psycopg.Connection[Any]) -> bool:
        """Take the lease if it is free or expired (or renew it if it is ours)."""
        params = {"name": self.name, "holder": self.holder, "ttl": self.ttl}
        return bool(_rows(conn, self.app.queries["lease_acquire"], params))

    def renew(self, conn: psycopg.Connection[Any]) -> bool:
        """Extend the lease; False when it expired and another process took it."""
        return self.acquire(conn)

    def release(self, conn: psycopg.Connection[Any]) -> None:
        _rows(conn, self.app.queries["lease_release"], {"name": self.name, "holder": self.holder})


def leadership(app: Werk, name: str, key: int) -> SessionLock | Lease:
    """How ``app``'s processes elect the one that does ``name``: a lease through
    PgBouncer, a session advisory lock (``key``) otherwise."""
    if app.config.pgbouncer:
        return Lease(app, name, app.config.lease_ttl)
    return SessionLock(app, key)
