"""What the dashboard reads, decoded without ever running the app's serializer.

A read-only page must not be a way to run code: with ``PickleSerializer`` decoding a
payload would unpickle whatever someone wrote into the table. So payloads and results
are decoded as JSON only; anything else is shown as "binary payload, N bytes".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pgwerk.app import Werk
from pgwerk.exceptions import JobNotFound
from pgwerk.job import Execution, Job
from pgwerk.store.rows import job_from_row


class _JSONOnly:
    """Decodes JSON and nothing else (``json.loads`` only ever builds plain data)."""

    @staticmethod
    def loads(data: str) -> Any:
        return json.loads(data)


@dataclass(frozen=True)
class Shown:
    """A job as the dashboard shows it: the record, and its payload/result as text."""

    job: Job
    payload: str | None  # pretty JSON, or None when binary
    payload_size: int
    result: str | None
    result_size: int


def _pretty(raw: str | None) -> tuple[str | None, int]:
    if raw is None:
        return None, 0
    try:
        return json.dumps(json.loads(raw), indent=2, ensure_ascii=False, default=str), len(raw)
    except ValueError:
        return None, len(raw.encode("utf-8"))


def shown(row: dict[str, Any]) -> Shown:
    job = job_from_row(row, _JSONOnly)
    payload, payload_size = _pretty(row.get("payload"))
    result, result_size = _pretty(row.get("result"))
    return Shown(job, payload, payload_size, result, result_size)


def list_jobs(app: Werk, filters: dict[str, Any], limit: int, offset: int) -> list[Shown]:
    """``Werk.list_jobs`` with the same checks, decoded safely."""
    params = app._job_filter(
        filters.get("queue"), [filters["status"]] if filters.get("status") else None,
        filters.get("function"), key=filters.get("key"), search=filters.get("search"),
        job_id=filters.get("job_id"), older_than=filters.get("older_than"),
        batch=filters.get("batch"))
    return [shown(r) for r in app._store.list_job_rows(params, limit, offset)]


def get_job(app: Werk, job_id: int) -> Shown:
    row = app._store.get_job_row(job_id)
    if row is None:
        raise JobNotFound(job_id)
    return shown(row)


def executions(app: Werk, job: Job) -> list[Execution]:
    """As ``Werk.get_executions``, from a job already read (so nothing is decoded twice)."""
    runs = app._store.executions(job.id)
    if job.attempts > 0 and job.attempts not in {r.attempt for r in runs} \
            and job.started_at is not None:
        runs.append(Execution(job_id=job.id, attempt=job.attempts, worker_id=job.worker_id,
                              started_at=job.started_at, finished_at=job.completed_at,
                              outcome=job.status.value, error=job.error))
    return runs


def dependents(app: Werk, job_id: int) -> list[dict[str, Any]]:
    return app._store.dependents(job_id)


def functions(app: Werk, limit: int = 200) -> list[str]:
    return app._store.functions(limit)


def latest_cron_job(app: Werk, name: str, last_tick: datetime | None) -> dict[str, Any] | None:
    """The newest job a schedule's tick enqueued (id, status, enqueued_at), if one is kept.

    The job of the schedule's last tick is found by its key (an index lookup); when that
    tick was skipped (paused) or its job purged, the newest key of the schedule is looked
    for instead, skipping keys of other schedules whose name merely starts the same way.
    """
    prefix = f"cron:{name}:"
    keys = [prefix + last_tick.astimezone(timezone.utc).isoformat()] if last_tick else []
    keys.append(prefix + "*")
    for key in keys:
        params = app._job_filter(None, None, None, key=key)
        for row in app._store.list_job_rows(params, 20, 0):
            if _TICK.match(row["key"][len(prefix):]):
                return {"id": row["id"], "status": row["status"],
                        "enqueued_at": row["enqueued_at"]}
    return None


_TICK = re.compile(r"^\d{4}-\d\d-\d\dT[^:]*:[^:]*:[^:]*:[^:]*$")
