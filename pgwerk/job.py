"""The records users see and the small option objects they pass to ``enqueue``."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Union

from pgwerk._validate import INT32_MAX, integer, job_id_or_none, rate_text, seconds

if TYPE_CHECKING:
    from pgwerk.app import Werk
    from pgwerk.worker import Worker


class JobStatus(str, enum.Enum):
    """Where a job is in its life. The last four are terminal."""

    Scheduled = "scheduled"
    Queued = "queued"
    Waiting = "waiting"
    Active = "active"
    Aborting = "aborting"
    Complete = "complete"
    Failed = "failed"
    Aborted = "aborted"
    Expired = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    def __str__(self) -> str:
        return self.value


TERMINAL_STATUSES = frozenset(
    {JobStatus.Complete, JobStatus.Failed, JobStatus.Aborted, JobStatus.Expired}
)


def _duration(name: str, value: object, *, positive: bool = False) -> float:
    found = seconds(name, value, positive=positive)
    if found is None:
        raise TypeError(f"{name} must be a number of seconds (int, float or timedelta), "
                        "got None")
    return found


def _intervals(name: str, value: object) -> tuple[float, ...]:
    if isinstance(value, (int, float, timedelta)) and not isinstance(value, bool):
        return (_duration(name, value),)
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and value:
        return tuple(_duration(f"{name}[{i}]", v) for i, v in enumerate(value))
    raise TypeError(
        f"{name} must be a number of seconds or a non-empty list of them, got {value!r}"
    )


@dataclass(frozen=True)
class Retry:
    """How many attempts a job gets in total, and how long to wait between them.

    Args:
        max: total attempts including the first (``Retry(max=3)`` = two retries).
        intervals: seconds before each retry; an int for a uniform delay, or a list whose
            last value repeats (``[10, 60, 300]``). Default: retry at once.
    """

    max: int
    intervals: int | float | Sequence[int | float] | None = None

    def __post_init__(self) -> None:
        integer("Retry.max", self.max, minimum=1, maximum=INT32_MAX, hint=" (total attempts)")
        if self.intervals is not None:
            object.__setattr__(
                self, "intervals", list(_intervals("Retry.intervals", self.intervals))
            )

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if not self.intervals:
            return 0.0
        assert isinstance(self.intervals, list)
        return float(self.intervals[min(attempt - 1, len(self.intervals) - 1)])


@dataclass(frozen=True)
class Repeat:
    """Re-enqueue a job after each success.

    Args:
        times: how many more runs after the first (``times=5`` runs six times in all).
        interval: seconds between runs.
        intervals: seconds before each repeat; the last value repeats.
    """

    times: int
    interval: int | float | None = None
    intervals: Sequence[int | float] | None = None

    def __post_init__(self) -> None:
        integer("Repeat.times", self.times, minimum=1, maximum=INT32_MAX,
                hint=" (runs after the first)")
        if self.interval is not None and self.intervals is not None:
            raise ValueError("Repeat takes interval or intervals, not both")
        if self.interval is not None:
            object.__setattr__(self, "interval", _duration("Repeat.interval", self.interval))
        if self.intervals is not None:
            object.__setattr__(
                self, "intervals", list(_intervals("Repeat.intervals", self.intervals))
            )

    def schedule(self) -> list[float]:
        """The delay before each repeat, one per repeat."""
        if self.intervals:
            values = list(self.intervals)
            return [float(values[min(i, len(values) - 1)]) for i in range(self.times)]
        return [float(self.interval or 0)] * self.times


@dataclass(frozen=True)
class Callback:
    """A callback with its own time limit.

    Args:
        func: a module-level callable or its dotted path; it receives a ``Context``.
        timeout: seconds the callback may run; ``None`` for no limit.
    """

    func: Callable[..., Any] | str
    timeout: float | None = None

    def __post_init__(self) -> None:
        if self.timeout is not None:
            object.__setattr__(
                self, "timeout", _duration("Callback.timeout", self.timeout, positive=True))


@dataclass(frozen=True)
class Dependency:
    """A job to wait for. With ``allow_failure=True`` the dependent runs whatever the
    upstream job's outcome; otherwise it fails with ``DependencyFailed``."""

    job: Job | int | str
    allow_failure: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.allow_failure, bool):
            raise TypeError(f"Dependency.allow_failure must be True or False, "
                            f"got {self.allow_failure!r}")
        if not isinstance(self.job, Job):
            try:
                found = job_id_or_none(self.job)
            except TypeError:
                raise TypeError(f"Dependency takes a Job or a job id (an int or a string of "
                                f"digits), got {self.job!r}") from None
            if found is None:
                raise ValueError(f"Dependency: {self.job!r} is not a job id (a positive "
                                 "int, or a string of digits)")
            object.__setattr__(self, "job", found)

    @property
    def job_id(self) -> int:
        """The id of the job to wait for (a string of digits given is turned into it)."""
        assert not isinstance(self.job, str)
        return self.job.id if isinstance(self.job, Job) else self.job


# Union, not |: "Job" is a forward reference and these aliases are evaluated at import.
DependsOn = Union["Job", int, str, Dependency,  # noqa: UP007
                  Sequence[Union["Job", int, str, Dependency]]]  # noqa: UP007
CallbackSpec = Callable[..., Any] | str | Callback


@dataclass(frozen=True)
class EnqueueParams:
    """One job for ``enqueue_many``: the same options as ``enqueue`` without the underscore."""

    func: Callable[..., Any] | str
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    queue: str = "default"
    priority: int = 0
    delay: float | timedelta | None = None
    at: datetime | None = None
    retry: int | Retry | None = None
    timeout: float | timedelta | None = None
    heartbeat: float | timedelta | None = None
    key: str | None = None
    group: str | None = None
    meta: Mapping[str, Any] | None = None
    ttl: float | timedelta | None = None
    result_ttl: float | timedelta | None = None
    failure_ttl: float | timedelta | None = None
    failure_mode: str = "hold"
    on_success: CallbackSpec | None = None
    on_failure: CallbackSpec | None = None
    on_stopped: CallbackSpec | None = None
    repeat: Repeat | None = None
    depends_on: DependsOn | None = None


@dataclass(frozen=True)
class CallbackRef:
    """A stored callback: dotted path and optional timeout."""

    path: str
    timeout: float | None = None


@dataclass(frozen=True)
class Job:
    """A job as stored in PostgreSQL. Immutable: methods on ``Werk`` return fresh copies."""

    id: int
    function: str
    queue: str
    status: JobStatus
    priority: int
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    attempts: int
    max_attempts: int
    retry_intervals: tuple[float, ...]
    scheduled_at: datetime
    enqueued_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    heartbeat_at: datetime | None = None
    expires_at: datetime | None = None
    key: str | None = None
    group: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    error: str | None = None
    worker_id: str | None = None
    timeout: float | None = None
    heartbeat: float | None = None
    result_ttl: float | None = None
    failure_ttl: float | None = None
    failure_mode: str = "hold"
    on_success: CallbackRef | None = None
    on_failure: CallbackRef | None = None
    on_stopped: CallbackRef | None = None
    repeat: Repeat | None = None
    repeat_index: int = 0
    lost: int = 0
    released: int = 0
    payload_error: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def state(self) -> str:
        """The status as an operator reads it: ``cancelled`` for a job that ended
        ``aborted`` without ever running (``cancel_job``), else the status's value."""
        if self.status is JobStatus.Aborted and self.attempts == 0:
            return "cancelled"
        return self.status.value


@dataclass
class Context:
    """What a handler (first parameter ``ctx``) and every callback receives.

    Attributes:
        app: the ``Werk`` the job came from.
        worker: the ``Worker`` running it (``None`` outside a worker).
        job: the job; in callbacks it carries ``result`` or ``error``.
        exception: the exception that ended the attempt, if any.
    """

    app: Werk
    job: Job
    worker: Worker | None = None
    exception: BaseException | None = None


@dataclass(frozen=True)
class Execution:
    """One attempt of a job: who ran it, when, and how it ended.

    ``outcome`` is ``complete``, ``failed``, ``timeout`` (it ran past its ``_timeout``),
    ``aborted``, ``lost`` (the worker died), ``interrupted`` (the worker shut down) or, for
    the attempt in progress, ``active``.
    """

    job_id: int
    attempt: int
    worker_id: str | None
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str
    error: str | None = None


@dataclass(frozen=True)
class WorkerInfo:
    """A registered worker as seen in the workers table."""

    id: str
    hostname: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    pool: str
    started_at: datetime
    heartbeat_at: datetime
    heartbeat_age: float
    active_jobs: int
    stopping: bool = False


@dataclass(frozen=True)
class QueueLimit:
    """The limits of a queue, or of one function's jobs in it, and what they hold now.

    Attributes:
        queue: the queue.
        function: the dotted path of the function whose jobs this limits, ``None`` for
            every job of the queue.
        rate_limit: at most this many jobs start in any window of ``rate_period`` seconds
            (``None``: no rate limit).
        rate_period: the window of the rate limit, in seconds.
        concurrency: at most this many jobs run at once across every worker (``None``:
            no concurrency limit).
        running: jobs running now, counted against ``concurrency`` (``None`` without one).
        recent: jobs started within the last window, counted against ``rate_limit``
            (``None`` without one).
        updated_at: when the limits were last set.
    """

    queue: str
    function: str | None
    rate_limit: int | None
    rate_period: float | None
    concurrency: int | None
    running: int | None
    recent: int | None
    updated_at: datetime

    @property
    def rate(self) -> str | None:
        """The rate limit as written (``"10/s"``, ``"50/15m"``), ``None`` without one."""
        if self.rate_limit is None or self.rate_period is None:
            return None
        return rate_text(self.rate_limit, self.rate_period)


class Keep(enum.Enum):
    """The default of ``Werk.configure_queue``'s limits: leave that limit as it is."""

    KEEP = "keep"

    def __repr__(self) -> str:
        return "<unchanged>"


#: Leave a limit as it is (``configure_queue``'s default; ``None`` removes a limit).
KEEP = Keep.KEEP
