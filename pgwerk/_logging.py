"""Logging for the command line: text or JSON lines on stderr, each line of a job's
execution tagged with the job's id, function and queue.

The worker already passes ``extra={"job_id": ..., "function": ..., "queue": ...}`` on its own
job lines. Lines logged by the handler itself (``logging.getLogger("myapp").info(...)``
inside a job) get the same fields from ``JobContextFilter``, which reads the job bound to the
executing thread by the ``before_process`` hook of ``job_context_hooks()``.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import datetime, timezone
from typing import IO, Any

from pgwerk.job import Context

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
JOB_FIELDS = ("job_id", "function", "queue")

_current = threading.local()


def bind_job(ctx: Context) -> None:
    """Tag the log lines of this thread with ``ctx.job`` until ``unbind_job``."""
    job = ctx.job
    _current.fields = {"job_id": job.id, "function": job.function, "queue": job.queue}


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


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, the job fields when present, and ``exception`` (traceback text)."""

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
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``2026-01-01 12:00:00,000 INFO pgwerk.worker: message [job=12 app.tasks.send@mail]``"""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        job_id = getattr(record, "job_id", None)
        if job_id is None:
            return text
        first, newline, rest = text.partition("\n")
        tag = f" [job={job_id} {getattr(record, 'function', '?')}@{getattr(record, 'queue', '?')}]"
        return first + tag + newline + rest


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
                      stream: IO[str] | None = None) -> logging.Handler:
    """Send every log line to ``stream`` (stderr) as text or JSON lines.

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
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
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
