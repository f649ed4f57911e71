"""The dashboard's pages and actions. Each page reads through ``_data`` (never the app's
serializer) and renders one template; each action checks, acts, and redirects with a
flash message saying what happened."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from pgwerk.dashboard import _data
from pgwerk.dashboard._http import Request, Response
from pgwerk.dashboard._svg import throughput_chart
from pgwerk.exceptions import BatchNotFound, JobNotFound, WerkError
from pgwerk.job import JobStatus

if TYPE_CHECKING:
    from pgwerk.dashboard.app import Dashboard

PAGE_SIZE = 50
STATUSES = [s.value for s in JobStatus]
REQUEUABLE = ("failed", "aborted", "expired")
CANCELLABLE = ("queued", "scheduled", "waiting")
ENDED = ("complete", "failed", "aborted", "expired")
#: Age filters offered as choices: (seconds, label).
AGES = [(3600, "1 hour"), (6 * 3600, "6 hours"), (86400, "1 day"), (7 * 86400, "7 days"),
        (30 * 86400, "30 days")]
JOB_FILTERS = ("queue", "status", "function", "key", "search", "job_id", "batch",
               "older_than")
BULK_ACTIONS = {
    "retry": "Retry", "cancel": "Cancel", "delete": "Delete",
}


def _bad_request(dash: Dashboard, req: Request, detail: str) -> Response:
    return Response(HTTPStatus.BAD_REQUEST,
                    dash.message_page(req, HTTPStatus.BAD_REQUEST, detail))


def job_filters(dash: Dashboard, req: Request, source: dict[str, str]) -> dict[str, Any]:
    """The job filters of a query string or form: empty fields dropped, each checked."""
    found: dict[str, Any] = {k: source[k].strip() for k in JOB_FILTERS
                             if source.get(k, "").strip()}
    if "status" in found and found["status"] not in STATUSES:
        raise _bad_request(dash, req, f"unknown status {found['status']!r}; "
                                      f"one of {', '.join(STATUSES)}")
    if "older_than" in found:
        try:
            found["older_than"] = float(found["older_than"])
            if not math.isfinite(found["older_than"]) or found["older_than"] < 0:
                raise ValueError
        except ValueError:
            raise _bad_request(dash, req, "older_than must be a number of seconds >= 0") from None
    for name, what in (("job_id", "job id"), ("batch", "batch id")):
        if name in found and not (found[name].isascii() and found[name].isdigit()):
            raise _bad_request(dash, req, f"{what} must be a number, got {found[name]!r}")
    return found


def _query(filters: dict[str, Any], **extra: Any) -> str:
    kept = {k: (f"{v:g}" if isinstance(v, float) else v) for k, v in filters.items()}
    return urlencode({**kept, **{k: v for k, v in extra.items() if v is not None}})


# -- pages --------------------------------------------------------------------------------


def overview(dash: Dashboard, req: Request) -> str:
    app = dash.app
    stats = app.queue_stats()
    limits: dict[str, list[Any]] = {}
    for limit in app.queue_limits():
        limits.setdefault(limit.queue, []).append(limit)
        stats.setdefault(limit.queue, {"oldest_queued_age": 0.0})  # limited, no jobs yet
    points = app.throughput(minutes=60)
    return dash.render(
        "overview.html", req, page_title="Overview", refresh=True,
        stats=stats, limits=limits, statuses=STATUSES, workers=app.list_workers(),
        chart=throughput_chart(points),
        processed=sum(p["processed"] for p in points),
        failed=sum(p["failed"] for p in points),
    )


def jobs(dash: Dashboard, req: Request) -> str:
    filters = job_filters(dash, req, req.query)
    try:
        page = max(1, min(int(req.query.get("page", "1")), 1_000_000))
    except ValueError:
        page = 1
    try:
        found = _data.list_jobs(dash.app, filters, PAGE_SIZE, (page - 1) * PAGE_SIZE)
        total = dash.app.count_jobs(**filters)
    except (TypeError, ValueError) as exc:
        raise _bad_request(dash, req, str(exc)) from None
    pages = max(1, math.ceil(total / PAGE_SIZE))
    return dash.render(
        "jobs.html", req, page_title="Jobs", jobs=found, total=total,
        filters={**dict.fromkeys(JOB_FILTERS), **filters}, filtered=bool(filters),
        page=page, pages=pages, statuses=STATUSES, ages=AGES,
        queues=sorted(dash.app.queue_stats()), functions=_data.functions(dash.app),
        prev_query=_query(filters, page=page - 1) if page > 1 else None,
        next_query=_query(filters, page=page + 1) if page < pages else None,
        bulk_query=_query(filters),
    )


def _job_id(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or int(raw) > 2**63 - 1:
        raise Response(HTTPStatus.NOT_FOUND)
    return int(raw)


def cron_origin(job: Any) -> str | None:
    """The schedule that enqueued a job: from its meta, else from a ``cron:<name>:<tick>``
    key."""
    name = (job.meta or {}).get("cron") if isinstance(job.meta, dict) else None
    if isinstance(name, str) and name:
        return name
    if job.key and job.key.startswith("cron:"):
        return _cron_name_from_key(job.key)
    return None


def _cron_name_from_key(key: str) -> str | None:
    # cron:<name>:<ISO tick>; the tick has colons of its own (2026-01-01T00:00:00+00:00).
    found = _CRON_KEY.match(key)
    return found.group(1) if found else None


_CRON_KEY = re.compile(r"^cron:(.+):\d{4}-\d\d-\d\dT")


def job(dash: Dashboard, req: Request, raw_id: str) -> str:
    job_id = _job_id(raw_id)
    try:
        shown = _data.get_job(dash.app, job_id)
        dependencies = dash.app.get_job_dependencies(job_id)
    except JobNotFound:
        raise Response(HTTPStatus.NOT_FOUND, dash.message_page(
            req, HTTPStatus.NOT_FOUND, f"There is no job {job_id} (it may have been deleted or "
            "purged after its retention time).")) from None
    return dash.render(
        "job.html", req, page_title=f"Job {job_id}", shown=shown, job=shown.job,
        executions=_data.executions(dash.app, shown.job), dependencies=dependencies,
        dependents=_data.dependents(dash.app, job_id), cron_name=cron_origin(shown.job),
        refresh=shown.job.status.value in ("active", "aborting", "queued"),
    )


def batches(dash: Dashboard, req: Request) -> str:
    try:
        page = max(1, min(int(req.query.get("page", "1")), 1_000_000))
    except ValueError:
        page = 1
    found = dash.app.list_batches(limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    return dash.render(
        "batches.html", req, page_title="Batches", batches=found[:PAGE_SIZE], page=page,
        refresh=any(b.status == "active" for b in found),
        prev_query=f"page={page - 1}" if page > 1 else None,
        next_query=f"page={page + 1}" if len(found) > PAGE_SIZE else None,
    )


def batch(dash: Dashboard, req: Request, raw_id: str) -> str:
    batch_id = _job_id(raw_id)
    try:
        found = dash.app.get_batch(batch_id)
    except BatchNotFound:
        raise Response(HTTPStatus.NOT_FOUND, dash.message_page(
            req, HTTPStatus.NOT_FOUND, f"There is no batch {batch_id} (it may have been "
            "pruned after it finished).")) from None
    statuses = dash.app._store.statuses(sorted(found.callback_jobs.values()))
    callbacks = [{"kind": kind, "function": function, "job_id": found.callback_jobs.get(kind),
                  "status": statuses.get(found.callback_jobs.get(kind, -1))}
                 for kind, function in found.callbacks.items()]
    return dash.render("batch.html", req, page_title=f"Batch {batch_id}", batch=found,
                       callbacks=callbacks, refresh=found.status == "active")


def confirm_delete(dash: Dashboard, req: Request, raw_id: str) -> str:
    dash.require_writable(req)
    job_id = _job_id(raw_id)
    try:
        shown = _data.get_job(dash.app, job_id)
    except JobNotFound:
        raise Response(HTTPStatus.NOT_FOUND) from None
    return dash.render("confirm.html", req, page_title=f"Delete job {job_id}?",
                       heading=f"Delete job {job_id}?", job=shown.job,
                       action=req.url("jobs", job_id, "delete"), fields={},
                       button="Delete job", back=req.url("jobs", job_id),
                       running=shown.job.status.value in ("active", "aborting"), count=None)


def workers(dash: Dashboard, req: Request) -> str:
    return dash.render("workers.html", req, page_title="Workers", refresh=True,
                       workers=dash.app.list_workers())


def _split_timezone(schedule: str) -> tuple[str, str]:
    # A cron schedule in another zone is stored as "<expr> (<zone>)"; the rest are UTC.
    if schedule.endswith(")") and " (" in schedule:
        expression, zone = schedule.rsplit(" (", 1)
        return expression, zone[:-1]
    return schedule, "UTC"


def cron(dash: Dashboard, req: Request) -> str:
    rows = dash.app._store.cron_list()
    schedules = []
    for row in rows:
        options = row["options"] or {}
        expression, zone = _split_timezone(row["schedule"])
        schedules.append({
            "name": row["name"], "function": row["function"], "schedule": row["schedule"],
            "expression": expression, "timezone": zone, "paused": row["paused"],
            "queue": options.get("queue", "default"),
            "next_tick": None if row["paused"] else row["next_tick"],
            "last_tick": row["last_tick"],
            "last_job": _data.latest_cron_job(dash.app, row["name"], row["last_tick"]),
            "url": req.url("cron", row["name"]),
        })
    return dash.render("cron.html", req, page_title="Cron", schedules=schedules)


def bulk_confirm(dash: Dashboard, req: Request) -> str:
    dash.require_writable(req)
    action = req.query.get("action", "")
    if action not in BULK_ACTIONS:
        raise _bad_request(dash, req, f"unknown bulk action {action!r}; one of "
                                 f"{', '.join(BULK_ACTIONS)}")
    filters = job_filters(dash, req, req.query)
    try:
        count, scope = _bulk(dash, action, filters, dry_run=True)
    except (TypeError, ValueError) as exc:
        raise _bad_request(dash, req, str(exc)) from None
    kept = {k: (f"{v:g}" if isinstance(v, float) else str(v)) for k, v in filters.items()
            if k in ("queue", "status", "function", "older_than")}
    return dash.render(
        "confirm.html", req, page_title=f"{BULK_ACTIONS[action]} jobs?",
        heading=f"{BULK_ACTIONS[action]} {count} job{'s' if count != 1 else ''}?",
        job=None, action=req.url("bulk"), fields={"action": action, **kept}, count=count,
        scope=scope, button=f"{BULK_ACTIONS[action]} {count} job{'s' if count != 1 else ''}",
        back=req.url("jobs") + "?" + _query(filters), running=False,
        ignored=[k for k in ("key", "search", "job_id", "batch") if k in filters],
    )


def _bulk(dash: Dashboard, action: str, filters: dict[str, Any],
          dry_run: bool) -> tuple[int, str]:
    """Run (or count) a bulk action; returns the count and a sentence of what it covers."""
    app = dash.app
    status, queue, function = filters.get("status"), filters.get("queue"), filters.get("function")
    older_than = filters.get("older_than")
    where = (f" in queue {queue}" if queue else " in every queue") + (
        f", function {function}" if function else "")
    age = f", ended more than {_age_label(older_than)} ago" if older_than else ""
    if action == "retry":
        if status is not None and status not in REQUEUABLE:
            raise ValueError(f"{status} jobs cannot be retried; only failed, aborted or "
                             "expired jobs are")
        statuses = [status] if status else list(REQUEUABLE)
        count = app.bulk_requeue_jobs(queue, function, statuses, older_than, dry_run=dry_run)
        return count, f"The {_either(statuses)} jobs{where}{age} will run again."
    if action == "cancel":
        if status is not None and status not in CANCELLABLE:
            raise ValueError(f"{status} jobs cannot be cancelled; only queued, scheduled or "
                             "waiting jobs are (abort running jobs one by one)")
        if older_than is not None:
            raise ValueError("cancel does not take an age; remove the 'older than' filter")
        if status is not None:
            raise ValueError("cancel covers queued, scheduled and waiting jobs together; "
                             "remove the status filter")
        count = app.bulk_cancel_jobs(queue, function, dry_run=dry_run)
        return count, (f"The queued, scheduled and waiting jobs{where} will end as aborted "
                       "without running.")
    if status is not None and status not in ENDED:
        raise ValueError(f"{status} jobs cannot be deleted in bulk; only ended jobs "
                         "(complete, failed, aborted, expired) are")
    statuses = [status] if status else list(ENDED)
    count = app.purge_jobs(statuses, queue, function, older_than, dry_run=dry_run)
    return count, f"The {_either(statuses)} jobs{where}{age} will be deleted for good."


def _either(statuses: list[str]) -> str:
    return statuses[0] if len(statuses) == 1 else ", ".join(statuses[:-1]) + " or " + statuses[-1]


def _age_label(seconds: float) -> str:
    for value, label in AGES:
        if value == seconds:
            return label
    from pgwerk.dashboard._format import human_seconds
    return human_seconds(seconds)


# -- actions (POST) -----------------------------------------------------------------------


def bulk_act(dash: Dashboard, req: Request) -> Response:
    action = req.form.get("action", "")
    if action not in BULK_ACTIONS:
        raise _bad_request(dash, req, f"unknown bulk action {action!r}")
    filters = job_filters(dash, req, {k: v for k, v in req.form.items()
                                 if k in ("queue", "status", "function", "older_than")})
    try:
        count, _ = _bulk(dash, action, filters, dry_run=False)
    except (TypeError, ValueError) as exc:
        raise _bad_request(dash, req, str(exc)) from None
    done = {"retry": "queued again", "cancel": "cancelled", "delete": "deleted"}[action]
    plural = "job" if count == 1 else "jobs"
    return dash.flash_redirect(req, req.url("jobs") + "?" + _query(filters),
                               f"{count} {plural} {done}", "ok" if count else "warn")


def job_act(dash: Dashboard, req: Request, raw_id: str, action: str) -> Response:
    job_id = _job_id(raw_id)
    back = req.url("jobs", job_id)
    try:
        before = _status(dash, job_id)
        kind, text = ACTIONS[action](dash, job_id, before)
    except JobNotFound:
        return dash.flash_redirect(req, req.url("jobs"), f"job {job_id} does not exist (any more)",
                                   "warn")
    if action == "delete" and kind == "ok":
        back = req.url("jobs")
    return dash.flash_redirect(req, back, text, kind)


def _status(dash: Dashboard, job_id: int) -> str:
    statuses = dash.app._store.statuses([job_id])
    if not statuses:
        raise JobNotFound(job_id)
    return statuses[job_id]


def _retry(dash: Dashboard, job_id: int, before: str) -> tuple[str, str]:
    if dash.app.requeue_job(job_id):
        return "ok", f"job {job_id} queued again"
    status = _status(dash, job_id)
    if status in REQUEUABLE:  # then only a unique key held by another job stops it
        return "warn", (f"job {job_id} is {status}, but another job holds its unique key; "
                        "retrying this one would make a duplicate")
    return "warn", (f"job {job_id} is {status}; only failed, aborted or expired jobs are "
                    "retried")


def _cancel(dash: Dashboard, job_id: int, before: str) -> tuple[str, str]:
    if dash.app.cancel_job(job_id):
        return "ok", f"job {job_id} cancelled; it will not run"
    now = _status(dash, job_id)
    hint = "; abort it instead" if now == "active" else ""
    return "warn", (f"job {job_id} is {now}; only queued, scheduled or waiting jobs can be "
                    f"cancelled{hint}")


def _abort(dash: Dashboard, job_id: int, before: str) -> tuple[str, str]:
    if not dash.app.abort_job(job_id):
        return "warn", f"job {job_id} is {_status(dash, job_id)}; there is nothing to stop"
    if _status(dash, job_id) == "aborting":
        return "ok", (f"job {job_id} asked to stop: its worker interrupts it at its next "
                      "check (a few seconds)")
    return "ok", f"job {job_id} cancelled before it started"


def _delete(dash: Dashboard, job_id: int, before: str) -> tuple[str, str]:
    try:
        deleted = dash.app.delete_job(job_id)
    except WerkError:
        return "warn", (f"job {job_id} is running and was not deleted; abort it first, "
                        "then delete it once it has ended")
    if not deleted:
        raise JobNotFound(job_id)
    return "ok", f"job {job_id} deleted"


ACTIONS: dict[str, Callable[[Dashboard, int, str], tuple[str, str]]] = {
    "retry": _retry, "cancel": _cancel, "abort": _abort, "delete": _delete,
}


def cron_act(dash: Dashboard, req: Request, name: str, action: str) -> Response:
    from pgwerk.cron import CronJobNotFound, CronScheduler

    scheduler = CronScheduler.of(dash.app)  # with the schedules this process defines
    back = req.url("cron")
    try:
        if action == "pause":
            scheduler.pause(name)
            text = f"schedule {name} paused; no tick is enqueued until it is resumed"
        elif action == "resume":
            scheduler.resume(name)
            text = f"schedule {name} resumed; ticks missed while paused are not enqueued"
        else:
            job = scheduler.run_now(name)
            return dash.flash_redirect(req, req.url("jobs", job.id),
                                       f"schedule {name} run now as job {job.id}", "ok")
    except CronJobNotFound:
        return dash.flash_redirect(req, back, f"there is no schedule named {name}", "warn")
    return dash.flash_redirect(req, back, text, "ok")

