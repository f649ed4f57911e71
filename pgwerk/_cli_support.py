"""Plumbing of the command line: loading ``APP``, opening a fail-fast ``Werk`` for
operator commands, turning expected failures into one line, and printing tables or JSON."""

from __future__ import annotations

import dataclasses
import enum
import functools
import importlib
import json
import math
import os
import re
import shutil
import sys
import traceback
from collections.abc import Callable, Collection, Sequence
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import click
import psycopg
from psycopg_pool import PoolTimeout

from pgwerk.app import Werk
from pgwerk.exceptions import ConfigurationError, WerkError
from pgwerk.serializers import JSONSerializer

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
            overrides["serializer"] = JSONOnly(base.config.serializer)
            return Werk(base.dsn, config=base.config.merged(**overrides))
        overrides["serializer"] = JSONOnly()
        return Werk(dsn, **overrides)
    except ConfigurationError as exc:
        message = str(exc)
        if "PGWERK_DSN" in message:
            message = "no database given: pass APP or --dsn, or set PGWERK_DSN"
        raise click.UsageError(message) from None


class NotShown(Exception):
    """A stored value the command line does not decode (it is not JSON)."""


class JSONOnly:
    """The serializer of every command-line app: it writes with the app's own serializer
    (so ``enqueue`` stores what workers expect) but reads JSON only. Any other stored value
    (a pickle, say) is never decoded here: reading a job must not run code."""

    def __init__(self, writer: Any = None) -> None:
        self.writer = writer if writer is not None else JSONSerializer()

    def dumps(self, obj: Any) -> str:
        text: str = self.writer.dumps(obj)
        return text

    def loads(self, data: str) -> Any:
        try:
            return json.loads(data)
        except (ValueError, TypeError):
            size = len(data.encode() if isinstance(data, str) else data)
            raise NotShown(f"binary, {size} bytes") from None


_NOT_SHOWN = re.compile(r"^(payload|result) cannot be decoded by JSONOnly: "
                        r"NotShown\('binary, (\d+) bytes'\)")


def binary_note(payload_error: str | None, what: str) -> str | None:
    """``"binary payload, N bytes"`` when a job's ``what`` ("payload" or "result") was not
    JSON and so not decoded by ``JSONOnly``; None otherwise."""
    match = _NOT_SHOWN.match(payload_error or "")
    if match is None:
        return None
    if match.group(1) != what:
        # The result's note replaces the payload's; a payload that was not JSON has no
        # arguments decoded, so say so without a size.
        return f"binary {what}" if what == "payload" else None
    return f"binary {what}, {match.group(2)} bytes"


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


def show_time(value: datetime) -> str:
    """A moment in the operator's local time, with the zone said (``... 14:03:07 CET``)."""
    local = value.astimezone()
    return local.strftime("%Y-%m-%d %H:%M:%S ") + (local.tzname() or local.strftime("%z"))


def short_time(value: datetime, today: date | None = None) -> str:
    """A moment for a table: the time alone when it is today, else the date and the minute;
    the zone always said."""
    local = value.astimezone()
    zone = local.tzname() or local.strftime("%z")
    if local.date() == (today or datetime.now(local.tzinfo).date()):
        return local.strftime("%H:%M:%S ") + zone
    return local.strftime("%Y-%m-%d %H:%M ") + zone


def cell(value: Any, width: int = 60) -> str:
    if value is None:
        text = "-"
    elif isinstance(value, datetime):
        text = show_time(value)
    elif isinstance(value, float):
        text = f"{value:.1f}"
    elif isinstance(value, enum.Enum):
        text = str(value.value)
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


#: Columns are never cut narrower than this (or their header, if shorter).
MIN_COLUMN = 8
GAP = "  "


def terminal_width() -> int:
    """Columns of the terminal (``$COLUMNS`` wins; 80 when stdout is not a terminal)."""
    return max(shutil.get_terminal_size((80, 24)).columns, 20)


def echo_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], empty: str, *,
               drop_zero: Sequence[str] = (), width: int | None = None) -> None:
    """Aligned columns, one row per line, fitted to the terminal's width.

    Columns named in ``drop_zero`` are left out when every row has 0 there; when the
    table is still too wide, the widest columns are cut (their cells end with ``…``).
    """
    if not rows:
        click.echo(empty)
        return
    keep = [i for i, h in enumerate(headers)
            if h not in drop_zero or any(row[i] not in (0, None) for row in rows)]
    # A cut time says nothing: cut other columns first.
    fixed = {n for n, i in enumerate(keep) if any(isinstance(row[i], datetime) for row in rows)}
    headers = [headers[i].upper() for i in keep]
    cells = [[short_time(row[i]) if isinstance(row[i], datetime) else cell(row[i], 10_000)
              for i in keep] for row in rows]
    widths = fit_widths([max(len(h), *(len(r[i]) for r in cells)) for i, h in
                         enumerate(headers)], width or terminal_width(), fixed)
    click.echo(_line(headers, widths))
    for row in cells:
        click.echo(_line(row, widths))


def fit_widths(natural: list[int], total: int, fixed: Collection[int] = ()) -> list[int]:
    """Column widths that fit in ``total`` characters (with gaps): the widest column
    gives up a character until everything fits or every column is at its minimum;
    ``fixed`` columns only when the others cannot give more."""
    widths = list(natural)
    budget = total - len(GAP) * (len(widths) - 1)
    for allowed in ([i for i in range(len(widths)) if i not in fixed], range(len(widths))):
        while sum(widths) > budget and allowed:
            widest = max(allowed, key=lambda i: widths[i])
            if widths[widest] <= MIN_COLUMN:
                break
            widths[widest] -= 1
    return widths


def _line(values: Sequence[str], widths: Sequence[int]) -> str:
    return GAP.join(_cut(v, w).ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def percent(fraction: float | None) -> str | None:
    """A job's progress as a whole percentage, rounded down (99.9% is not done yet)."""
    return None if fraction is None else f"{int(fraction * 100)}%"


def last_line(text: str | None) -> str | None:
    lines = (text or "").strip().splitlines()
    return lines[-1] if lines else None


#: The largest job id (ids are PostgreSQL bigints).
MAX_JOB_ID = 2**63 - 1


def parse_job_id(text: str, what: str = "a job id") -> int:
    """A job (or batch) id from the command line: ASCII decimal digits only
    (``str.isdigit`` also accepts '²' and other digits ``int`` cannot read)."""
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_JOB_ID:
        raise click.UsageError(f"ID must be {what} (a positive integer of ASCII digits), "
                               f"got {text!r}")
    return int(text)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")
_UNIT_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}


def parse_duration(text: str) -> float:
    """Seconds in ``30s``, ``15m``, ``7d``, ``1h30m`` or a plain number of seconds.

    Raises:
        ValueError: anything else, with the forms that are allowed.
    """
    spec = text.strip().lower()
    try:
        value = float(spec)
    except ValueError:
        parts = _DURATION_PART.findall(spec)
        if not spec or "".join(n + u for n, u in parts) != spec:
            raise ValueError(
                f"{text!r} is not a duration; use a number of seconds or amounts with "
                f"units w, d, h, m, s such as 30s, 15m, 7d, 1h30m") from None
        value = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{text!r} is not a duration: it must be finite and not negative")
    return value


class Duration(click.ParamType):
    """A click option type for ``parse_duration``; the value is seconds (float)."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def show_duration(seconds: float) -> str:
    """``7d``, ``1h30m``, ``45s``: the shortest readable form of a whole number of
    seconds (fractions are shown as seconds)."""
    if seconds != int(seconds):
        return f"{seconds:g}s"
    rest, parts = int(seconds), []
    for unit in "dhms":
        amount, rest = divmod(rest, _UNIT_SECONDS[unit])
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts) or "0s"


def split_target(values: tuple[str, ...], what: str) -> tuple[str | None, str]:
    if len(values) == 1:
        return None, values[0]
    if len(values) == 2:
        return values[0], values[1]
    raise click.UsageError(f"expected [APP] {what}, got {len(values)} argument(s)")


def split_optional_id(values: tuple[str, ...]) -> tuple[str | None, int | None]:
    """``[APP] [ID]``: nothing, an ID, an APP (it has a colon), or both."""
    if not values:
        return None, None
    if len(values) == 1:
        if ":" in values[0]:
            return values[0], None
        return None, parse_job_id(values[0])
    if len(values) == 2:
        return values[0], parse_job_id(values[1])
    raise click.UsageError(f"expected [APP] [ID], got {len(values)} arguments")


def check_importable(func: str) -> None:
    """``FUNC`` must import here as it would in a worker of ``APP``.

    Raises:
        AppError: one line saying why it does not.
    """
    from pgwerk._execute import HandlerNotFound, load_handler

    try:
        load_handler(func)
    except HandlerNotFound as exc:
        raise AppError(f"FUNC {exc}") from None
    except (Exception, SystemExit) as exc:  # the module's own code failed
        raise AppError(_import_failure(func, exc)) from None


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
