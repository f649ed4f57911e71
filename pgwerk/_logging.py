"""Logging for the command line: text or JSON lines on stderr, each line of a job's
execution tagged with the job's id, function and queue.

The worker passes ``extra=job_fields(job, ...)`` on its own job lines: ``job_id``,
``function``, ``queue``, ``attempt``, ``worker_id``, and on the line that ends an attempt
``duration`` (seconds) and ``job_error`` (the traceback, shown only when asked for with
``tracebacks=True``, without pgwerk's own frames). Lines logged by the handler itself
(``logging.getLogger("myapp").info(...)`` inside a job) get the job fields from
``JobContextFilter``, which reads the job bound to the executing thread by the
``before_process`` hook of ``job_context_hooks()``.

Levels: INFO says what each job became; DEBUG adds a ``started`` line per job, every claim
(how many jobs from which queues) and every batch of outcomes written.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from datetime import datetime, timezone
from typing import IO, TYPE_CHECKING, Any

from pgwerk.job import Context

if TYPE_CHECKING:
    from pgwerk.job import Job

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: Record attributes the JSON formatter writes when a line carries them.
JOB_FIELDS = ("job_id", "function", "queue", "attempt", "worker_id", "duration")

_current = threading.local()


def job_fields(job: Job, worker_id: str | None = None, **more: Any) -> dict[str, Any]:
    """The ``extra=`` of a log line about ``job``."""
    return {"job_id": job.id, "function": job.function, "queue": job.queue,
            "attempt": job.attempts, "worker_id": worker_id or job.worker_id, **more}


def bind_job(ctx: Context) -> None:
    """Tag the log lines of this thread with ``ctx.job`` until ``unbind_job``."""
    worker_id = getattr(ctx.worker, "id", None)
    _current.fields = job_fields(ctx.job, worker_id)


def unbind_job(ctx: Context | None = None) -> None:
    """Stop tagging this thread's log lines with a job."""
    _current.fields = None


def job_context_hooks() -> dict[str, Any]:
    """``before_process``/``after_process`` keyword arguments for a ``Worker`` that bind the
    running job to the log lines of the thread (or forked child) executing it."""
    return {"before_process": bind_job, "after_process": unbind_job}


class JobContextFilter(logging.Filter):
    """Adds ``job_id``, ``function`` and ``queue`` to records logged while a job runs."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = getattr(_current, "fields", None)
        if fields:
            for name, value in fields.items():
                if getattr(record, name, None) is None:
                    setattr(record, name, value)
        return True


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_FRAME = re.compile(r'^\s*File "(.+?)", line \d+')


def without_own_frames(text: str) -> str:
    """A traceback without the frames of pgwerk's own files (the handler's frames and the
    exception stay): what a job's author needs to read."""
    kept, skipping = [], False
    for line in text.rstrip().splitlines():
        frame = _FRAME.match(line)
        if frame:
            skipping = os.path.abspath(frame.group(1)).startswith(_PACKAGE_DIR)
        elif not line.startswith("    "):
            skipping = False
        if not skipping:
            kept.append(line)
    return "\n".join(kept)


def _job_traceback(record: logging.LogRecord) -> str | None:
    error = getattr(record, "job_error", None)
    return without_own_frames(error) if isinstance(error, str) and error.strip() else None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, the job fields when present (``job_id``, ``function``, ``queue``,
    ``attempt``, ``worker_id``, ``duration``), ``exception`` (traceback text), and with
    ``tracebacks=True`` the ``traceback`` of a failed job."""

    def __init__(self, tracebacks: bool = False) -> None:
        super().__init__()
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in JOB_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        if self.tracebacks:
            job_traceback = _job_traceback(record)
            if job_traceback:
                entry["traceback"] = job_traceback
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``2026-01-01 12:00:00,000 INFO pgwerk.worker: message [job=12 app.tasks.send@mail]``,
    followed with ``tracebacks=True`` by the traceback of a failed job."""

    def __init__(self, tracebacks: bool = False) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        job_id = getattr(record, "job_id", None)
        if job_id is not None:
            first, newline, rest = text.partition("\n")
            tag = (f" [job={job_id} {getattr(record, 'function', '?')}"
                   f"@{getattr(record, 'queue', '?')}]")
            text = first + tag + newline + rest
        if self.tracebacks:
            job_traceback = _job_traceback(record)
            if job_traceback:
                text = f"{text}\n{job_traceback}"
        return text


_HANDLER_NAME = "pgwerk-cli"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record arrives (it may be replaced)."""

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass


def configure_logging(level: str | int = "INFO", fmt: str = "text",
                      stream: IO[str] | None = None, *,
                      tracebacks: bool = False) -> logging.Handler:
    """Send every log line to ``stream`` (stderr) as text or JSON lines; with
    ``tracebacks`` the line of a failed attempt carries its traceback (pgwerk's own frames
    left out).

    Replaces a handler installed by an earlier call, leaves other handlers alone. Returns
    the handler.

    Raises:
        ValueError: unknown level or format.
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}")
    if isinstance(level, str):
        name = level.upper()
        if name not in LOG_LEVELS:
            raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
        level = getattr(logging, name)
    handler: logging.Handler = (
        logging.StreamHandler(stream) if stream is not None else _StderrHandler())
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter(tracebacks) if fmt == "json"
                         else TextFormatter(tracebacks))
    handler.addFilter(JobContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER_NAME:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # The pool's own INFO lines (connections opened/closed) drown the worker's.
    logging.getLogger("psycopg.pool").setLevel(max(int(level), logging.WARNING))
    return handler
