"""Turns rows of the jobs table into ``Job`` records."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
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


def job_from_row(row: Mapping[str, Any], serializer: Any) -> Job:
    """Build a ``Job``. Nothing in the row's stored data makes this raise: a payload,
    result or option that cannot be decoded (a row written by hand or by another version)
    is reported in ``payload_error`` and left at its default; the worker fails such a job
    with that message, and listings show it."""
    problems: list[str] = []

    def decode(what: str, fn: Callable[[Any], T], value: Any, default: T) -> T:
        try:
            return fn(value)
        except Exception as exc:
            serialized = what in ("payload", "result")
            problems.append(f"{what} cannot be decoded{by if serialized else ''}: {exc!r}")
            return default

    by = f" by {type(serializer).__name__}"
    payload = decode("payload", serializer.loads, row["payload"], None)
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    if payload is not None:
        args = decode("payload args", lambda p: tuple(p.get("args", ())), payload, ())
        kwargs = decode("payload kwargs", lambda p: dict(p.get("kwargs", {})), payload, {})
    result = None
    if row.get("result") is not None:
        result = decode("result", serializer.loads, row["result"], None)
    no_callbacks: dict[str, CallbackRef | None] = {}
    callbacks = decode("callbacks", _callbacks, row.get("callbacks"), no_callbacks)
    no_repeat: tuple[Repeat | None, int] = (None, 0)
    repeat, repeat_index = decode("repeat", _repeat, row.get("repeat"), no_repeat)
    return Job(
        id=row["id"],
        function=row["function"],
        queue=row["queue"],
        status=JobStatus(row["status"]),
        priority=row["priority"],
        args=args,
        kwargs=kwargs,
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        retry_intervals=decode("retry_intervals", _intervals, row.get("retry_intervals"), ()),
        scheduled_at=row["scheduled_at"],
        enqueued_at=row["enqueued_at"],
        started_at=row.get("started_at"),
        completed_at=row.get("completed_at"),
        heartbeat_at=row.get("heartbeat_at"),
        expires_at=row.get("expires_at"),
        key=row.get("key"),
        group=row.get("group_key"),
        meta=decode("meta", _meta, row.get("meta"), {}),
        result=result,
        error=row.get("error"),
        worker_id=row.get("worker_id"),
        timeout=row.get("timeout"),
        heartbeat=row.get("heartbeat"),
        result_ttl=row.get("result_ttl"),
        failure_ttl=row.get("failure_ttl"),
        failure_mode=row.get("failure_mode") or "hold",
        on_success=callbacks.get("success"),
        on_failure=callbacks.get("failure"),
        on_stopped=callbacks.get("stopped"),
        repeat=repeat,
        repeat_index=repeat_index,
        lost=row.get("lost") or 0,
        released=row.get("released") or 0,
        payload_error="; ".join(problems) or None,
        batch_id=row.get("batch_id"),
    )


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
