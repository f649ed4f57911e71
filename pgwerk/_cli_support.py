"""Plumbing of the command line: loading ``APP``, opening a fail-fast ``Werk`` for
operator commands, turning expected failures into one line, and printing tables or JSON."""

from __future__ import annotations

import dataclasses
import enum
import functools
import importlib
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import click
import psycopg
from psycopg_pool import PoolTimeout

from pgwerk.app import Werk
from pgwerk.exceptions import ConfigurationError, WerkError

F = TypeVar("F", bound=Callable[..., Any])

#: Settings of the operator commands' connection: one attempt, a short timeout.
FAIL_FAST = {"connect_attempts": 1, "connect_timeout": 5.0, "min_pool_size": 1,
             "max_pool_size": 2, "application_name": "pgwerk-cli"}


class CliError(click.ClickException):
    """A one-line error, exit status 1 (the command could not do its job)."""

    exit_code = 1


class AppError(click.ClickException):
    """``APP`` does not name a usable ``Werk``: one line, exit status 2."""

    exit_code = 2


# -- loading the app -----------------------------------------------------------------------


def load_app(spec: str) -> Werk:
    """The ``Werk`` named by ``module:attribute`` (``AsyncWerk`` also accepted).

    Raises:
        AppError: the module cannot be imported, has no such attribute, or it is not a Werk.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise AppError(f"APP must be module:attribute naming a Werk (e.g. myapp.tasks:app), "
                       f"got {spec!r}")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AppError(f"cannot import {module_name!r}: no module named {exc.name!r} "
                           f"(looked in {cwd} and on sys.path)") from None
        raise AppError(_import_failure(module_name, exc)) from None
    except (Exception, SystemExit) as exc:  # the module's own code failed
        raise AppError(_import_failure(module_name, exc)) from None
    found: Any = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise AppError(f"module {module_name!r} has no attribute {attribute!r}") from None
    sync = getattr(found, "sync", None)  # an AsyncWerk
    if not isinstance(found, Werk) and isinstance(sync, Werk):
        found = sync
    if not isinstance(found, Werk):
        raise AppError(f"{spec} is a {type(found).__name__}, not a pgwerk Werk")
    return found


def _import_failure(module_name: str, exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if "importlib" not in f.filename]
    where = f" ({frames[-1].filename}, line {frames[-1].lineno})" if frames else ""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return (f"importing {module_name!r} failed: {type(exc).__name__}"
            f"{': ' + message if message else ''}{where}")


def open_app(app_spec: str | None, dsn: str | None, schema: str | None, prefix: str | None,
             *, migrate: bool = False) -> Werk:
    """A ``Werk`` for an operator command: from ``APP`` or ``--dsn`` (else the
    environment), failing fast; it creates tables only when ``migrate`` is true."""
    if app_spec and dsn:
        raise click.UsageError("give APP or --dsn, not both")
    overrides: dict[str, Any] = dict(FAIL_FAST)
    if schema:
        overrides["schema"] = schema
    if prefix:
        overrides["prefix"] = prefix
    if not migrate:
        overrides["auto_migrate"] = False
    try:
        if app_spec:
            base = load_app(app_spec)
            return Werk(base.dsn, config=base.config.merged(**overrides))
        return Werk(dsn, **overrides)
    except ConfigurationError as exc:
        message = str(exc)
        if "PGWERK_DSN" in message:
            message = "no database given: pass APP or --dsn, or set PGWERK_DSN"
        raise click.UsageError(message) from None


# -- errors and output -----------------------------------------------------------------------


def friendly(func: F) -> F:
    """Turn the library's expected failures into one line and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except click.ClickException:
            raise
        except WerkError as exc:
            raise CliError(_one_line(exc)) from None
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise CliError(f"cannot reach PostgreSQL: {_one_line(exc)}") from None
        except psycopg.Error as exc:
            raise CliError(f"database error: {_one_line(exc)}") from None

    return wrapper  # type: ignore[return-value]


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(exc).__name__


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def jsonable(value: Any) -> Any:
    """Records as plain dicts, for ``--json``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def echo_json(value: Any) -> None:
    click.echo(json.dumps(jsonable(value), default=_json_default, indent=2))


def cell(value: Any, width: int = 60) -> str:
    if value is None:
        text = "-"
    elif isinstance(value, datetime):
        text = value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    elif isinstance(value, float):
        text = f"{value:.1f}"
    elif isinstance(value, enum.Enum):
        text = str(value.value)
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


def echo_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], empty: str) -> None:
    """Aligned columns, one row per line."""
    if not rows:
        click.echo(empty)
        return
    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))
    click.echo(line.rstrip())
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def last_line(text: str | None) -> str | None:
    lines = (text or "").strip().splitlines()
    return lines[-1] if lines else None


def parse_job_id(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise click.UsageError(f"ID must be a job id (a positive integer), got {text!r}")
    return int(text)


def split_target(values: tuple[str, ...], what: str) -> tuple[str | None, str]:
    if len(values) == 1:
        return None, values[0]
    if len(values) == 2:
        return values[0], values[1]
    raise click.UsageError(f"expected [APP] {what}, got {len(values)} argument(s)")


def json_arg(text: str | None, kind: type, option: str) -> Any:
    if text is None:
        return kind()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=option) from None
    if not isinstance(value, kind):
        raise click.BadParameter(
            f"must be a JSON {'list' if kind is list else 'object'}, got {text!r}",
            param_hint=option)
    return value


# -- shared options --------------------------------------------------------------------------


def db_options(func: F) -> F:
    """``--dsn``, ``--schema``, ``--prefix``: where the jobs are, when no APP is given."""
    func = click.option("--prefix", help="Table prefix (default _pgwerk, or the APP's).")(func)
    func = click.option("--schema", help="Schema of the pgwerk tables (default public, or "
                                          "the APP's).")(func)
    func = click.option("--dsn", metavar="DSN",
                        help="PostgreSQL URL or libpq string, instead of APP "
                             "(default $PGWERK_DSN).")(func)
    return func


json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print JSON (for scripts) instead of a table.")
