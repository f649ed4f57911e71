"""pgwerk for Flask (``pip install 'pgwerk[flask]'``), with or without Flask-SQLAlchemy.

::

    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy
    from pgwerk.contrib.flask import PgWerk

    db = SQLAlchemy()
    pgwerk = PgWerk(db=db)

    def create_app():
        app = Flask(__name__)
        app.config["SQLALCHEMY_DATABASE_URI"] = "postgresql+psycopg2://localhost/shop"
        app.config["PGWERK_OPTIONS"] = {"schema": "pgwerk"}
        db.init_app(app)
        pgwerk.init_app(app)
        return app

    @app.post("/orders")
    def create_order():
        order = Order(...)
        db.session.add(order)
        db.session.flush()
        pgwerk.enqueue(fulfil, order_id=order.id)   # in db.session's transaction
        db.session.commit()                          # the order and its job, together

Configuration (``app.config``):

- ``PGWERK_DSN``: the database of pgwerk's tables. Default: with ``db=``, Flask-SQLAlchemy's
  ``SQLALCHEMY_DATABASE_URI`` when it is PostgreSQL; else ``$PGWERK_DSN`` / ``$DATABASE_URL``.
- ``PGWERK_OPTIONS``: keyword options of ``Werk`` (``schema``, ``prefix``, ``max_pool_size`` ...).
- ``PGWERK_TRANSACTIONAL``: enqueue through ``db.session`` (the job commits with the
  session and is gone after its rollback). Default: true when ``db`` is given and pgwerk uses
  its database (no ``PGWERK_DSN``); with a ``PGWERK_DSN`` of its own pgwerk cannot know it is
  the same database, so set it to true yourself if it is.

``flask pgwerk-worker`` runs a worker inside the app (an app context around each job).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from pgwerk._logging import bind_job, configure_logging, unbind_job
from pgwerk.app import Werk
from pgwerk.contrib._dsn import libpq_dsn
from pgwerk.exceptions import ConfigurationError
from pgwerk.job import Context, EnqueueParams, Job

EXTENSION = "pgwerk"


@dataclass
class _State:
    werk: Werk
    session: Any  # Flask-SQLAlchemy's scoped session, or None: enqueue on pgwerk's pool


class PgWerk:
    """The Flask extension: one ``Werk`` per Flask app, built by ``init_app`` from
    ``app.config``.

    Args:
        app: a Flask app to initialise now (or call ``init_app`` later).
        db: the ``flask_sqlalchemy.SQLAlchemy`` object whose session ``enqueue`` writes
            through.

    ``enqueue``, ``enqueue_many``, ``apply``, ``map`` and every other ``Werk`` method are
    available on the extension and act on the current app's ``Werk``.
    """

    def __init__(self, app: Flask | None = None, *, db: Any = None) -> None:
        self.db = db
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Build the app's ``Werk`` (no connection is opened until one is needed) and add
        the ``flask pgwerk-worker`` command."""
        config = app.config
        options = config.get("PGWERK_OPTIONS") or {}
        if not isinstance(options, Mapping):
            raise ConfigurationError(
                f"PGWERK_OPTIONS must be a dict of Werk options, got {type(options).__name__}")
        dsn = config.get("PGWERK_DSN")
        uri = _postgresql_uri(config.get("SQLALCHEMY_DATABASE_URI")) if self.db else None
        transactional = config.get("PGWERK_TRANSACTIONAL", self.db is not None and not dsn)
        if not isinstance(transactional, bool):
            raise ConfigurationError(
                f"PGWERK_TRANSACTIONAL must be True or False, got {transactional!r}")
        if transactional and self.db is None:
            raise ConfigurationError(
                "PGWERK_TRANSACTIONAL needs Flask-SQLAlchemy: PgWerk(app, db=db)")
        if transactional and not dsn and uri is None:
            raise ConfigurationError(
                "PGWERK_TRANSACTIONAL: SQLALCHEMY_DATABASE_URI is not a PostgreSQL database; "
                "set PGWERK_DSN (and PGWERK_TRANSACTIONAL = False)")
        werk = Werk(dsn or uri, **options)
        app.extensions[EXTENSION] = _State(werk, self.db.session if transactional else None)
        app.cli.add_command(worker_command)

    # -- the current app's Werk ---------------------------------------------------------

    @property
    def werk(self) -> Werk:
        """The current app's ``Werk`` (needs an app context)."""
        return state(current_app).werk

    def enqueue(self, func: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> Job | None:
        """``Werk.enqueue``; in ``db.session``'s transaction unless ``_conn`` is given."""
        current = state(current_app)
        if current.session is not None and "_conn" not in kwargs:
            kwargs["_conn"] = current.session()
        return current.werk.enqueue(func, *args, **kwargs)

    def enqueue_many(self, params: Sequence[EnqueueParams], _conn: Any = None) -> list[Job | None]:
        """``Werk.enqueue_many``; in ``db.session``'s transaction unless ``_conn`` is given."""
        current = state(current_app)
        if _conn is None and current.session is not None:
            _conn = current.session()
        return current.werk.enqueue_many(params, _conn)

    def __getattr__(self, name: str) -> Any:
        # apply, map, wait_for, get_job, list_jobs ...: the Werk's own, on pgwerk's pool
        # (apply and map wait for a worker, which cannot see an uncommitted job).
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.werk, name)


def state(app: Flask) -> _State:
    try:
        found: _State = app.extensions[EXTENSION]
    except KeyError:
        raise RuntimeError(
            f"pgwerk is not initialised for the app {app.name!r}: call PgWerk.init_app(app)"
        ) from None
    return found


def _postgresql_uri(uri: Any) -> str | None:
    """A libpq connection string for an SQLAlchemy PostgreSQL URL (any driver), else
    ``None``. The URL's query (``sslmode``, ``options`` ...) is kept: SQLAlchemy hands it
    to the driver, which hands it to libpq."""
    if not uri:
        return None
    from sqlalchemy.engine import make_url

    url = make_url(uri)  # a URL object as it is: str() would mask its password
    if url.get_backend_name() != "postgresql":
        return None
    params: dict[str, Any] = {
        key: value if isinstance(value, str) else value[-1] for key, value in url.query.items()}
    return libpq_dsn(params, host=url.host, port=url.port, user=url.username,
                     password=url.password, dbname=url.database)


# -- flask pgwerk-worker ---------------------------------------------------------------


# The app whose worker runs in this process, and the app context each handler thread pushed.
_WORKER_APP: list[Flask] = []
_local = threading.local()


def _push_context(ctx: Context) -> None:
    bind_job(ctx)
    app_context = _WORKER_APP[0].app_context()
    app_context.push()
    _local.app_context = app_context


def _pop_context(ctx: Context) -> None:
    # Popping tears the context down: Flask-SQLAlchemy removes the job's session then.
    app_context = getattr(_local, "app_context", None)
    _local.app_context = None
    try:
        if app_context is not None:
            app_context.pop()
    finally:
        unbind_job(ctx)


@click.command("pgwerk-worker")
@click.option("-q", "--queues", default="default", show_default=True,
              help="Queues to work on, comma-separated, in order of preference.")
@click.option("-c", "--concurrency", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--pool", type=click.Choice(["thread", "fork", "process"]), default="thread",
              show_default=True)
@click.option("--burst", is_flag=True, help="Exit once the queues are empty.")
@click.option("--shutdown-timeout", type=click.FloatRange(min=0), default=30.0,
              show_default=True)
@click.option("--log-level", default="INFO", show_default=True)
@with_appcontext
def worker_command(queues: str, concurrency: int, pool: str, burst: bool,
                   shutdown_timeout: float, log_level: str) -> None:
    """Run a pgwerk worker for this app; each job runs inside an app context."""
    from pgwerk.worker import Worker

    configure_logging(log_level.upper(), "text")
    app = cast(Any, current_app)._get_current_object()  # a proxy: the app behind it
    _WORKER_APP[:] = [app]
    names = [q.strip() for q in queues.split(",") if q.strip()]
    # No SQLAlchemy connection may be pooled when the fork and process pools fork: a child
    # would talk on the parent's socket. Handlers check out their own.
    sqlalchemy_ext = app.extensions.get("sqlalchemy")
    for engine in getattr(sqlalchemy_ext, "engines", {}).values():
        engine.dispose()
    Worker(state(app).werk, queues=names, concurrency=concurrency, pool=pool, burst=burst,
           shutdown_timeout=shutdown_timeout, before_process=_push_context,
           after_process=_pop_context).run()
