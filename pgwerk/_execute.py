"""Running one job: find the handler, call it, and say how the attempt ended. No SQL.

The steps are small functions: ``load_handler``, ``call_handler``, ``execute`` (the whole
attempt with hooks), ``settle`` (what the outcome means for the row: done, retry, ...),
and ``run_callback``.
"""

from __future__ import annotations

import asyncio
import enum
import importlib
import inspect
import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any, get_type_hints

from pgwerk._allowlist import refusal
from pgwerk._logging import job_fields
from pgwerk.exceptions import JobAborted, JobTimeout, WorkerShutdown
from pgwerk.job import CallbackRef, Context, Job, JobStatus, ProgressSink, Snooze

if TYPE_CHECKING:
    from pgwerk.app import Werk
    from pgwerk.worker import Worker

logger = logging.getLogger(__name__)

class _Word(str, enum.Enum):
    """An enum whose members are their words everywhere: in comparisons with strings, in
    JSON, in log lines."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class OutcomeKind(_Word):
    """How an attempt ended, as far as the handler is concerned."""

    Success = "success"
    Error = "error"
    Timeout = "timeout"
    Aborted = "aborted"
    Interrupted = "interrupted"  #: the worker shut down under it
    Snoozed = "snoozed"  #: the handler raised or returned ``Snooze``


SUCCESS, ERROR, TIMEOUT, ABORTED, INTERRUPTED, SNOOZED = (
    OutcomeKind.Success, OutcomeKind.Error, OutcomeKind.Timeout, OutcomeKind.Aborted,
    OutcomeKind.Interrupted, OutcomeKind.Snoozed,
)


class Settled(_Word):
    """What the completion batch writes for an attempt (the statuses ``job_complete_many``
    takes), or ``Released`` for a job put back at shutdown (``job_release_many``)."""

    Complete = "complete"
    Failed = "failed"
    Aborted = "aborted"
    Deleted = "deleted"  #: failed with ``failure_mode="delete"``: the row goes
    Queued = "queued"  #: to be retried now
    Scheduled = "scheduled"  #: to be retried after its retry interval
    Released = "released"
    Snoozed = "snoozed"  #: back to its queue after a delay, without spending an attempt



@dataclass(frozen=True)
class Outcome:
    """The end of one attempt. ``result`` is already serialized text."""

    kind: OutcomeKind
    result: str | None = None
    error: str | None = None
    duration: float = 0.0
    exception: BaseException | None = None
    retryable: bool = True  # False when no retry could succeed (bad payload, no handler)
    delay: float = 0.0  # SNOOZED: seconds until the job may run again


@dataclass(frozen=True)
class Settlement:
    """What the outcome means for the job row (the status written by the batch)."""

    status: Settled
    result: str | None
    error: str | None
    delay: float = 0.0
    callback: str | None = None  # success | failure | stopped
    waited: float = 0.0  # seconds between the claim and the handler's start, on this worker
    kind: OutcomeKind | None = None  # how the attempt ended: recorded in its history
    # The progress the attempt reported last and that may not be written yet: written with
    # the outcome. None leaves the job's progress as it is.
    progress: tuple[float, str | None] | None = None


class HandlerNotFound(Exception):
    """The job's function cannot be imported in this worker."""


@lru_cache(maxsize=1024)
def load_handler(path: str) -> Callable[..., Any]:
    """Import ``package.module.function`` (or ``module.Class.method``).

    Raises ``HandlerNotFound`` whatever goes wrong, with the real cause: a module that
    raises while it is imported, or that imports something missing, is named with its
    own error, not as a missing attribute of its package.
    """
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        try:
            target: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # Only "this module (or a parent) does not exist" means the split is wrong;
            # anything else it could not find is a dependency missing inside it.
            missing = exc.name or ""
            if split > 1 and (module_name == missing or module_name.startswith(missing + ".")):
                continue
            raise HandlerNotFound(f"cannot import {path!r}: {_cause(exc)}") from exc
        except Exception as exc:
            raise HandlerNotFound(
                f"cannot import {path!r}: module {module_name!r} failed to import: "
                f"{_cause(exc)}") from exc
        try:
            for attr in parts[split:]:
                target = getattr(target, attr)
        except AttributeError as exc:
            raise HandlerNotFound(f"cannot import {path!r}: {exc}") from exc
        if not callable(target):
            raise HandlerNotFound(f"{path!r} is not callable")
        return target
    raise HandlerNotFound(f"cannot import {path!r}: no such module")


def _cause(exc: BaseException) -> str:
    """The exception in one line, and where in the handler's code it was raised."""
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{text} ({exc.filename}, line {exc.lineno})"
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith("<frozen") and "importlib" not in f.filename]
    if frames:
        return f"{text} ({frames[-1].filename}, line {frames[-1].lineno})"
    return text


@lru_cache(maxsize=1024)
def wants_context(func: Callable[..., Any]) -> bool:
    """A first parameter named ``ctx`` or annotated ``Context`` receives the Context."""
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if not params or params[0].kind not in positional:
        return False
    first = params[0]
    if first.name == "ctx":
        return True
    annotation = first.annotation
    if isinstance(annotation, str):
        try:
            annotation = get_type_hints(func).get(first.name, annotation)
        except Exception:
            return annotation.split(".")[-1] == "Context"
    return annotation is Context


_loops = threading.local()


def _run_coroutine(coro: Any) -> Any:
    loop = getattr(_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _loops.loop = loop
    try:
        return loop.run_until_complete(coro)
    except BaseException:
        # An exception raised into this thread may leave the loop mid-step: start afresh.
        loop.close()
        _loops.loop = None
        raise


def close_event_loop() -> None:
    """Close the event loop ``async def`` handlers left in this thread, if any. Called when
    a thread that ran jobs or callbacks ends, so the loop is not left to the GC unclosed."""
    loop = getattr(_loops, "loop", None)
    _loops.loop = None
    if loop is not None and not loop.is_closed():
        loop.close()


def call_handler(func: Callable[..., Any], ctx: Context) -> Any:
    job = ctx.job
    args = (ctx, *job.args) if wants_context(func) else job.args
    result = func(*args, **job.kwargs)
    if inspect.isawaitable(result):
        result = _run_coroutine(result)
    return result


def _call_hook(name: str, hook: Callable[[Context], Any] | None, ctx: Context) -> None:
    if hook is None:
        return
    try:
        out = hook(ctx)
        if inspect.isawaitable(out):
            _run_coroutine(out)
    except Exception:
        logger.exception("%s hook failed for job %s; the job goes on", name, ctx.job.id,
                         extra=job_fields(ctx.job))


def execute(app: Werk, worker: Worker | None, job: Job,
            handler_done: Callable[[], None] | None = None,
            progress: ProgressSink | None = None) -> Outcome:
    """Run one attempt of ``job`` in this thread and describe how it ended.

    ``handler_done`` is called the moment the handler returns or raises, so that a time
    limit stops applying before the outcome is recorded. ``progress`` receives what the
    handler reports with ``ctx.progress``.
    """
    start = time.monotonic()
    ctx = Context(app=app, job=job, worker=worker, _progress=progress)
    hooks = worker.hooks if worker is not None else None
    raised: BaseException | None = None
    if logger.isEnabledFor(logging.DEBUG):  # no per-job cost unless asked for
        logger.debug("job %s %s started", job.id, job.function, extra=job_fields(job))
    try:
        if job.payload_error:
            return Outcome(ERROR, error=f"pgwerk: {job.payload_error}", retryable=False)
        refused = refusal(app, job.function)  # before anything is imported
        if refused is not None:
            return Outcome(ERROR, error=f"pgwerk: {refused}; it was neither imported nor run",
                           retryable=False)
        try:
            func = load_handler(job.function)
        except HandlerNotFound as exc:
            # Retried per policy: during a deploy another worker may already have the code.
            return Outcome(ERROR, error=_printable(f"pgwerk: {exc}"), exception=exc)
        if hooks:
            _call_hook("before_process", hooks.before_process, ctx)
        try:
            try:
                value = call_handler(func, ctx)
            finally:
                if handler_done is not None:
                    handler_done()
        except Snooze as exc:  # not a failure: no exception handlers, no retry spent
            return _snoozed(exc, start)
        except JobTimeout as exc:
            raised = exc
            return _failed(TIMEOUT, exc, start, f"JobTimeout: job {job.id} exceeded its timeout "
                                                f"of {job.timeout}s")
        except JobAborted as exc:
            raised = exc
            return _failed(ABORTED, exc, start, "JobAborted: aborted on request")
        except WorkerShutdown as exc:
            raised = exc
            return _failed(INTERRUPTED, exc, start, "WorkerShutdown: the worker stopped")
        except BaseException as exc:  # noqa: B036 - a handler's SystemExit fails its job only
            raised = exc
            outcome = _failed(ERROR, exc, start)
            if hooks:
                _call_exception_handlers(hooks.on_exception, replace_ctx(ctx, exc))
            return outcome
        if isinstance(value, Snooze):
            return _snoozed(value, start)
        try:
            text = app.serializer.dumps(value)
        except Exception as exc:
            return _failed(ERROR, exc, start, f"pgwerk: the result of {job.function} cannot be "
                                             f"encoded by {type(app.serializer).__name__}: {exc}")
        if isinstance(text, str) and "\x00" in text:
            return Outcome(ERROR, error=f"pgwerk: the result of {job.function} cannot be stored: "
                                        "its encoded form holds a NUL character",
                           duration=time.monotonic() - start, retryable=False)
        return Outcome(SUCCESS, result=text, duration=time.monotonic() - start)
    finally:
        if hooks:
            _call_hook("after_process", hooks.after_process,
                       ctx if raised is None else replace_ctx(ctx, raised))


def replace_ctx(ctx: Context, exc: BaseException) -> Context:
    return Context(app=ctx.app, job=ctx.job, worker=ctx.worker, exception=exc,
                   _progress=ctx._progress)


def _snoozed(snooze: Snooze, start: float) -> Outcome:
    return Outcome(SNOOZED, duration=time.monotonic() - start, delay=snooze.delay)


def _call_exception_handlers(handlers: list[Callable[[Context], Any]], ctx: Context) -> None:
    for handler in handlers:
        _call_hook("exception handler", handler, ctx)


def stray_outcome(exc: BaseException) -> Outcome:
    """An outcome for an interruption that arrived outside the handler itself."""
    kind = {JobTimeout: TIMEOUT, JobAborted: ABORTED, WorkerShutdown: INTERRUPTED}.get(
        type(exc), ERROR)
    return _failed(kind, exc, time.monotonic())


def _failed(kind: OutcomeKind, exc: BaseException, start: float,
            summary: str | None = None) -> Outcome:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if summary:
        text = f"{text.rstrip()}\n{summary}\n" if kind == ERROR else f"{summary}\n{text}"
    return Outcome(kind, error=_printable(text), duration=time.monotonic() - start,
                   exception=exc)


def _printable(text: str) -> str:
    """PostgreSQL's text cannot hold NUL: show it escaped instead."""
    return text.replace("\x00", "\\x00")


def settle(job: Job, outcome: Outcome, *, waited: float = 0.0,
           progress: tuple[float, str | None] | None = None) -> Settlement:
    """Decide what the row becomes: the retry policy and failure mode live here.
    ``waited`` and ``progress`` are carried into the settlement (see ``Settlement``)."""
    kind = outcome.kind
    if kind == SUCCESS:
        return Settlement(Settled.Complete, outcome.result, None, 0.0, "success", waited, kind,
                          progress)
    if kind == ABORTED:
        return Settlement(Settled.Aborted, None, outcome.error, 0.0, "stopped", waited, kind,
                          progress)
    if kind == INTERRUPTED:
        return Settlement(Settled.Released, None, outcome.error, 0.0, None, waited, kind,
                          progress)
    if kind == SNOOZED:
        return Settlement(Settled.Snoozed, None, None, outcome.delay, None, waited, kind,
                          progress)
    spent = job.attempts - job.lost - job.released - job.snoozed
    if spent < job.max_attempts and outcome.retryable:
        intervals = job.retry_intervals
        delay = float(intervals[min(spent - 1, len(intervals) - 1)]) if intervals else 0.0
        return Settlement(Settled.Scheduled if delay > 0 else Settled.Queued, None,
                          outcome.error, delay, None, waited, kind, progress)
    status = Settled.Deleted if job.failure_mode == "delete" else Settled.Failed
    return Settlement(status, None, outcome.error, 0.0, "failure", waited, kind, progress)


def job_after(job: Job, settlement: Settlement, serializer: Any) -> Job:
    """The job as it is once the settlement is written: what callbacks see."""
    result = None
    if settlement.result is not None:
        try:
            result = serializer.loads(settlement.result)
        except Exception:
            result = None
    status = {Settled.Deleted: JobStatus.Failed, Settled.Released: JobStatus.Queued}.get(
        settlement.status) or JobStatus(settlement.status.value)
    return replace(job, status=status, result=result, error=settlement.error)


def callback_ref(job: Job, kind: str | None) -> CallbackRef | None:
    return {"success": job.on_success, "failure": job.on_failure,
            "stopped": job.on_stopped}.get(kind or "")


def run_callback(app: Werk, worker: Worker | None, job: Job, ref: CallbackRef,
                 exception: BaseException | None) -> None:
    """Call one callback with a ``Context``; failures and timeouts are logged, never raised.

    The caller arms the callback's own timeout (``ref.timeout``) around this call.
    """
    ctx = Context(app=app, job=job, worker=worker, exception=exception)
    refused = refusal(app, ref.path, "callback")  # before anything is imported
    if refused is not None:
        logger.error("job %s: %s; it was neither imported nor called", job.id, refused)
        return
    try:
        func = load_handler(ref.path)
        out = func(ctx)
        if inspect.isawaitable(out):
            _run_coroutine(out)
    except JobTimeout:
        logger.warning("callback %s of job %s timed out after %ss", ref.path, job.id, ref.timeout,
                       extra=job_fields(job))
    except Exception:
        logger.exception("callback %s of job %s failed", ref.path, job.id, extra=job_fields(job))
