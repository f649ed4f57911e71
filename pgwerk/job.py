"""The records users see and the small option objects they pass to ``enqueue``."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Union

from pgwerk._validate import INT32_MAX, integer, job_id_or_none, rate_text, seconds, text
from pgwerk._validate import fraction as _fraction

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


class Snooze(Exception):
    """Put the job back to run again later, without spending one of its attempts.

    A handler raises it (``raise Snooze(30)``) or returns it (``return Snooze(30)``): the
    job goes back to ``scheduled`` (``queued`` for a delay of 0), its attempt is recorded
    in its history as ``snoozed`` and counted in ``Job.snoozed``, not against
    ``max_attempts``. No callback runs, dependents keep waiting, and the job's group lets
    its next job run meanwhile. A job that snoozes every time never ends: count with
    ``ctx.job.snoozed`` where that matters.

    Args:
        delay: seconds (or a ``timedelta``) until the job may run again, at least 0 and at
            most ten years.

    Example::

        def sync_account(ctx, account_id):
            if rate_limited():
                raise Snooze(60)
            ...
    """

    def __init__(self, delay: float | timedelta) -> None:
        self.delay = _duration("Snooze.delay", delay)
        super().__init__(self.delay)

    def __str__(self) -> str:
        return f"snoozed for {self.delay:g}s"

    def __reduce__(self) -> tuple[type[Snooze], tuple[float]]:
        # Rebuilt from its delay, wherever it is unpickled (a process child's outcome).
        return (type(self), (self.delay,))


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


#: The statuses a unique job always holds its key in: the ones it moves between by itself
#: before it ends (a retry puts an active job back to queued or scheduled, a waiting one
#: becomes queued, ...). The database keeps a key unique among the rows in their key's
#: statuses, so a set without one of these could see a row come back into it next to a
#: newer duplicate, and the worker's or the sweep's statement fail.
UNIQUE_REQUIRED_STATES = ("scheduled", "queued", "waiting", "active", "aborting")
#: The required statuses a ``Unique`` must name itself; the other two are added for it, as
#: they are forms of these (``waiting`` is queued behind a dependency, ``aborting`` is active
#: and being cancelled), so ``states=("queued", "scheduled", "active")`` means all five.
UNIQUE_NAMED_STATES = ("scheduled", "queued", "active")
#: The statuses a ``Unique`` may add: a job that ended this way still holds its key (until
#: its row is purged, or its ``period`` is over).
UNIQUE_OPTIONAL_STATES = ("complete", "failed", "aborted", "expired")
#: The fields a ``Unique`` key can be made of (besides ``"kwargs:<name>"``).
UNIQUE_FIELDS = ("function", "queue", "args")


@dataclass(frozen=True)
class Unique:
    """Enqueue a job only if no matching job holds its key: ``_unique=Unique(...)``.

    A second ``enqueue`` of a matching job returns the job that holds the key instead of
    writing a row; the database enforces it (a unique index), also across processes.

    Args:
        by: what makes two jobs the same: any of ``"function"`` (the handler's dotted
            path), ``"queue"``, ``"args"`` (positional and keyword arguments together),
            and ``"kwargs:<name>"`` (one keyword argument; a job without it matches the
            other jobs without it). Default: function, queue and arguments.
        states: the statuses in which a job holds its key: always ``scheduled``,
            ``queued``, ``waiting``, ``active`` and ``aborting`` (a job moves between
            them by itself; ``waiting`` and ``aborting`` are added when the first three
            are given), plus any of ``complete``, ``failed``, ``aborted``,
            ``expired`` to also turn away duplicates of a job that ended so (until its
            row is purged, or its period is over). ``JobStatus`` members work too.
        period: seconds (or a ``timedelta``, at least one second): uniqueness per time
            bucket ``floor(now / period)`` on the database's clock, so a job enqueued in
            the next bucket is a new job even while the earlier one still holds its
            key. Default: no buckets.

    Example::

        app.enqueue(rebuild_index, shop_id=7, _unique=True)
        app.enqueue(send_digest, user_id=1, _unique=Unique(
            by=("function", "kwargs:user_id"),
            states=(*Unique.REQUIRED_STATES, "complete"), period=86400))
    """

    by: str | Sequence[str] = UNIQUE_FIELDS
    states: str | JobStatus | Sequence[str | JobStatus] = UNIQUE_REQUIRED_STATES
    period: float | timedelta | None = None

    REQUIRED_STATES: ClassVar[tuple[str, ...]] = UNIQUE_REQUIRED_STATES
    OPTIONAL_STATES: ClassVar[tuple[str, ...]] = UNIQUE_OPTIONAL_STATES

    def __post_init__(self) -> None:
        object.__setattr__(self, "by", _unique_fields(self.by))
        object.__setattr__(self, "states", _unique_states(self.states))
        if self.period is not None:
            period = _duration("Unique.period", self.period)
            if period < 1:
                raise ValueError(f"Unique.period must be at least 1 second, got {self.period!r}")
            object.__setattr__(self, "period", period)


def _names(what: str, value: object, kind: str) -> list[object]:
    """A string (one name) or a non-empty list or tuple of them, as a list."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)) and value:
        return list(value)
    raise TypeError(f"{what} must be a {kind} or a non-empty tuple of them, got {value!r}")


def _unique_fields(value: object) -> tuple[str, ...]:
    allowed = f"{', '.join(map(repr, UNIQUE_FIELDS))} or 'kwargs:<name>'"
    found: list[str] = []
    for name in _names("Unique.by", value, "field name"):
        if not isinstance(name, str):
            raise TypeError(f"Unique.by takes field names ({allowed}), got {name!r}")
        argument = name.removeprefix("kwargs:")
        if name not in UNIQUE_FIELDS and (
                argument == name or not argument or argument.startswith("_")):
            raise ValueError(f"Unique.by: {name!r} is not a field; use {allowed} (the name "
                             "of a keyword argument of the handler)")
        if name not in found:
            found.append(name)
    return tuple(found)


def _unique_states(value: object) -> tuple[str, ...]:
    allowed = (*UNIQUE_REQUIRED_STATES, *UNIQUE_OPTIONAL_STATES)
    given: set[str] = set()
    for state in _names("Unique.states", value, "job status"):
        name = state.value if isinstance(state, JobStatus) else state
        if not isinstance(name, str):
            raise TypeError(f"Unique.states takes job statuses ({', '.join(allowed)}), "
                            f"got {state!r}")
        if name not in allowed:
            raise ValueError(f"Unique.states: {state!r} is not one of {', '.join(allowed)}")
        given.add(name)
    missing = [s for s in UNIQUE_NAMED_STATES if s not in given]
    if missing:
        raise ValueError(
            f"Unique.states must include {', '.join(UNIQUE_NAMED_STATES)} (a job moves "
            f"between them by itself, so the database could not keep it unique without "
            f"them; waiting and aborting are added for you); missing: "
            f"{', '.join(missing)}. Add any of "
            f"{', '.join(UNIQUE_OPTIONAL_STATES)} to them, e.g. "
            "states=(*Unique.REQUIRED_STATES, 'complete')")
    given.update(UNIQUE_REQUIRED_STATES)
    return tuple(s for s in allowed if s in given)


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
    unique: bool | Unique | None = None


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
    snoozed: int = 0
    progress: float | None = None
    progress_message: str | None = None
    payload_error: str | None = None
    unique_key: str | None = None
    unique_states: tuple[str, ...] = ()
    batch_id: int | None = None

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


#: The longest message ``Context.progress`` takes, in characters. Also what keeps a report
#: sent from a fork or process child within one atomic pipe write.
PROGRESS_MESSAGE_MAX = 500

#: Where a running job's progress goes: ``(job, fraction, message)``, checked already.
ProgressSink = Callable[[Job, float, str | None], None]


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
    # Set by the worker for the attempt it runs; None elsewhere (callbacks, a Context made
    # by hand), where progress is checked and dropped.
    _progress: ProgressSink | None = field(default=None, repr=False, compare=False)

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Say how far the job has come: ``fraction`` done, from 0 to 1, and what it is
        doing (``message``, at most 500 characters). ``get_job`` shows them
        (``Job.progress``, ``Job.progress_message``), as do ``pgwerk job ID`` and the
        dashboard.

        Cheap enough for a tight loop, in every pool: the worker writes at most one value
        per job and second, the newest, and the last one reported lands at the latest with
        the attempt's outcome. Each call replaces both values (a call without a message
        clears the previous one); a new attempt starts without progress.

        Outside a worker (``worker`` is None: a ``Context`` made by hand, as in a unit test
        of the handler) and in callbacks (the attempt has ended) the arguments are checked
        and nothing is recorded.

        Raises:
            TypeError: ``fraction`` is not a real number (a bool is not), or ``message``
                is neither a string nor None.
            ValueError: ``fraction`` is below 0, above 1 or NaN; ``message`` is empty,
                too long, or holds a NUL character.

        Example::

            def import_rows(ctx, rows):
                for done, row in enumerate(rows, 1):
                    store(row)
                    ctx.progress(done / len(rows), f"{done} of {len(rows)} rows")
        """
        value = _fraction("ctx.progress(): fraction", fraction)
        if message is not None:
            if not isinstance(message, str):
                raise TypeError(f"ctx.progress(): message must be a string or None, "
                                f"got {message!r}")
            text("ctx.progress(): message", message, max_len=PROGRESS_MESSAGE_MAX)
        if self._progress is not None:
            self._progress(self.job, value, message)


@dataclass(frozen=True)
class Execution:
    """One attempt of a job: who ran it, when, and how it ended.

    ``outcome`` is ``complete``, ``failed``, ``timeout`` (it ran past its ``_timeout``),
    ``aborted``, ``lost`` (the worker died), ``interrupted`` (the worker shut down),
    ``snoozed`` (the handler asked to run later: see ``Snooze``) or, for the attempt in
    progress, ``active``.
    """

    job_id: int
    attempt: int
    worker_id: str | None
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str
    error: str | None = None


@dataclass(frozen=True)
class Batch:
    """A batch of jobs (``Werk.batch``) as stored: how many members ended how, and the
    callback jobs enqueued when the last one ended.

    Attributes:
        id: the batch's id.
        description: the text given to ``app.batch(description=...)``.
        total: how many members were written (a member whose ``_key`` collided is not).
        pending: members that have not ended yet.
        complete, failed, aborted, expired: members per end status. A member deleted
            while it ran (``_failure_mode="delete"``) counts as failed, one deleted before
            it started (``delete_job``) as aborted.
        callbacks: the function of each callback given (``"complete"``, ``"success"``,
            ``"failure"`` -> dotted path).
        callback_jobs: the id of each callback job enqueued so far (kind -> job id).
        created_at: when the batch was written.
        finished_at: when its last member ended (``None`` while some have not).
    """

    id: int
    total: int
    pending: int
    complete: int
    failed: int
    aborted: int
    expired: int
    created_at: datetime
    finished_at: datetime | None = None
    description: str | None = None
    callbacks: dict[str, str] = field(default_factory=dict)
    callback_jobs: dict[str, int] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """``active`` while a member has not ended; then ``complete`` when every member
        completed, else ``failed``."""
        if self.finished_at is None:
            return "active"
        return "complete" if self.complete == self.total else "failed"


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
