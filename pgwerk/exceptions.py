"""Exceptions raised by pgwerk. Everything a caller may catch derives from ``WerkError``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pgwerk.job import Job


class WerkError(Exception):
    """Base class of every error pgwerk raises on purpose."""


class ConfigurationError(WerkError, ValueError):
    """A setting is missing or has a value pgwerk cannot use."""


class DatabaseUnavailable(WerkError):
    """PostgreSQL could not be reached within the configured reconnect attempts."""


class SchemaError(WerkError):
    """The pgwerk tables are missing or older than this version expects."""


class JobNotFound(WerkError, LookupError):
    """No job with the given id exists (it may have been deleted or purged)."""

    def __init__(self, job_id: int | str) -> None:
        super().__init__(f"no job with id {job_id!r}")
        self.job_id = job_id


class BatchNotFound(WerkError, LookupError):
    """No batch with the given id exists (it may have been pruned after it finished)."""

    def __init__(self, batch_id: int | str) -> None:
        super().__init__(f"no batch with id {batch_id!r}")
        self.batch_id = batch_id


class JobError(WerkError):
    """A job waited on with ``apply``/``map`` failed, was aborted or expired.

    Attributes:
        job: the job record in its terminal state; ``job.error`` holds the traceback.
    """

    def __init__(self, job: Job) -> None:
        detail = (job.error or "").strip().splitlines()
        last = detail[-1] if detail else job.status.value
        super().__init__(f"job {job.id} ({job.function}) ended {job.status.value}: {last}")
        self.job = job


class WorkerFailed(WerkError):
    """A part of a running worker (completion writer, heartbeat, sweep) died; the worker
    stopped so that its supervisor can start a fresh one."""


class DependencyFailed(WerkError):
    """A job's dependency ended without success and ``allow_failure`` was not set."""


class JobTimeout(BaseException):
    """Raised inside a handler when its ``_timeout`` passes.

    A ``BaseException`` so that ``except Exception`` in user code cannot swallow it.
    """


class JobAborted(BaseException):
    """Raised inside a handler when ``abort_job`` asks the worker to stop it."""


class WorkerShutdown(BaseException):
    """Raised inside a handler when the worker stops and the grace period has passed."""
