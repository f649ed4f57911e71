"""Turns rows of the jobs table into ``Job`` records."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import MISSING, fields
from typing import Any, TypeVar

from pgwerk.job import Batch, CallbackRef, Job, JobStatus, Repeat

T = TypeVar("T")


def _json(value: Any) -> Any:
    # psycopg and psycopg2 both decode jsonb, but a caller's driver may hand back text.
    return json.loads(value) if isinstance(value, str) else value


def _callback(data: Mapping[str, Any] | None, kind: str) -> CallbackRef | None:
    if not data or kind not in data:
        return None
    item = data[kind]
    return CallbackRef(path=item["path"], timeout=item.get("timeout"))


def _repeat(data: Any) -> tuple[Repeat | None, int]:
    data = _json(data)
    if not data:
        return None, 0
    return (Repeat(times=data["times"], intervals=data["intervals"] or None),
            int(data.get("index", 0)))


def _intervals(data: Any) -> tuple[float, ...]:
    return tuple(float(i) for i in (_json(data) or ()))


def _meta(data: Any) -> dict[str, Any]:
    return dict(_json(data) or {})


def _callbacks(data: Any) -> dict[str, CallbackRef | None]:
    stored = _json(data)
    return {kind: _callback(stored, kind) for kind in ("success", "failure", "stopped")}


def _states(value: Any) -> tuple[str, ...]:
    return tuple(str(s) for s in value) if isinstance(value, (list, tuple)) else ()


_STATUSES = {status.value: status for status in JobStatus}
#: Every field of ``Job`` that has a plain default, with it.
_DEFAULTS = {f.name: f.default for f in fields(Job) if f.default is not MISSING}


def _new_job(**values: Any) -> Job:
    """A ``Job`` without its dataclass ``__init__``: a frozen dataclass sets each of its ~36
    fields through ``object.__setattr__``, a measurable share of a worker's time per job.
    The values come from the row, already of the right types; unnamed fields take their
    defaults."""
    job = object.__new__(Job)
    job.__dict__.update(_DEFAULTS)
    job.__dict__.update(values)
    return job


def job_like(prototype: Job, **values: Any) -> Job:
    """A copy of ``prototype`` with ``values`` (of the right types) in place of its own,
    made as ``_new_job`` makes one; its ``meta`` is a dict of its own."""
    job = object.__new__(Job)
    job.__dict__.update(prototype.__dict__)
    job.__dict__["meta"] = dict(prototype.meta)
    job.__dict__.update(values)
    return job


class _Decoder:
    """Decodes a row's stored values, noting what cannot be decoded instead of raising."""

    __slots__ = ("problems", "serializer")

    def __init__(self, serializer: Any) -> None:
        self.serializer = serializer
        self.problems: list[str] = []

    def __call__(self, what: str, fn: Callable[[Any], T], value: Any, default: T) -> T:
        try:
            return fn(value)
        except Exception as exc:
            by = (f" by {type(self.serializer).__name__}" if what in ("payload", "result")
                  else "")
            self.problems.append(f"{what} cannot be decoded{by}: {exc!r}")
            return default


def job_from_row(row: Mapping[str, Any], serializer: Any,
                 payload: tuple[tuple[Any, ...], dict[str, Any]] | None = None) -> Job:
    """Build a ``Job``. Nothing in the row's stored data makes this raise: a payload,
    result or option that cannot be decoded (a row written by hand or by another version)
    is reported in ``payload_error`` and left at its default; the worker fails such a job
    with that message, and listings show it. ``payload``: the ``(args, kwargs)`` the row's
    payload holds, when the caller has them (a job just inserted): not decoded again.

    Built once per claimed job: most options of most jobs are NULL, and are not decoded
    (nor is a decoder called for them)."""
    decode = _Decoder(serializer)
    get = row.get
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    if payload is not None:
        args, kwargs = payload
    elif row["payload"] is not None:
        stored = decode("payload", serializer.loads, row["payload"], None)
        if stored is not None:
            try:
                args, kwargs = tuple(stored.get("args", ())), dict(stored.get("kwargs", {}))
            except Exception:  # not a mapping of args and kwargs: say which part is wrong
                args = decode("payload args", lambda p: tuple(p.get("args", ())), stored, ())
                kwargs = decode("payload kwargs", lambda p: dict(p.get("kwargs", {})), stored,
                                {})
    values = dict(_DEFAULTS)
    value = get("result")
    if value is not None:
        values["result"] = decode("result", serializer.loads, value, None)
    value = get("callbacks")
    if value is not None:
        no_callbacks: dict[str, CallbackRef | None] = {}
        callbacks = decode("callbacks", _callbacks, value, no_callbacks)
        values["on_success"] = callbacks.get("success")
        values["on_failure"] = callbacks.get("failure")
        values["on_stopped"] = callbacks.get("stopped")
    value = get("repeat")
    if value is not None:
        no_repeat: tuple[Repeat | None, int] = (None, 0)
        values["repeat"], values["repeat_index"] = decode("repeat", _repeat, value, no_repeat)
    value = get("retry_intervals")
    no_intervals: tuple[float, ...] = ()
    values["retry_intervals"] = no_intervals if value is None else decode(
        "retry_intervals", _intervals, value, no_intervals)
    value = get("meta")
    no_meta: dict[str, Any] = {}
    values["meta"] = no_meta if value is None else decode("meta", _meta, value, no_meta)
    status = row["status"]
    values.update(
        id=row["id"],
        function=row["function"],
        queue=row["queue"],
        status=_STATUSES.get(status) or JobStatus(status),
        priority=row["priority"],
        args=args,
        kwargs=kwargs,
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        scheduled_at=row["scheduled_at"],
        enqueued_at=row["enqueued_at"],
        started_at=get("started_at"),
        completed_at=get("completed_at"),
        heartbeat_at=get("heartbeat_at"),
        expires_at=get("expires_at"),
        key=get("key"),
        group=get("group_key"),
        error=get("error"),
        worker_id=get("worker_id"),
        timeout=get("timeout"),
        heartbeat=get("heartbeat"),
        result_ttl=get("result_ttl"),
        failure_ttl=get("failure_ttl"),
        failure_mode=get("failure_mode") or "hold",
        lost=get("lost") or 0,
        released=get("released") or 0,
        snoozed=get("snoozed") or 0,
        progress=get("progress"),
        progress_message=get("progress_message"),
        payload_error="; ".join(decode.problems) or None,
        unique_key=get("unique_key"),
        unique_states=_states(get("unique_states")),
        batch_id=get("batch_id"),
    )
    job = object.__new__(Job)
    job.__dict__.update(values)
    return job


def batch_from_row(row: Mapping[str, Any]) -> Batch:
    """Build a ``Batch`` from a row of the batches table."""
    callbacks = _json(row.get("callbacks")) or {}
    fired = _json(row.get("callback_jobs")) or {}
    return Batch(
        id=row["id"], total=row["total"], pending=row["pending"], complete=row["complete"],
        failed=row["failed"], aborted=row["aborted"], expired=row["expired"],
        created_at=row["created_at"], finished_at=row.get("finished_at"),
        description=row.get("description"),
        callbacks={kind: str(spec.get("function")) for kind, spec in sorted(callbacks.items())
                   if isinstance(spec, Mapping)},
        callback_jobs={kind: int(job_id) for kind, job_id in sorted(fired.items())},
    )
