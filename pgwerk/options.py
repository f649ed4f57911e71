"""Turns a callable and the ``_options`` of ``enqueue`` into a validated job row.

Pure: no I/O. Shared by ``Werk`` and ``AsyncWerk`` so both accept exactly the same options.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, cast

from pgwerk._validate import INT32_MAX, integer, is_int, job_id_or_none, storable, text
from pgwerk._validate import seconds as seconds  # the duration check; here for old imports
from pgwerk.config import WerkConfig
from pgwerk.job import Callback, Dependency, EnqueueParams, Job, Repeat, Retry, Unique

OPTION_NAMES = tuple(
    f"_{f.name}" for f in fields(EnqueueParams) if f.name not in ("func", "args", "kwargs")
) + ("_conn",)

_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
FAILURE_MODES = ("hold", "delete")


@dataclass(frozen=True)
class UniqueKey:
    """What a unique job (``_unique``) asks of the database: the key made from its fields
    (the database appends the period's bucket, on its own clock), the statuses in which a
    job holds it, and the period in seconds."""

    key: str
    states: tuple[str, ...]
    period: float | None = None


@dataclass
class JobSpec:
    """A validated job ready to insert: the row, the dependencies to link, the unique key
    it asks for, and ``payload``: the ``(args, kwargs)`` the row's payload encodes (the
    stored job is built from them instead of decoding the payload again). ``plain``: made by
    ``plain_spec``, the row is the app's defaults but for the function and the payload."""

    row: dict[str, Any]
    depends_on: list[Dependency] = field(default_factory=list)
    unique: UniqueKey | None = None
    payload: tuple[tuple[Any, ...], dict[str, Any]] | None = None
    plain: bool = False


def function_path(func: Callable[..., Any] | str, what: str = "func") -> str:
    """The dotted import path a worker will use to find ``func``.

    Raises:
        ValueError: for a lambda, a nested function, a bound method of an instance, or
            anything else a worker could not import by name.
    """
    if isinstance(func, str):
        if not _DOTTED.match(func):
            raise ValueError(
                f"{what} {func!r} is not a dotted import path like 'myapp.tasks.send_email'"
            )
        return func
    try:
        return _callable_path(func, what)
    except TypeError as exc:  # unhashable callables cannot be cached
        if "unhashable" not in str(exc):
            raise
        return _callable_path.__wrapped__(func, what)


@lru_cache(maxsize=4096)
def _callable_path(func: Callable[..., Any], what: str) -> str:
    if not callable(func):
        raise TypeError(f"{what} must be a callable or a dotted path string, got {func!r}")
    if inspect.ismethod(func) and not inspect.isclass(func.__self__):
        raise ValueError(
            f"{what} {func.__qualname__} is a method bound to an instance; workers cannot "
            "import instances. Enqueue a module-level function instead."
        )
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not module or not qualname:
        raise ValueError(
            f"{what} {func!r} has no importable name (partials and callable instances are "
            "not supported); enqueue a module-level function"
        )
    if "<lambda>" in qualname:
        raise ValueError(f"{what} is a lambda; workers can only import module-level functions")
    if "<locals>" in qualname:
        raise ValueError(
            f"{what} {qualname} is defined inside another function; workers can only import "
            "module-level functions"
        )
    if module == "__main__":
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        if spec is None or not spec.name:
            raise ValueError(
                f"{what} {qualname} is defined in the script being run (__main__), which "
                "workers cannot import; move it into a module"
            )
        module = spec.name
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    found, wanted = getattr(target, "__wrapped__", target), getattr(func, "__wrapped__", func)
    # A classmethod is a new bound-method object on every attribute access: compare those
    # by equality (same function, same class), everything else by identity.
    same = found is wanted or (inspect.ismethod(found) and found == wanted)
    if target is None or not same:
        raise ValueError(f"{what} {module}.{qualname} cannot be found again by its import path")
    return f"{module}.{qualname}"


#: The range of ``_at``. A time before 1970 is surely a mistake; and psycopg cannot read
#: back a time that is before year 1 or after year 9999 in the session's time zone, so a
#: margin of a year is kept from both ends of Python's dates.
EARLIEST_AT = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST_AT = datetime(9999, 1, 1, tzinfo=timezone.utc)


def _moment(name: str, value: Any) -> datetime | None:
    """An aware datetime from ``EARLIEST_AT`` to ``LATEST_AT``; a past one runs at once."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a timezone-aware datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} must be timezone-aware (e.g. datetime(..., tzinfo=timezone.utc)); "
            f"got naive {value!r}"
        )
    try:
        inside = EARLIEST_AT <= value.astimezone(timezone.utc) < LATEST_AT
    except OverflowError:  # in UTC it falls before year 1 or after year 9999
        inside = False
    if not inside:
        raise ValueError(
            f"{name} must be from {EARLIEST_AT:%Y-%m-%d} to before {LATEST_AT:%Y-%m-%d} "
            f"(UTC), got {value!r}"
        )
    return value


def _strings(value: Any) -> Iterator[str]:
    """Every string inside a JSON-like value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def _text(name: str, value: Any, *, max_len: int = 255) -> str | None:
    return None if value is None else text(name, value, max_len=max_len)


def _callback(name: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, Callback):
        return {"path": function_path(value.func, name), "timeout": value.timeout}
    return {"path": function_path(value, name), "timeout": None}


def _dependencies(value: Any) -> list[Dependency]:
    if value is None:
        return []
    # A string is one id ("42"), not a sequence of characters.
    is_list = isinstance(value, Sequence) and not isinstance(value, (str, bytes))
    items = value if is_list else [value]
    deps = []
    for item in items:
        if isinstance(item, (Dependency, Job)):
            dep = item if isinstance(item, Dependency) else Dependency(item)
        elif is_int(item) or isinstance(item, str):
            job_id = job_id_or_none(item)
            if job_id is None:
                raise ValueError(
                    f"_depends_on: {item!r} is not a job id (a positive int, or a string of "
                    "digits)")
            dep = Dependency(job_id)
        else:
            raise TypeError(
                "_depends_on takes a Job, a job id (an int or a string of digits), a "
                f"Dependency or a list of them; got {item!r}"
            )
        deps.append(dep)
    if not items:
        raise ValueError("_depends_on is an empty list")
    return deps


def unique_key(value: Any, function: str, queue: str | None, args: Sequence[Any],
               kwargs: Mapping[str, Any]) -> UniqueKey | None:
    """The key of ``_unique``: a SHA-256 of the canonical JSON (sorted keys, compact) of
    the chosen fields, the statuses and the period. ``None`` when the job is not unique.

    Raises:
        TypeError: ``value`` is neither True, False, None nor a ``Unique``; or the chosen
            arguments are not JSON values.
    """
    if value is None or value is False:
        return None
    if value is True:
        value = Unique()
    elif not isinstance(value, Unique):
        raise TypeError(f"_unique must be True, False, None or a Unique(by=..., states=..., "
                        f"period=...), got {value!r}")
    chosen: dict[str, Any] = {}
    for name in value.by:
        if name == "function":
            chosen[name] = function
        elif name == "queue":
            chosen[name] = queue
        elif name == "args":
            chosen[name] = {"args": list(args), "kwargs": dict(kwargs)}
        elif name[len("kwargs:"):] in kwargs:  # absent: matches the jobs without it
            chosen[name] = kwargs[name[len("kwargs:"):]]
    try:
        text = json.dumps({"by": chosen, "states": value.states, "period": value.period},
                          sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise TypeError(
            f"_unique by {', '.join(value.by)}: the arguments of {function} must be JSON "
            f"values (str, int, float, bool, None, list, dict with str keys) to make a "
            f"unique key: {exc}. Choose fields that are, e.g. by=('function', "
            "'kwargs:<name>').") from exc
    return UniqueKey(key=hashlib.sha256(text.encode()).hexdigest(),
                     states=cast("tuple[str, ...]", value.states),  # as Unique made them
                     period=cast("float | None", value.period))


def encode_payload(serializer: Any, function: str, args: Sequence[Any],
                   kwargs: Mapping[str, Any]) -> str:
    try:
        text = serializer.dumps({"args": list(args), "kwargs": dict(kwargs)})
    except Exception as exc:
        raise TypeError(
            f"the arguments of {function} cannot be encoded by {type(serializer).__name__}: "
            f"{exc}. Pass values it can encode (JSON: str, int, float, bool, None, list, "
            "dict) or configure another serializer."
        ) from exc
    if not isinstance(text, str):
        raise TypeError(
            f"{type(serializer).__name__}.dumps must return str, got {type(text).__name__}")
    return text


def build_spec(params: EnqueueParams, config: WerkConfig) -> JobSpec:
    """Validate one job's options and produce its insert row. Raises on any bad value."""
    function = function_path(params.func)
    queue = _text("_queue", params.queue)
    priority = integer("_priority", params.priority, minimum=-INT32_MAX, maximum=INT32_MAX)
    if params.delay is not None and params.at is not None:
        raise ValueError("_delay and _at cannot be used together; pick one")
    delay = seconds("_delay", params.delay)
    at = _moment("_at", params.at)
    retry = params.retry
    if retry is None:
        retry = Retry(max=1)
    elif is_int(retry):
        retry = Retry(max=integer("_retry", retry, minimum=1, maximum=INT32_MAX,
                                  hint=" (total attempts)"))
    elif not isinstance(retry, Retry):
        raise TypeError(f"_retry must be an int (total attempts) or a Retry, got {retry!r}")
    failure_mode = params.failure_mode
    if failure_mode not in FAILURE_MODES:
        raise ValueError(f"_failure_mode must be one of {FAILURE_MODES}, got {failure_mode!r}")
    meta = params.meta
    if meta is not None and not isinstance(meta, Mapping):
        raise TypeError(f"_meta must be a dict, got {type(meta).__name__}")
    try:
        meta_text = json.dumps(dict(meta), allow_nan=False) if meta is not None else None
    except (TypeError, ValueError) as exc:
        raise TypeError(f"_meta must be JSON-encodable: {exc}") from exc
    if meta is not None:  # jsonb holds neither NUL nor lone surrogates
        for piece in _strings(meta):
            storable("_meta", piece)
    repeat = params.repeat
    if repeat is not None and not isinstance(repeat, Repeat):
        raise TypeError(f"_repeat must be a Repeat, got {repeat!r}")
    callbacks = {
        kind: cb
        for kind, cb in (
            ("success", _callback("_on_success", params.on_success)),
            ("failure", _callback("_on_failure", params.on_failure)),
            ("stopped", _callback("_on_stopped", params.on_stopped)),
        )
        if cb is not None
    }
    if not isinstance(params.kwargs, Mapping):
        raise TypeError(f"kwargs must be a dict, got {type(params.kwargs).__name__}")
    if isinstance(params.args, (str, bytes)) or not isinstance(params.args, Sequence):
        raise TypeError(f"args must be a list or tuple, got {type(params.args).__name__}")
    result_ttl = seconds("_result_ttl", params.result_ttl)
    failure_ttl = seconds("_failure_ttl", params.failure_ttl)
    unique = unique_key(params.unique, function, queue, params.args, params.kwargs)
    if unique is not None and params.key is not None:
        raise ValueError(
            "_key and _unique cannot be used together: a _key that is taken makes enqueue "
            "return None, a _unique match returns the job that holds it; pick one")
    row = {
        "function": function,
        "queue": queue,
        "priority": priority,
        "payload": encode_payload(config.serializer, function, params.args, params.kwargs),
        "max_attempts": retry.max,
        "retry_intervals": json.dumps(retry.intervals) if retry.intervals else None,
        "delay": delay,
        "at": at,
        "key": _text("_key", params.key, max_len=1000),
        "group_key": _text("_group", params.group, max_len=1000),
        "meta": meta_text,
        "timeout": seconds("_timeout", params.timeout, positive=True),
        "heartbeat": seconds("_heartbeat", params.heartbeat, positive=True),
        "ttl": seconds("_ttl", params.ttl, positive=True),
        "result_ttl": result_ttl if params.result_ttl is not None else config.result_ttl,
        "failure_ttl": failure_ttl if params.failure_ttl is not None else config.failure_ttl,
        "failure_mode": failure_mode,
        "callbacks": json.dumps(callbacks) if callbacks else None,
        "repeat": (
            # The delays stored compactly: the last one applies to every later run.
            json.dumps({"times": repeat.times, "index": 0,
                        "intervals": list(repeat.intervals or [float(repeat.interval or 0)])})
            if repeat else None
        ),
        "waiting": False,
        "dep_error": None,
        "batch_id": None,
    }
    return JobSpec(row=row, depends_on=_dependencies(params.depends_on), unique=unique,
                   payload=(tuple(params.args), dict(params.kwargs)))


#: The options of ``EnqueueParams`` with their defaults (a field with a default factory
#: never counts as left at its default).
_OPTION_DEFAULTS = tuple((f.name, f.default) for f in fields(EnqueueParams)
                         if f.name not in ("func", "args", "kwargs"))


def is_plain(params: EnqueueParams) -> bool:
    """Whether every option of ``params`` is left at its default (same type, same value),
    so that ``plain_spec`` gives what ``build_spec`` would."""
    for name, default in _OPTION_DEFAULTS:
        value = getattr(params, name)
        if value is not default and (type(value) is not type(default) or value != default):
            return False
    return True


def plain_spec(template: JobSpec, func: Callable[..., Any] | str, args: Sequence[Any],
               kwargs: Mapping[str, Any], config: WerkConfig) -> JobSpec:
    """``build_spec`` for a call without any ``_option``: ``template`` is what
    ``build_spec`` made once for such a call (see ``plain_template``); only the function and
    the payload differ from one call to the next."""
    if type(kwargs) is not dict and not isinstance(kwargs, Mapping):  # as build_spec
        raise TypeError(f"kwargs must be a dict, got {type(kwargs).__name__}")
    if type(args) is not tuple and (isinstance(args, (str, bytes))
                                    or not isinstance(args, Sequence)):
        raise TypeError(f"args must be a list or tuple, got {type(args).__name__}")
    function = function_path(func)
    row = dict(template.row)
    row["function"] = function
    row["payload"] = encode_payload(config.serializer, function, args, kwargs)
    return JobSpec(row=row, payload=(tuple(args), dict(kwargs)), plain=True)


def plain_template(config: WerkConfig) -> JobSpec:
    """The row of a job enqueued without options, made by ``build_spec`` itself so that the
    fast path cannot drift from it."""
    return build_spec(EnqueueParams(func="pgwerk.plain.template"), config)


def params_from_call(
    func: Callable[..., Any] | str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[EnqueueParams, Any]:
    """Split ``enqueue(func, *args, **kwargs)`` into ``EnqueueParams`` and ``_conn``."""
    options = {k: v for k, v in kwargs.items() if k.startswith("_")}
    payload = {k: v for k, v in kwargs.items() if not k.startswith("_")}
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise TypeError(
            f"unknown enqueue option(s) {', '.join(unknown)}; valid options: "
            f"{', '.join(OPTION_NAMES)} (keyword arguments without a leading underscore "
            "go to the handler)"
        )
    conn = options.pop("_conn", None)
    fixed = {name[1:]: value for name, value in options.items()}
    if fixed.get("queue", "default") is None:
        fixed.pop("queue")
    if fixed.get("priority", 0) is None:
        fixed.pop("priority")
    if fixed.get("failure_mode", "hold") is None:
        fixed.pop("failure_mode")
    return EnqueueParams(func=func, args=args, kwargs=payload, **fixed), conn


def repeat_spec(job: Job, serializer: Any) -> JobSpec | None:
    """The next run of a repeating job after a success, or ``None`` when it is done."""
    if job.repeat is None or job.repeat_index >= job.repeat.times:
        return None
    schedule = list(job.repeat.intervals or [])
    delay = schedule[min(job.repeat_index, len(schedule) - 1)] if schedule else 0.0
    callbacks = {
        kind: {"path": ref.path, "timeout": ref.timeout}
        for kind, ref in (("success", job.on_success), ("failure", job.on_failure),
                          ("stopped", job.on_stopped)) if ref is not None
    }
    row = {
        "function": job.function,
        "queue": job.queue,
        "priority": job.priority,
        "payload": encode_payload(serializer, job.function, job.args, job.kwargs),
        "max_attempts": job.max_attempts,
        "retry_intervals": json.dumps(list(job.retry_intervals)) if job.retry_intervals else None,
        "delay": delay,
        "at": None,
        "key": None,
        "group_key": job.group,
        "meta": json.dumps(job.meta) if job.meta else None,
        "timeout": job.timeout,
        "heartbeat": job.heartbeat,
        "ttl": None,
        "result_ttl": job.result_ttl,
        "failure_ttl": job.failure_ttl,
        "failure_mode": job.failure_mode,
        "callbacks": json.dumps(callbacks) if callbacks else None,
        "repeat": json.dumps({"times": job.repeat.times, "intervals": schedule,
                              "index": job.repeat_index + 1}),
        "waiting": False,
        "dep_error": None,
        "batch_id": None,
    }
    return JobSpec(row=row)


#: The kinds of batch callbacks, each with the ``app.batch`` argument that sets it.
BATCH_CALLBACKS = {"complete": "on_complete", "success": "on_success", "failure": "on_failure"}
#: The columns of a callback job the database inserts when its batch finishes.
_CALLBACK_COLUMNS = ("function", "queue", "priority", "payload", "max_attempts",
                     "retry_intervals", "delay", "at", "group_key", "meta", "timeout",
                     "heartbeat", "ttl", "result_ttl", "failure_ttl", "failure_mode",
                     "callbacks", "repeat")


def batch_callback(name: str, value: Any, config: WerkConfig) -> dict[str, Any] | None:
    """The job a batch enqueues as its callback ``name`` (``on_complete`` ...), checked now.

    ``value`` is a module-level function or its dotted path, a ``Callback`` (its timeout
    becomes the job's ``timeout``), or an ``EnqueueParams`` for every enqueue option of the
    callback job (its ``args``, ``kwargs``, ``queue``, ``retry`` ...) but ``key`` and
    ``depends_on``. Returns the job's columns as stored in the batch row.
    """
    if value is None:
        return None
    if isinstance(value, EnqueueParams):
        params = value
    elif isinstance(value, Callback):
        params = EnqueueParams(func=value.func, timeout=value.timeout)
    elif isinstance(value, str) or callable(value):
        params = EnqueueParams(func=value)
    else:
        raise TypeError(f"{name} must be a module-level function, its dotted path, a Callback "
                        f"or an EnqueueParams; got {value!r}")
    if params.key is not None:
        raise ValueError(f"{name}: a callback job takes no key (a batch enqueues each "
                         "callback once already)")
    if params.depends_on is not None:
        raise ValueError(f"{name}: a callback job takes no depends_on (it runs once every "
                         "member of the batch has ended)")
    function_path(params.func, name)  # its own message names the argument
    try:
        spec = build_spec(params, config)
    except (TypeError, ValueError) as exc:
        kind = TypeError if isinstance(exc, TypeError) else ValueError
        raise kind(f"{name}: {exc}") from None
    row = {column: spec.row[column] for column in _CALLBACK_COLUMNS}
    if row["at"] is not None:
        row["at"] = row["at"].isoformat()
    return row
