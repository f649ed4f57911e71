"""LISTEN/NOTIFY: one listening connection per process and app, shared by the worker (new
jobs, abort requests) and by callers waiting for results (``apply``, ``wait_for``).

Payloads on the app's channel: ``q:<queue>`` a runnable job was committed in that queue;
``d:<id>,<id>`` those jobs ended; ``a:<id>`` abort was requested for that job. A subscriber
called with ``None`` must assume it missed notifications (the connection was re-made).

Behind PgBouncer in transaction mode LISTEN cannot work (the server connection that
listened is handed to other clients between transactions): there a ``Poller`` calls every
subscriber with ``None`` at each poll interval instead, and they look for themselves.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterable

import psycopg

from pgwerk.exceptions import ConfigurationError
from pgwerk.store.connections import Database, connect_once, redact
from pgwerk.store.statements import quote_ident

logger = logging.getLogger(__name__)

Subscriber = Callable[[str | None], None]

# How often the listening loop looks up from its socket to see whether it should stop.
_STOP_CHECK = 0.25


def channel_name(schema: str, prefix: str) -> str:
    """The app's channel; long names are hashed, since PostgreSQL cuts channels at 63 bytes
    and two apps must never share one."""
    name = f"pgwerk.{schema}.{prefix}"
    if len(name) <= 63:
        return name
    return "pgwerk." + hashlib.sha256(name.encode()).hexdigest()[:32]


class Listener:
    """A background thread that LISTENs and fans notifications out to subscribers."""

    def __init__(self, db: Database, channel: str) -> None:
        self._db = db
        self._channel = channel
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._conn: psycopg.Connection | None = None
        self._pid = os.getpid()

    def subscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.append(subscriber)
        self._ensure_started()

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

    def wait_ready(self, timeout: float) -> bool:
        """Block until the LISTEN is in place (so no notification after this is missed)."""
        self._ensure_started()
        return self._ready.wait(timeout)

    def _ensure_started(self) -> None:
        if self._pid != os.getpid():  # forked: the parent's thread and lock state are not ours
            self._lock = threading.Lock()
        with self._lock:
            if self._pid != os.getpid():
                self._thread, self._conn, self._pid = None, None, os.getpid()
                self._ready.clear()
                self._stop.clear()
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="pgwerk-listener", daemon=True
                )
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        conn = self._conn
        if conn is not None and self._pid == os.getpid():
            try:
                conn.cancel_safe(timeout=1.0)
            except Exception:
                pass
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        self._thread = None

    def _publish(self, payloads: Iterable[str | None]) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for payload in payloads:
            for subscriber in subscribers:
                try:
                    subscriber(payload)
                except Exception:
                    logger.exception("notification subscriber failed")

    def _run(self) -> None:
        backoff = 0.1
        first = True
        while not self._stop.is_set():
            try:
                conn = connect_once(self._db.dsn, **self._db.connect_kwargs())
            except (psycopg.OperationalError, ConfigurationError) as exc:
                logger.warning("LISTEN connection failed (%s); retrying in %.1fs", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self._conn = conn
            try:
                conn.execute(f"LISTEN {quote_ident(self._channel)}".encode())
                self._ready.set()
                if not first:
                    logger.info("LISTEN connection re-established")
                    self._publish([None])
                first, backoff = False, 0.1
                while not self._stop.is_set():
                    # stop_after=1: hand on what arrived (one packet may hold several)
                    # at once, instead of collecting for the whole timeout.
                    arrived = conn.notifies(timeout=_STOP_CHECK, stop_after=1)
                    batch = [n.payload for n in arrived]
                    if batch:
                        self._publish(batch)
            except psycopg.Error as exc:
                if not self._stop.is_set():
                    logger.warning("LISTEN connection lost (%s); reconnecting",
                                   redact(str(exc), self._db.dsn))
                    self._ready.clear()
                    self._stop.wait(backoff)
            finally:
                self._conn = None
                try:
                    conn.close()
                except Exception:
                    pass


class Poller:
    """The ``Listener`` of PgBouncer mode: no connection, a tick every ``interval`` seconds
    that tells each subscriber to look again (as if notifications had been missed)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._pid = os.getpid()

    def subscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.append(subscriber)
        self._ensure_started()

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

    def wait_ready(self, timeout: float) -> bool:
        """Always ready: there is nothing to set up."""
        self._ensure_started()
        return True

    def _ensure_started(self) -> None:
        if self._pid != os.getpid():  # forked: the parent's thread is not ours
            self._lock = threading.Lock()
            self._thread, self._pid = None, os.getpid()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="pgwerk-poller",
                                                daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                subscribers = list(self._subscribers)
            for subscriber in subscribers:
                try:
                    subscriber(None)
                except Exception:
                    logger.exception("poll subscriber failed")


def make_listener(db: Database, channel: str) -> Listener | Poller:
    """LISTEN on the app's channel, or poll when the app runs through PgBouncer."""
    if db.config.pgbouncer:
        return Poller(db.config.poll_interval)
    return Listener(db, channel)


class Waiters:
    """Callers blocked until some jobs end, woken by ``d:`` notifications naming them, by
    ``d:*`` (more jobs ended than one notice can name) and by every reconnect of the
    listener (notifications may have been missed)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[int, set[threading.Event]] = {}
        self._events: set[threading.Event] = set()

    def register(self, ids: Iterable[int]) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._events.add(event)
            for job_id in ids:
                self._by_id.setdefault(job_id, set()).add(event)
        return event

    def unregister(self, ids: Iterable[int], event: threading.Event) -> None:
        with self._lock:
            self._events.discard(event)
            for job_id in ids:
                events = self._by_id.get(job_id)
                if events is not None:
                    events.discard(event)
                    if not events:
                        del self._by_id[job_id]

    def notify(self, payload: str | None) -> None:
        if payload is None or payload == "d:*":  # a reconnect, or too many ids to name
            with self._lock:
                events = list(self._events)
        elif payload.startswith("d:"):
            with self._lock:
                if not self._by_id:
                    return
                events = [
                    event
                    for part in payload[2:].split(",")
                    if part.isdigit()
                    for event in self._by_id.get(int(part), ())
                ]
        else:
            return
        for event in events:
            event.set()
