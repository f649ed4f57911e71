"""The command line: ``pgwerk-worker APP`` runs a worker; ``pgwerk <command>`` is for
operators (enqueue from a crontab line, look at queues and jobs, retry, cancel, purge,
migrate, cron). A thin layer over the library: each command opens a ``Werk``, makes one or
two calls and prints the answer, as a table or (``--json``) for scripts.

``APP`` is ``module:attribute`` naming a ``Werk`` (the current directory is importable).
Commands that only talk to the database take ``APP`` or ``--dsn`` (else ``$PGWERK_DSN``),
with ``--schema``/``--prefix``; they try the database once and fail fast with one line.
Read-only commands never create tables.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import signal
import sys
import textwrap
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from types import FrameType
from typing import Any, TypeVar

import click

from pgwerk._cli_support import (
    AppError,
    CliError,
    Duration,
    binary_note,
    cell,
    check_importable,
    db_options,
    echo_json,
    echo_table,
    friendly,
    json_arg,
    json_option,
    jsonable,
    last_line,
    load_app,
    open_app,
    parse_job_id,
    percent,
    show_duration,
    split_optional_id,
    split_target,
    terminal_width,
)
from pgwerk._logging import LOG_FORMATS, LOG_LEVELS, configure_logging, job_context_hooks
from pgwerk._validate import RATE_TEXT_HELP
from pgwerk._validate import rate as rate_limit
from pgwerk.app import Werk
from pgwerk.config import WerkConfig
from pgwerk.exceptions import JobNotFound, WorkerFailed
from pgwerk.job import TERMINAL_STATUSES, EnqueueParams, Job, JobStatus
from pgwerk.options import build_spec
from pgwerk.store import migrate as _migrate
from pgwerk.store.connections import redact_dsn

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

POOL_KINDS = ("thread", "fork", "process")
DEQUEUE_STRATEGIES = ("priority", "round_robin", "random")
STATUSES = tuple(s.value for s in JobStatus)
END_STATUSES = tuple(s.value for s in JobStatus if s in TERMINAL_STATUSES)
# -- the worker ------------------------------------------------------------------------------


def _queues(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    queues = [q.strip() for q in value.split(",")]
    if not all(queues):
        raise click.BadParameter(f"comma-separated queue names, got {value!r}")
    return list(dict.fromkeys(queues))


@click.command("worker", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("app")
@click.option("-q", "--queues", default="default", show_default=True, callback=_queues,
              help="Queues to work on, comma-separated, in order of preference.")
@click.option("-c", "--concurrency", type=click.IntRange(min=1), default=8, show_default=True,
              help="Jobs run at once.")
@click.option("--pool", type=click.Choice(POOL_KINDS), default="thread", show_default=True,
              help="thread; fork (a child per job: isolation, hard time limits); process "
                   "(pre-started children for CPU-bound work).")
@click.option("--burst", is_flag=True, help="Exit once the queues are empty.")
@click.option("--scheduler", is_flag=True,
              help="Also run the APP's cron schedules (one scheduler is active at a time "
                   "across all processes).")
@click.option("--metrics-port", type=click.IntRange(1, 65535),
              help="Serve Prometheus metrics on this port (needs pgwerk[metrics]).")
@click.option("--metrics-host", default="127.0.0.1", show_default=True,
              help="Address of the metrics server.")
@click.option("--no-queue-metrics", is_flag=True,
              help="Leave the queue series to a dedicated collector (by default the longest "
                   "running live worker exports them, the others do not).")
@click.option("--poll-interval", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, help="Seconds between checks when no notification arrives.")
@click.option("--shutdown-timeout", type=click.FloatRange(min=0), default=30.0,
              show_default=True,
              help="On SIGTERM, seconds running jobs may finish before they are put back.")
@click.option("--dequeue-strategy", type=click.Choice(DEQUEUE_STRATEGIES), default="priority",
              show_default=True, help="Which queue's job comes next.")
@click.option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False),
              default="INFO", show_default=True,
              help="debug adds a line per job started, claim and batch of outcomes.")
@click.option("--log-format", type=click.Choice(LOG_FORMATS), default="text", show_default=True,
              help="text, or json (one object per line).")
@click.option("--log-tracebacks", is_flag=True,
              help="Log the traceback of every failed attempt (without pgwerk's frames).")
@friendly
def worker_command(app: str, queues: list[str], concurrency: int, pool: str, burst: bool,
                   scheduler: bool, metrics_port: int | None, metrics_host: str,
                   no_queue_metrics: bool, poll_interval: float, shutdown_timeout: float,
                   dequeue_strategy: str,
                   log_level: str, log_format: str, log_tracebacks: bool) -> None:
    """Run a worker for APP (module:attribute naming a Werk) until SIGTERM/SIGINT.

    A second signal stops at once, putting running jobs back for another worker.
    """
    from pgwerk.worker import Worker

    configure_logging(log_level, log_format, tracebacks=log_tracebacks)
    werk = load_app(app)
    metrics = None
    if metrics_port is not None:
        _check_metrics()
        metrics = _serve_metrics(werk, metrics_host, metrics_port,
                                 queue_metrics=False if no_queue_metrics else "leader")
    worker = Worker(werk, queues=queues, concurrency=concurrency, pool=pool, burst=burst,
                    poll_interval=poll_interval, shutdown_timeout=shutdown_timeout,
                    dequeue_strategy=dequeue_strategy, metrics=metrics, **job_context_hooks())
    cron_thread = cron_scheduler = None
    if scheduler:
        from pgwerk.cron import CronScheduler, run_in_thread

        cron_scheduler = CronScheduler.of(werk)
        if not cron_scheduler.names:
            logger.warning("--scheduler: %s registers no cron schedules", app)
        cron_thread = run_in_thread(cron_scheduler)
    try:
        worker.run()
    except WorkerFailed as exc:  # already logged where it happened: one line, exit 1
        raise CliError(f"worker stopped: {exc}") from None
    finally:
        if cron_scheduler is not None and cron_thread is not None:
            cron_scheduler.stop()
            cron_thread.join(timeout=10.0)


def _check_metrics() -> None:
    try:
        importlib.import_module("prometheus_client")
    except ImportError:
        raise AppError("--metrics-port needs prometheus-client: pip install pgwerk[metrics]") \
            from None


def _serve_metrics(werk: Werk, host: str, port: int, queue_metrics: bool | str) -> Any:
    from pgwerk.metrics import serve_metrics

    try:
        metrics = serve_metrics(werk, port, addr=host, queue_metrics=queue_metrics)
    except OSError as exc:
        raise CliError(f"cannot serve metrics on {host}:{port}: {exc}") from None
    logger.info("metrics on http://%s:%d/metrics", host, port)
    return metrics


def worker_main() -> None:
    """Entry point of ``pgwerk-worker``."""
    worker_command.main(prog_name="pgwerk-worker")


# -- pgwerk ----------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pgwerk", prog_name="pgwerk")
def cli() -> None:
    """pgwerk: a job queue in PostgreSQL.

    APP is module:attribute naming a Werk (e.g. myapp.tasks:app); commands that only
    need the database also take --dsn (default $PGWERK_DSN) instead.
    """


cli.add_command(worker_command)


def main() -> None:
    """Entry point of ``pgwerk``."""
    cli.main(prog_name="pgwerk")


@cli.command()
@click.argument("target", nargs=-1, required=True, metavar="[APP] FUNC")
@db_options
@click.option("--args", "args_json", metavar="JSON", help="Positional arguments, a JSON list.")
@click.option("--kwargs", "kwargs_json", metavar="JSON",
              help="Keyword arguments, a JSON object.")
@click.option("--queue", default="default", show_default=True)
@click.option("--priority", type=int, default=0, show_default=True,
              help="Higher runs first within the queue.")
@click.option("--delay", type=click.FloatRange(min=0), help="Seconds before it may run.")
@click.option("--key", help="Idempotency key: while a job with this key exists, nothing is "
                            "enqueued (so a repeated crontab line enqueues once).")
@click.option("--retry", type=click.IntRange(min=1), help="Total attempts.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True),
              help="Seconds the job may run.")
@click.option("--group", help="At most one job of a group runs at a time.")
@click.option("--meta", "meta_json", metavar="JSON", help="Metadata, a JSON object.")
@json_option
@friendly
def enqueue(target: tuple[str, ...], dsn: str | None, schema: str | None, prefix: str | None,
            args_json: str | None, kwargs_json: str | None, queue: str, priority: int,
            delay: float | None, key: str | None, retry: int | None, timeout: float | None,
            group: str | None, meta_json: str | None, as_json: bool) -> None:
    """Enqueue FUNC (a dotted path, e.g. myapp.tasks.cleanup) and print the job id.

    Made for crontab lines: with --key a line that runs twice enqueues once.

    \b
    pgwerk enqueue --dsn "$PGWERK_DSN" myapp.tasks.report \\
        --kwargs '{"kind": "daily"}' --key "report:$(date +%F)"
    """
    app_spec, func = split_target(target, "FUNC")
    try:
        params = EnqueueParams(
            func=func, args=json_arg(args_json, list, "--args"),
            kwargs=json_arg(kwargs_json, dict, "--kwargs"), queue=queue, priority=priority,
            delay=delay, key=key, retry=retry, timeout=timeout, group=group,
            meta=json_arg(meta_json, dict, "--meta") if meta_json else None,
        )
        build_spec(params, WerkConfig())  # the checks, before connecting
    except (ValueError, TypeError) as exc:
        raise click.UsageError(str(exc)) from None
    app = open_app(app_spec, dsn, schema, prefix, migrate=True)
    if app_spec:
        check_importable(func)
    holder = None
    try:
        job = app.enqueue_many([params])[0]
        if job is None and key is not None:
            found = app.list_jobs(key=key, limit=1)
            holder = found[0].id if found else None
    finally:
        app.close()
    if as_json:
        echo_json({"id": job.id if job else None, "created": job is not None, "key": key,
                   "existing_id": holder, "job": shown_job(job) if job else None})
    elif job is None:
        held = f" (job {holder})" if holder is not None else ""
        click.echo(f"a job with key {key!r} already exists{held}; nothing enqueued")
    else:
        click.echo(job.id)


@cli.command()
@click.argument("app", required=False)
@db_options
@json_option
@friendly
def info(app: str | None, dsn: str | None, schema: str | None, prefix: str | None,
         as_json: bool) -> None:
    """Where the queue is, its schema version, workers and job counts."""
    werk = open_app(app, dsn, schema, prefix)
    try:
        stats = werk.queue_stats()
        workers = werk.list_workers()
        version = werk._store.schema_version()
    finally:
        werk.close()
    summary = {"database": _safe_dsn(werk.dsn), "schema": werk.config.schema,
               "prefix": werk.config.prefix, "schema_version": version,
               "workers": len(workers), "queues": stats}
    if as_json:
        echo_json(summary)
        return
    for label in ("database", "schema", "prefix", "schema_version", "workers"):
        click.echo(f"{label.replace('_', ' ') + ':':<16}{summary[label]}")
    click.echo()
    _stats_table(stats)


@cli.command()
@click.argument("app", required=False)
@db_options
@json_option
@friendly
def stats(app: str | None, dsn: str | None, schema: str | None, prefix: str | None,
          as_json: bool) -> None:
    """Job counts by queue and status."""
    werk = open_app(app, dsn, schema, prefix)
    try:
        counts = werk.queue_stats()
    finally:
        werk.close()
    if as_json:
        echo_json(counts)
    else:
        _stats_table(counts)


def _stats_table(stats: dict[str, dict[str, Any]]) -> None:
    rows = [[queue, *(counts.get(s, 0) for s in STATUSES),
             sum(counts.get(s, 0) for s in STATUSES), _age(counts.get("oldest_queued_age"))]
            for queue, counts in sorted(stats.items())]
    echo_table(["queue", *STATUSES, "total", "oldest"], rows, "no jobs",
               drop_zero=(*STATUSES, "oldest"))


def _age(seconds: float | None) -> str | None:
    """How long the oldest queued job has waited, in whole seconds (None under one)."""
    return None if seconds is None or seconds < 1 else show_duration(round(seconds))


def _safe_dsn(dsn: str) -> str:
    return redact_dsn(dsn)  # password, sslpassword and any other secret masked


@cli.command()
@click.argument("app", required=False)
@db_options
@click.option("--queue", help="Only this queue.")
@click.option("--status", type=click.Choice(STATUSES), help="Only jobs in this status.")
@click.option("--function", help="Only jobs of this function (dotted path).")
@click.option("--key", help="Only the job with this idempotency key ('prefix*' for a prefix).")
@click.option("--search", help="Only jobs whose JSON arguments contain this text.")
@click.option("--older-than", type=Duration(), metavar="DURATION",
              help="Only jobs older than this (30s, 15m, 7d, 1h30m).")
@click.option("--batch", "batch_id", type=click.IntRange(min=1), metavar="ID",
              help="Only the members of this batch.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@json_option
@friendly
def jobs(app: str | None, dsn: str | None, schema: str | None, prefix: str | None,
         queue: str | None, status: str | None, function: str | None, key: str | None,
         search: str | None, older_than: float | None, batch_id: int | None, limit: int,
         offset: int, as_json: bool) -> None:
    """Jobs, newest first."""
    werk = open_app(app, dsn, schema, prefix)
    try:
        found = werk.list_jobs(queue=queue, status=status, function=function, key=key,
                               search=search, older_than=older_than, batch=batch_id,
                               limit=limit, offset=offset)
    finally:
        werk.close()
    if as_json:
        echo_json([shown_job(j) for j in found])
        return
    echo_table(
        ["id", "status", "progress", "queue", "function", "prio", "tries", "enqueued",
         "error"],
        [[j.id, j.state, percent(j.progress), j.queue, j.function, j.priority,
          f"{j.attempts}/{j.max_attempts}", j.enqueued_at, last_line(j.error)] for j in found],
        "no jobs" + (f" (offset {offset})" if offset else ""), drop_zero=("prio", "progress"),
    )
    if len(found) == limit:
        click.echo(f"(first {limit}; more with --offset {offset + limit})", err=True)


@cli.command()
@click.argument("target", nargs=-1, required=True, metavar="[APP] ID")
@db_options
@json_option
@friendly
def job(target: tuple[str, ...], dsn: str | None, schema: str | None, prefix: str | None,
        as_json: bool) -> None:
    """One job: payload, result or traceback, attempts."""
    app_spec, text = split_target(target, "ID")
    job_id = parse_job_id(text)
    werk = open_app(app_spec, dsn, schema, prefix)
    try:
        found = werk.get_job(job_id)
        runs = werk.get_executions(job_id)
        deps = werk.get_job_dependencies(job_id)
    finally:
        werk.close()
    if as_json:
        echo_json({**shown_job(found), "executions": runs, "dependencies": deps})
        return
    _show_job(found)
    if deps:
        click.echo("depends on:     " + ", ".join(
            f"{d['id']} ({d['status'] or 'deleted'}{', may fail' if d['allow_failure'] else ''})"
            for d in deps))
    if runs:
        click.echo()
        echo_table(["attempt", "worker", "started", "finished", "outcome", "error"],
                   [[r.attempt, r.worker_id, r.started_at, r.finished_at, r.outcome,
                     last_line(r.error)] for r in runs], "")
    if found.error:
        click.echo()
        click.echo("error:")
        click.echo(found.error.rstrip())


@cli.command()
@click.argument("target", nargs=-1, required=True, metavar="[APP] ID")
@db_options
@json_option
@friendly
def batch(target: tuple[str, ...], dsn: str | None, schema: str | None, prefix: str | None,
          as_json: bool) -> None:
    """One batch: its counts per end status and its callback jobs."""
    app_spec, text = split_target(target, "ID")
    batch_id = parse_job_id(text, "a batch id")
    werk = open_app(app_spec, dsn, schema, prefix)
    try:
        found = werk.get_batch(batch_id)
        callback_status: dict[int, str] = {}
        for fired in found.callback_jobs.values():
            try:
                callback_status[fired] = werk.get_job(fired).state
            except JobNotFound:
                pass
    finally:
        werk.close()
    if as_json:
        echo_json({**jsonable(found), "status": found.status})
        return
    fields: list[tuple[str, Any]] = [
        ("id", found.id), ("description", found.description), ("status", found.status),
        ("members", found.total), ("pending", found.pending), ("complete", found.complete),
        ("failed", found.failed), ("aborted", found.aborted), ("expired", found.expired),
        ("created", found.created_at), ("finished", found.finished_at),
    ]
    for label, value in fields:
        if value is not None:
            click.echo(f"{label + ':':<16}{cell(value, max(terminal_width() - 16, 20))}")
    if found.callbacks:
        click.echo()
        rows = []
        for kind, function in found.callbacks.items():
            callback = found.callback_jobs.get(kind)
            state = (callback_status.get(callback, "deleted") if callback is not None
                     else "waiting for the members" if found.status == "active"
                     else "not enqueued")
            rows.append([f"on {kind}", function, callback, state])
        echo_table(["callback", "function", "job", "status"], rows, "")
    if found.total:
        click.echo()
        click.echo(f"members: pgwerk jobs --batch {found.id}")


def _show_job(job: Job) -> None:
    payload = _payload_note(job)
    attempts = f"{job.attempts}/{job.max_attempts}"
    if job.snoozed:
        attempts += f" ({job.snoozed} snoozed, not counted)"
    fields: list[tuple[str, Any]] = [
        ("id", job.id), ("function", job.function), ("queue", job.queue),
        ("status", job.state), ("priority", job.priority), ("attempts", attempts),
    ]
    if job.progress is not None:
        fields.append(("progress", " ".join(filter(None, [percent(job.progress),
                                                          job.progress_message]))))
    if payload:
        fields.append(("payload", payload))
    else:
        fields += [("args", json.dumps(list(job.args), default=str)),
                   ("kwargs", json.dumps(job.kwargs, default=str))]
    fields += [
        ("enqueued", job.enqueued_at), ("scheduled", job.scheduled_at),
        ("started", job.started_at), ("completed", job.completed_at),
        ("worker", job.worker_id), ("key", job.key), ("group", job.group),
        ("unique key", job.unique_key and
         f"{job.unique_key} (held while {', '.join(job.unique_states)})"),
        ("batch", job.batch_id),
        ("timeout", job.timeout), ("meta", json.dumps(job.meta) if job.meta else None),
    ]
    if job.status is JobStatus.Complete:
        fields.append(("result", binary_note(job.payload_error, "result")
                       or json.dumps(job.result, default=str)))
    for label, value in fields:
        if value is not None or label in ("id", "status"):
            click.echo(f"{label + ':':<16}{cell(value, max(terminal_width() - 16, 20))}")


def _payload_note(job: Job) -> str | None:
    if job.args or job.kwargs:
        return None
    return binary_note(job.payload_error, "payload")


def shown_job(job: Job) -> dict[str, Any]:
    """A job for ``--json``: values that were not JSON are described, never decoded."""
    data: dict[str, Any] = jsonable(job)
    payload, result = _payload_note(job), binary_note(job.payload_error, "result")
    if payload:
        data.update(args=None, kwargs=None, payload=payload, payload_error=None)
    if result:
        data.update(result=result, payload_error=None)
    return data


def _bulk_options(func: F) -> F:
    """``--queue``, ``--function``, ``--dry-run``, ``--yes``, ``--json`` of the bulk commands."""
    func = json_option(func)
    func = click.option("--yes", "-y", is_flag=True,
                        help="Do not ask before touching jobs of every queue (for scripts).")(func)
    func = click.option("--dry-run", is_flag=True,
                        help="Only count the jobs that would be touched.")(func)
    func = click.option("--function", help="Only jobs of this function (dotted path).")(func)
    func = click.option("--queue", help="Only jobs of this queue.")(func)
    return func


_PAST = {"cancel": "cancelled"}


def _report_bulk(verb: str, count: int, dry_run: bool, as_json: bool,
                 **details: Any) -> None:
    if as_json:
        echo_json({"count": count, "dry_run": dry_run, **details})
    elif dry_run:
        click.echo(f"would {verb} {count} job(s) (dry run: nothing changed)")
    else:
        click.echo(f"{_PAST.get(verb, verb + 'd')} {count} job(s)")


def _confirm_everything(werk: Werk, question: str, count: int) -> None:
    """Ask before a bulk change that no filter limits; refuse when nobody can answer."""
    if count == 0:
        return
    try:
        agreed = click.confirm(f"{question.format(count=count)} Continue?", default=False,
                               err=True)
    except click.Abort:  # no answer (stdin closed, Ctrl-C)
        agreed = False
    if not agreed:
        werk.close()
        raise CliError("nothing changed (pass --yes to skip this question)")


@cli.command()
@click.argument("target", nargs=-1, metavar="[APP] [ID]")
@db_options
@_bulk_options
@click.option("--failed", "with_failed", is_flag=True, help="Failed jobs (bulk).")
@click.option("--aborted", "with_aborted", is_flag=True, help="Aborted jobs (bulk).")
@click.option("--expired", "with_expired", is_flag=True, help="Expired jobs (bulk).")
@click.option("--older-than", type=Duration(), metavar="DURATION",
              help="Only jobs that ended longer ago than this (30s, 15m, 7d, 1h30m).")
@friendly
def retry(target: tuple[str, ...], dsn: str | None, schema: str | None, prefix: str | None,
          queue: str | None, function: str | None, dry_run: bool, yes: bool, as_json: bool,
          with_failed: bool, with_aborted: bool, with_expired: bool,
          older_than: float | None) -> None:
    """Run a failed, aborted or expired job again; without ID, every such job that the
    filters select (all three statuses unless --failed/--aborted/--expired say which).

    \b
    pgwerk retry 1234
    pgwerk retry --queue mail --failed --older-than 1h
    """
    app_spec, job_id = split_optional_id(target)
    statuses = tuple(name for name, chosen in (("failed", with_failed),
                                                ("aborted", with_aborted),
                                                ("expired", with_expired)) if chosen)
    if job_id is not None:
        if queue or function or statuses or older_than is not None or dry_run:
            raise click.UsageError("give a job ID or filters (--queue, --function, --failed, "
                                   "...), not both")
        _retry_one(app_spec, dsn, schema, prefix, job_id)
        return
    if not (queue or function or statuses or older_than is not None):
        raise click.UsageError("give a job ID, or say which jobs: --queue, --function, "
                               "--failed, --aborted, --expired, --older-than")
    wanted = statuses or ("failed", "aborted", "expired")
    werk = open_app(app_spec, dsn, schema, prefix)
    try:
        count = werk.bulk_requeue_jobs(queue=queue, function=function, statuses=wanted,
                                       older_than=older_than, dry_run=dry_run)
    finally:
        werk.close()
    _report_bulk("requeue", count, dry_run, as_json, queue=queue, function=function,
                 statuses=list(wanted), older_than=older_than)


def _retry_one(app_spec: str | None, dsn: str | None, schema: str | None,
               prefix: str | None, job_id: int) -> None:
    werk = open_app(app_spec, dsn, schema, prefix)
    try:
        if werk.requeue_job(job_id):
            click.echo(f"job {job_id} queued again")
            return
        job = werk.get_job(job_id)
    finally:
        werk.close()
    if job.status.value in ("failed", "aborted", "expired"):  # held back by its unique key
        raise CliError(f"job {job_id} is {job.status.value}, but another job holds its unique "
                       "key; retrying this one would make a duplicate")
    raise CliError(f"job {job_id} is {job.status.value}; only failed, aborted or expired jobs "
                   "are retried")


@cli.command()
@click.argument("target", nargs=-1, metavar="[APP] [ID]")
@db_options
@_bulk_options
@friendly
def cancel(target: tuple[str, ...], dsn: str | None, schema: str | None, prefix: str | None,
           queue: str | None, function: str | None, dry_run: bool, yes: bool,
           as_json: bool) -> None:
    """Cancel a job that has not started, or ask its worker to stop a running one; without
    ID, cancel every job not yet started that --queue / --function select (asks first
    when neither is given).

    \b
    pgwerk cancel 1234
    pgwerk cancel --queue reports --dry-run
    """
    app_spec, job_id = split_optional_id(target)
    if job_id is not None:
        if queue or function or dry_run:
            raise click.UsageError("give a job ID or filters (--queue, --function), not both")
        _cancel_one(app_spec, dsn, schema, prefix, job_id)
        return
    werk = open_app(app_spec, dsn, schema, prefix)
    try:
        if not (queue or function or dry_run or yes):
            _confirm_everything(werk, "cancel all {count} job(s) not yet started, in every "
                                      "queue?", werk.bulk_cancel_jobs(dry_run=True))
        count = werk.bulk_cancel_jobs(queue=queue, function=function, dry_run=dry_run)
    finally:
        werk.close()
    _report_bulk("cancel", count, dry_run, as_json, queue=queue, function=function)


def _cancel_one(app_spec: str | None, dsn: str | None, schema: str | None,
                prefix: str | None, job_id: int) -> None:
    werk = open_app(app_spec, dsn, schema, prefix)
    try:
        if werk.cancel_job(job_id):
            click.echo(f"job {job_id} cancelled")
            return
        if werk.abort_job(job_id):
            click.echo(f"job {job_id} is running: its worker was asked to stop it")
            return
        status = werk.get_job(job_id).status.value
    finally:
        werk.close()
    raise CliError(f"job {job_id} already ended ({status})")


@cli.command()
@click.argument("app", required=False)
@db_options
@click.option("--status", "statuses", type=click.Choice(END_STATUSES), multiple=True,
              help="Status of the jobs to delete (repeatable; default complete).")
@click.option("--older-than", type=Duration(), metavar="DURATION",
              help="Only jobs that ended longer ago than this (30s, 15m, 7d, 1h30m).")
@_bulk_options
@friendly
def purge(app: str | None, dsn: str | None, schema: str | None, prefix: str | None,
          statuses: tuple[str, ...], older_than: float | None, queue: str | None,
          function: str | None, dry_run: bool, yes: bool, as_json: bool) -> None:
    """Delete ended jobs (complete ones unless --status says otherwise). Without --queue,
    --function or --older-than it asks first: that deletes every such job.

    \b
    pgwerk purge --queue mail --older-than 7d --dry-run
    pgwerk purge --status failed --older-than 30d --yes
    """
    wanted = list(statuses) or ["complete"]
    werk = open_app(app, dsn, schema, prefix)
    try:
        if not (queue or function or older_than is not None or dry_run or yes):
            everything = werk.purge_jobs(wanted, dry_run=True)
            _confirm_everything(werk, f"delete all {{count}} {'/'.join(wanted)} job(s), in "
                                      f"every queue?", everything)
        if not as_json and not dry_run and sys.stderr.isatty():
            click.echo(f"deleting {'/'.join(wanted)} jobs…", err=True)
        count = werk.purge_jobs(wanted, queue=queue, function=function,
                                older_than=older_than or 0, dry_run=dry_run)
    finally:
        werk.close()
    if as_json:
        echo_json({"deleted": 0 if dry_run else count, "count": count, "dry_run": dry_run,
                   "statuses": wanted, "queue": queue, "function": function,
                   "older_than": older_than or 0})
    elif dry_run:
        click.echo(f"would delete {count} job(s) (dry run: nothing changed)")
    else:
        click.echo(f"deleted {count} job(s)")


@cli.command()
@click.argument("app", required=False)
@db_options
@json_option
@friendly
def workers(app: str | None, dsn: str | None, schema: str | None, prefix: str | None,
            as_json: bool) -> None:
    """Registered workers and their last heartbeat."""
    werk = open_app(app, dsn, schema, prefix)
    try:
        found = werk.list_workers()
    finally:
        werk.close()
    if as_json:
        echo_json(found)
        return
    echo_table(["id", "queues", "pool", "active", "heartbeat", "started", "state"],
               [[w.id, ",".join(w.queues), f"{w.pool}x{w.concurrency}", w.active_jobs,
                 f"{w.heartbeat_age:.0f}s ago", w.started_at,
                 "stopping" if w.stopping else "running"] for w in found],
               "no workers")


@cli.command()
@click.argument("app", required=False)
@db_options
@json_option
@friendly
def sweep(app: str | None, dsn: str | None, schema: str | None, prefix: str | None,
          as_json: bool) -> None:
    """Run the workers' maintenance pass once: put back jobs of dead workers, expire,
    promote dependents, delete rows past their retention (skipped if a worker is sweeping
    right now)."""
    werk = open_app(app, dsn, schema, prefix)
    try:
        counts = werk.sweep()
    finally:
        werk.close()
    if as_json:
        echo_json({"swept": bool(counts), **counts})
    elif not counts:
        click.echo("another process is sweeping right now; nothing done")
    else:
        click.echo(", ".join(f"{name.replace('_', ' ')} {count}"
                             for name, count in counts.items()))


_DOCTOR_STYLE = {"ok": "green", "warn": "yellow", "fail": "red"}


@cli.command()
@click.argument("app", required=False)
@db_options
@json_option
@friendly
def doctor(app: str | None, dsn: str | None, schema: str | None, prefix: str | None,
           as_json: bool) -> None:
    """Health checks with advice: schema, indexes, bloat, dead rows, autovacuum, stuck
    jobs, silent workers, waiting and overdue jobs, connection headroom, a pooler in
    front. Each line is ok, warn or fail with the command that fixes it; the exit status
    is 1 when any check fails (for monitoring, with --json)."""
    from pgwerk._doctor import run_checks

    werk = open_app(app, dsn, schema, prefix)
    if app:
        base = load_app(app).config
        target = app
    else:
        base = WerkConfig()
        target = '--dsn "$PGWERK_DSN"' + "".join(
            f" --{name} {value}" for name, value in (("schema", schema), ("prefix", prefix))
            if value)
    try:
        checks = run_checks(werk, target, base.max_pool_size, base.application_name)
    finally:
        werk.close()
    failed = any(c.status == "fail" for c in checks)
    if as_json:
        echo_json({"ok": not failed, "database": _safe_dsn(werk.dsn),
                   "schema": werk.config.schema, "prefix": werk.config.prefix,
                   "checks": [{"name": c.name, "status": c.status, "message": c.message,
                               "fix": c.fix, **c.data} for c in checks]})
    else:
        _doctor_report(checks)
    if failed:
        sys.exit(1)


def _doctor_report(checks: list[Any]) -> None:
    width = terminal_width()
    name_width = max(len(c.name) for c in checks)
    indent = " " * (6 + name_width + 2)
    for check in checks:
        head = click.style(f"{check.status:<4}", fg=_DOCTOR_STYLE[check.status], bold=True)
        lines = textwrap.wrap(check.message, max(width - len(indent), 30)) or [""]
        click.echo(f"{head}  {check.name:<{name_width}}  {lines[0]}")
        for line in lines[1:]:
            click.echo(indent + line)
        if check.fix:
            click.echo(f"{indent}fix: {check.fix}")


@cli.command()
@click.argument("app", required=False)
@db_options
@click.option("--sql", "print_sql", is_flag=True,
              help="Print the DDL instead of running it (no connection).")
@friendly
def migrate(app: str | None, dsn: str | None, schema: str | None, prefix: str | None,
            print_sql: bool) -> None:
    """Create or upgrade the pgwerk tables."""
    if print_sql:
        if app and dsn:
            raise click.UsageError("give APP or --dsn, not both")
        if app:
            base = load_app(app)
            config = base.config.merged(**{k: v for k, v in
                                            (("schema", schema), ("prefix", prefix)) if v})
            click.echo(_migrate.migration_sql(config.schema, config.prefix), nl=False)
        else:
            click.echo(_migrate.migration_sql(schema or "public", prefix or "_pgwerk"),
                       nl=False)
        return
    werk = open_app(app, dsn, schema, prefix)
    try:
        applied = werk.migrate()
    finally:
        werk.close()
    where = f"{werk.config.schema}.{werk.config.prefix}"
    if applied:
        click.echo(f"{where}: applied {applied} migration(s); now at version "
                   f"{_migrate.latest_version()}")
    else:
        click.echo(f"{where}: already at version {_migrate.latest_version()}")


@cli.command()
@click.argument("app", required=False)
@db_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (loopback by default; any other address needs "
                   "--auth or --insecure).")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--read-only", is_flag=True, help="Hide and refuse every action.")
@click.option("--auth", envvar="PGWERK_DASHBOARD_AUTH", metavar="USER:PASSWORD",
              help="Require HTTP Basic authentication with these credentials "
                   "(default $PGWERK_DASHBOARD_AUTH). Serve it behind HTTPS.")
@click.option("--insecure", is_flag=True,
              help="Allow a non-loopback --host without --auth (only behind a proxy that "
                   "authenticates).")
@friendly
def dashboard(app: str | None, dsn: str | None, schema: str | None, prefix: str | None,
              host: str, port: int, read_only: bool, auth: str | None,
              insecure: bool) -> None:
    """Serve the web dashboard (needs pgwerk[web]) until interrupted."""
    try:
        importlib.import_module("jinja2")
    except ImportError:
        raise AppError("the dashboard needs Jinja2: pip install pgwerk[web]") from None
    from pgwerk.dashboard import serve_dashboard
    from pgwerk.dashboard._auth import is_loopback, parse_credentials

    try:
        credentials = parse_credentials(auth or None)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--auth") from None
    if credentials is None and not insecure and not is_loopback(host):
        raise click.UsageError(
            f"--host {host} is not a loopback address: anyone who can reach it could retry, "
            "cancel and delete jobs. Give --auth USER:PASSWORD (or PGWERK_DASHBOARD_AUTH), "
            "or --insecure if a proxy in front authenticates.")
    werk = open_app(app, dsn, schema, prefix)
    click.echo(f"pgwerk dashboard on http://{host}:{port}/ (Ctrl-C to stop)", err=True)
    try:
        serve_dashboard(werk, host=host, port=port, read_only=read_only, auth=credentials)
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc}") from None
    except KeyboardInterrupt:
        pass
    finally:
        werk.close()


# -- queue limits --------------------------------------------------------------------------------


class RateType(click.ParamType):
    """``--rate``: ``10/s``, ``100/m``, ``1000/h``, ``5000/d``, ``50/15m``."""

    name = "rate"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> tuple[int, float]:
        if isinstance(value, tuple):
            return value
        try:
            return rate_limit(str(param.opts[0] if param else "--rate"), value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a rate: give {RATE_TEXT_HELP}", param, ctx)


@cli.group()
def queue() -> None:
    """Rate and concurrency limits of queues: set, change, remove, show."""


@queue.command("set")
@click.argument("target", nargs=-1, required=True, metavar="[APP] QUEUE")
@db_options
@click.option("--rate", type=RateType(), metavar="N/UNIT",
              help="At most N jobs start in any window: 10/s, 100/m, 1000/h, 5000/d, 50/15m.")
@click.option("--no-rate", is_flag=True, help="Remove the rate limit.")
@click.option("--concurrency", type=int, metavar="N",
              help="At most N jobs of the queue run at once, across every worker.")
@click.option("--no-concurrency", is_flag=True, help="Remove the concurrency limit.")
@click.option("--function", metavar="FUNC",
              help="Limit only this function's jobs in the queue (a dotted path).")
@json_option
@friendly
def queue_set(target: tuple[str, ...], dsn: str | None, schema: str | None,
              prefix: str | None, rate: tuple[int, float] | None, no_rate: bool,
              concurrency: int | None,
              no_concurrency: bool, function: str | None, as_json: bool) -> None:
    """Set, change or remove the limits of QUEUE, for every worker from their next claim.
    Limits not named stay as they are; a queue left without limits is unlimited."""
    app_spec, name = split_target(target, "QUEUE")
    if rate is not None and no_rate:
        raise click.UsageError("give --rate or --no-rate, not both")
    if concurrency is not None and no_concurrency:
        raise click.UsageError("give --concurrency or --no-concurrency, not both")
    changes: dict[str, Any] = {}
    if rate is not None or no_rate:
        changes["rate_limit"] = rate
    if concurrency is not None or no_concurrency:
        changes["concurrency"] = concurrency
    if not changes:
        raise click.UsageError("nothing to set: give --rate, --no-rate, --concurrency or "
                               "--no-concurrency")
    werk = open_app(app_spec, dsn, schema, prefix)
    try:
        try:
            limit = werk.configure_queue(name, function=function, **changes)
        except (TypeError, ValueError) as exc:
            option = next((o for o in ("concurrency", "function") if str(exc).startswith(o)),
                          "QUEUE" if str(exc).startswith("queue") else None)
            raise click.BadParameter(str(exc), param_hint=f"--{option}" if option not in (
                None, "QUEUE") else option) from None
    finally:
        werk.close()
    what = name if function is None else f"{name} ({function})"
    if as_json:
        echo_json({"queue": name, "function": function, "limits": _shown_limit(limit)})
    elif limit is None:
        click.echo(f"{what}: no limits")
    else:
        click.echo(f"{what}: " + _limit_text(limit))


@queue.command("show")
@click.argument("target", nargs=-1, metavar="[APP] [QUEUE]")
@db_options
@json_option
@friendly
def queue_show(target: tuple[str, ...], dsn: str | None, schema: str | None,
               prefix: str | None, as_json: bool) -> None:
    """The limits of every queue (or of QUEUE) and what they hold now: jobs running
    against a concurrency limit, jobs started within a rate limit's window."""
    if len(target) > 2:
        raise click.UsageError(f"expected [APP] [QUEUE], got {len(target)} arguments")
    app_spec = next((t for t in target if ":" in t), None)
    names = [t for t in target if t != app_spec]
    werk = open_app(app_spec, dsn, schema, prefix)
    try:
        limits = werk.queue_limits(names[0] if names else None)
    finally:
        werk.close()
    if as_json:
        echo_json([_shown_limit(limit) for limit in limits])
        return
    echo_table(["queue", "function", "rate", "started in window", "concurrency", "running"],
               [[limit.queue, limit.function, limit.rate, limit.recent, limit.concurrency,
                 limit.running] for limit in limits],
               "no queue limits: every queue is unlimited", drop_zero=("function",))


queue.add_command(queue_show, "list")


def _shown_limit(limit: Any) -> dict[str, Any] | None:
    if limit is None:
        return None
    return {"queue": limit.queue, "function": limit.function, "rate": limit.rate,
            "rate_limit": limit.rate_limit, "rate_period": limit.rate_period,
            "recent": limit.recent, "concurrency": limit.concurrency,
            "running": limit.running, "updated_at": limit.updated_at}


def _limit_text(limit: Any) -> str:
    parts = []
    if limit.rate is not None:
        parts.append(f"rate {limit.rate} ({limit.recent} started in the current window)")
    if limit.concurrency is not None:
        parts.append(f"concurrency {limit.concurrency} ({limit.running} running)")
    return ", ".join(parts)


# -- cron ---------------------------------------------------------------------------------------


@cli.group()
def cron() -> None:
    """Periodic jobs: list, run, pause, resume and remove schedules."""


def _cron_scheduler(app_spec: str | None, dsn: str | None, schema: str | None,
                    prefix: str | None) -> Any:
    from pgwerk.cron import CronScheduler

    werk = open_app(app_spec, dsn, schema, prefix)
    if app_spec:
        return CronScheduler.of(load_app(app_spec)).with_app(werk)
    return CronScheduler(werk)


@cron.command("list")
@click.argument("app", required=False)
@db_options
@json_option
@friendly
def cron_list(app: str | None, dsn: str | None, schema: str | None, prefix: str | None,
              as_json: bool) -> None:
    """Schedules registered by APP and stored in the database: when each ticks next
    (blank while paused), the last tick that really enqueued a job (and that job), the
    time zone, and whether a scheduler is running to enqueue them.

    Without APP (--dsn) the schedules are read from the database rows.
    """
    from pgwerk._doctor import cron_leader_pid

    scheduler = _cron_scheduler(app, dsn, schema, prefix)
    werk = scheduler.app
    try:
        found = scheduler.list()
        leader = cron_leader_pid(werk)
        shown = [_cron_truth(werk, c, leader) for c in found]
    finally:
        werk.close()
    if as_json:
        echo_json(shown)
        return
    echo_table(["name", "schedule", "tz", "function", "queue", "state", "next tick",
                "last enqueued", "job"],
               [[c["name"], c["schedule"], c["timezone"],
                 c["function"] if any(x["function"] != x["name"] for x in shown) else None,
                 c["queue"], c["state"], c["next_tick"], c["last_enqueued_tick"],
                 c["last_job_id"]] for c in shown],
               "no cron schedules", drop_zero=("function",))
    if found and leader is None:
        click.echo("no cron scheduler is running: nothing is enqueued (run pgwerk-worker APP "
                   "--scheduler, or pgwerk cron run APP)", err=True)


_TZ_SUFFIX = re.compile(r"^(.*) \((.+)\)$")


def _cron_truth(werk: Werk, cron_job: Any, leader: int | None) -> dict[str, Any]:
    """A schedule as it really is: the last tick found among the jobs (tick jobs carry
    the key ``cron:<name>:<tick>``), no next tick while paused, the time zone apart."""
    last = werk.list_jobs(key=f"cron:{cron_job.name}:*", limit=1)
    job = last[0] if last else None
    tick = (job.meta or {}).get("tick") if job is not None else None
    schedule, tz = cron_job.schedule, None
    match = _TZ_SUFFIX.match(schedule)
    if match:
        schedule, tz = match.group(1), match.group(2)
    elif not schedule.startswith("every "):
        tz = "UTC"
    next_tick = None if cron_job.paused else cron_job.next_tick
    state = "paused" if cron_job.paused else ("active" if leader else "no scheduler")
    return {
        "name": cron_job.name, "function": cron_job.function, "schedule": schedule,
        "timezone": tz, "queue": cron_job.queue, "paused": cron_job.paused,
        "registered": cron_job.registered, "state": state, "scheduler_running": bool(leader),
        "next_tick": next_tick,
        "late": bool(next_tick and next_tick < datetime.now(timezone.utc)),
        "last_enqueued_tick": datetime.fromisoformat(tick) if tick else None,
        "last_job_id": job.id if job is not None else None,
        "last_job_status": job.status.value if job is not None else None,
    }


@cron.command("run")
@click.argument("app")
@click.option("--retry-interval", type=click.FloatRange(min=0, min_open=True), default=5.0,
              show_default=True, help="Seconds between attempts to become the leader.")
@click.option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False),
              default="INFO", show_default=True)
@click.option("--log-format", type=click.Choice(LOG_FORMATS), default="text", show_default=True)
@friendly
def cron_run(app: str, retry_interval: float, log_level: str, log_format: str) -> None:
    """Run APP's cron scheduler (no worker) until SIGTERM/SIGINT."""
    from pgwerk.cron import CronScheduler

    configure_logging(log_level, log_format)
    base = CronScheduler.of(load_app(app))
    if not base.names:
        raise CliError(f"{app} registers no cron schedules")
    scheduler = base
    scheduler.retry_interval = retry_interval

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("%s: stopping the cron scheduler", signal.Signals(signum).name)
        scheduler.stop()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
    scheduler.run()


def _cron_change(action: str) -> Callable[..., None]:
    @click.argument("target", nargs=-1, required=True, metavar="[APP] NAME")
    @db_options
    @friendly
    def command(target: tuple[str, ...], dsn: str | None, schema: str | None,
                prefix: str | None) -> None:
        app_spec, name = split_target(target, "NAME")
        scheduler = _cron_scheduler(app_spec, dsn, schema, prefix)
        try:
            getattr(scheduler, {"remove": "unregister"}.get(action, action))(name)
        except LookupError as exc:
            raise CliError(str(exc)) from None
        finally:
            scheduler.app.close()
        click.echo(f"{name}: {action.rstrip('e')}ed")

    return command


cron.command("pause", help="Stop enqueueing a schedule's ticks (for every process).")(
    _cron_change("pause"))
cron.command("resume", help="Enqueue a schedule's ticks again, from now on.")(
    _cron_change("resume"))
cron.command("remove", help="Delete a stored schedule (one its code still registers comes "
                            "back when a scheduler starts).")(_cron_change("remove"))


if __name__ == "__main__":
    main()
