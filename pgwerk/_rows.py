"""Turns rows of the jobs table into ``Job`` records."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pgwerk.job import CallbackRef, Job, JobStatus, Repeat


def _json(value: Any) -> Any:
    # psycopg and psycopg2 both decode jsonb, but a caller's driver may hand back text.
    return json.loads(value) if isinstance(value, str) else value


def _callback(data: Mapping[str, Any] | None, kind: str) -> CallbackRef | None:
    if not data or kind not in data:
        return None
    item = data[kind]
    return CallbackRef(path=item["path"], timeout=item.get("timeout"))


def job_from_row(row: Mapping[str, Any], serializer: Any) -> Job:
    """Build a ``Job``; a payload or result that cannot be decoded does not raise, it is
    reported in ``payload_error`` (the worker fails such a job with that message)."""
    payload_error = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    try:
        payload = serializer.loads(row["payload"])
        args = tuple(payload.get("args", ()))
        kwargs = dict(payload.get("kwargs", {}))
    except Exception as exc:
        payload_error = f"payload cannot be decoded by {type(serializer).__name__}: {exc!r}"
    result = None
    if row.get("result") is not None:
        try:
            result = serializer.loads(row["result"])
        except Exception as exc:
            payload_error = f"result cannot be decoded by {type(serializer).__name__}: {exc!r}"
    callbacks = _json(row.get("callbacks"))
    repeat_data = _json(row.get("repeat"))
    repeat = None
    repeat_index = 0
    if repeat_data:
        repeat = Repeat(times=repeat_data["times"], intervals=repeat_data["intervals"] or None)
        repeat_index = int(repeat_data.get("index", 0))
    intervals = _json(row.get("retry_intervals")) or ()
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
        retry_intervals=tuple(float(i) for i in intervals),
        scheduled_at=row["scheduled_at"],
        enqueued_at=row["enqueued_at"],
        started_at=row.get("started_at"),
        completed_at=row.get("completed_at"),
        heartbeat_at=row.get("heartbeat_at"),
        expires_at=row.get("expires_at"),
        key=row.get("key"),
        group=row.get("group_key"),
        meta=_json(row.get("meta")) or {},
        result=result,
        error=row.get("error"),
        worker_id=row.get("worker_id"),
        timeout=row.get("timeout"),
        heartbeat=row.get("heartbeat"),
        result_ttl=row.get("result_ttl"),
        failure_ttl=row.get("failure_ttl"),
        failure_mode=row.get("failure_mode") or "hold",
        on_success=_callback(callbacks, "success"),
        on_failure=_callback(callbacks, "failure"),
        on_stopped=_callback(callbacks, "stopped"),
        repeat=repeat,
        repeat_index=repeat_index,
        lost=row.get("lost") or 0,
        payload_error=payload_error,
    )
