"""pgwerk for Django (``pip install 'pgwerk[django]'``).

Add the app and, optionally, a ``PGWERK`` setting::

    INSTALLED_APPS += ["pgwerk.contrib.django"]
    PGWERK = {"OPTIONS": {"schema": "pgwerk"}}   # default: DATABASES["default"], schema public

Then enqueue from a view; the job is written through Django's connection, so it commits
with the request's transaction and vanishes if that rolls back::

    from pgwerk.contrib.django import werk

    def order(request):
        ...
        werk.enqueue("shop.tasks.fulfil", order_id=order.id)

Run workers with ``manage.py pgwerk_worker`` and schedules with ``manage.py pgwerk_cron``;
mount the dashboard with ``path("jobs/", include("pgwerk.contrib.django.urls"))`` (staff
only).

``PGWERK`` keys: ``DSN`` (default: built from ``DATABASES[DATABASE]``), ``DATABASE`` (the
alias, default ``"default"``), ``TRANSACTIONAL`` (enqueue through Django's connection;
default true unless a ``DSN`` is given), ``OPTIONS`` (keyword options of ``Werk``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from pgwerk.app import Werk
from pgwerk.batches import BatchBuilder, BatchCallback
from pgwerk.job import EnqueueParams, Job

__all__ = ["DjangoWerk", "get_werk", "reset_werk", "werk"]


class DjangoWerk(Werk):
    """A ``Werk`` whose ``enqueue``, ``enqueue_many`` and ``batch`` write through Django's
    connection to ``database`` unless ``_conn`` is given: inside ``transaction.atomic()`` (or a view
    under ``ATOMIC_REQUESTS``) the job commits with the transaction and is gone after a
    rollback; in autocommit mode it is committed at once. With ``database=None`` it is a
    plain ``Werk``.

    ``apply`` and ``map`` always enqueue on pgwerk's own connections: they wait for the job,
    which a worker could not see before the caller's transaction commits.
    """

    def __init__(self, dsn: str | None = None, *, database: str | None = "default",
                 **options: Any) -> None:
        super().__init__(dsn, **options)
        self.database = database

    def django_connection(self) -> Any:
        """Django's connection (of this thread) that enqueue writes through, or ``None``."""
        if self.database is None:
            return None
        from django.db import connections

        return connections[self.database]

    def enqueue(self, func: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> Job | None:
        if "_conn" not in kwargs and self.database is not None:
            kwargs["_conn"] = self.django_connection()
        return super().enqueue(func, *args, **kwargs)

    def enqueue_many(self, params: Sequence[EnqueueParams], _conn: Any = None,
                     batch: BatchBuilder | None = None) -> list[Job | None]:
        if _conn is None and batch is None:
            _conn = self.django_connection()
        return super().enqueue_many(params, _conn, batch)

    def batch(self, *, on_complete: BatchCallback | None = None,
              on_success: BatchCallback | None = None,
              on_failure: BatchCallback | None = None, description: str | None = None,
              _conn: Any = None) -> BatchBuilder:
        if _conn is None:
            _conn = self.django_connection()
        return super().batch(on_complete=on_complete, on_success=on_success,
                             on_failure=on_failure, description=description, _conn=_conn)

    def apply(self, func: Callable[..., Any] | str, *args: Any, timeout: float | None = None,
              **kwargs: Any) -> Any:
        kwargs.setdefault("_conn", None)  # pgwerk's pool: the worker must see the job now
        return super().apply(func, *args, timeout=timeout, **kwargs)


_lock = threading.Lock()
_werk: DjangoWerk | None = None


def get_werk() -> DjangoWerk:
    """The project's ``Werk``, built from the settings on first use (no connection is
    opened until one is needed). The same object for the life of the process, until the
    ``PGWERK`` or ``DATABASES`` setting changes (``override_settings`` in tests)."""
    global _werk
    found = _werk
    if found is not None:
        return found
    with _lock:
        if _werk is None:
            from pgwerk.contrib.django._settings import read_settings

            current = read_settings()
            _werk = DjangoWerk(current.dsn, database=current.database, **current.options)
        return _werk


def reset_werk() -> None:
    """Close and forget the ``Werk``; the next ``get_werk()`` builds it from the settings
    again."""
    global _werk
    with _lock:
        old, _werk = _werk, None
    if old is not None:
        old.close()


def __getattr__(name: str) -> Any:
    # `from pgwerk.contrib.django import werk` builds the Werk then, not when Django
    # imports this package as an app (settings may not be ready yet).
    if name == "werk":
        return get_werk()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
