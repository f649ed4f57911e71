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
    from pgwerk.store.core import Store


class SessionLock:
    """Leadership as a session advisory lock held on ``conn`` (kept open by the leader)."""

    #: Nothing to renew: the lock lasts as long as the connection.
    renew_every = math.inf

    def __init__(self, store: Store, key: int) -> None:
        self.store = store
        self.key = key

    def acquire(self, conn: psycopg.Connection[Any]) -> bool:
        return self.store.advisory_lock(conn, self.key)

    def renew(self, conn: psycopg.Connection[Any]) -> bool:
        return True

    def release(self, conn: psycopg.Connection[Any]) -> None:
        self.store.advisory_unlock(conn, self.key)


class Lease:
    """Leadership as a row with an expiry; any connection (or PgBouncer) will do."""

    def __init__(self, store: Store, name: str, ttl: float) -> None:
        self.store = store
        self.name = name
        self.ttl = ttl
        # Says who holds it, to an operator reading the table: host, pid, and a nonce.
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        #: Renewed three times per lease, so one slow renewal does not lose it.
        self.renew_every = ttl / 3

    def acquire(self, conn: psycopg.Connection[Any]) -> bool:
        """Take the lease if it is free or expired (or renew it if it is ours)."""
        return self.store.lease_acquire(conn, self.name, self.holder, self.ttl)

    def renew(self, conn: psycopg.Connection[Any]) -> bool:
        """Extend the lease; False when it expired and another process took it."""
        return self.acquire(conn)

    def release(self, conn: psycopg.Connection[Any]) -> None:
        self.store.lease_release(conn, self.name, self.holder)


def leadership(store: Store, name: str, key: int) -> SessionLock | Lease:
    """How the processes of one app elect the one that does ``name``: a lease through
    PgBouncer, a session advisory lock (``key``) otherwise."""
    if store.config.pgbouncer:
        return Lease(store, name, store.config.lease_ttl)
    return SessionLock(store, key)
