"""Handlers and callbacks for the worker tests. Module-level, so workers (threads, forked
children, worker subprocesses) import them as ``tests.worker_jobs.<name>``.

Handlers that must be observed from the test write a row to the ``test_events`` table of
their app's schema (``record_event``); the table is created by
``tests.worker_support.create_events_table``. Writing through PostgreSQL works the same
from a thread, a forked child and another process.
"""

from __future__ import annotations

import asyncio
import faulthandler
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pgwerk import Context, Snooze, Werk

EVENTS_TABLE = "test_events"


def record_event(app: Werk, job_id: int | None, label: str, **data: Any) -> None:
    """Append one row to the app's ``test_events`` table (on a connection of its own)."""
    statement = sql.SQL(
        "INSERT INTO {} (job_id, label, pid, thread, at_unix, data) "
        "VALUES (%s, %s, %s, %s, %s, %s)"
    ).format(sql.Identifier(app.config.schema, EVENTS_TABLE))
    with psycopg.connect(app.dsn, autocommit=True) as conn:
        conn.execute(statement, (job_id, label, os.getpid(), threading.get_ident(), time.time(),
                                 json.dumps(data, default=str)))


# -- handler shapes -------------------------------------------------------------------


def double(x: int) -> int:
    return x * 2


async def async_double(x: int) -> int:
    await asyncio.sleep(0.01)
    return x * 2


def _describe(ctx: Any, x: int) -> dict[str, Any]:
    return {
        "is_context": isinstance(ctx, Context),
        "job_id": ctx.job.id,
        "worker_id": ctx.worker.id if ctx.worker is not None else None,
        "same_schema": ctx.app.config.schema,
        "x": x,
        "pid": os.getpid(),
    }


def ctx_named(ctx, x: int) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """First parameter named ``ctx``, no annotation."""
    return _describe(ctx, x)


def ctx_annotated(context: Context, x: int) -> dict[str, Any]:
    """First parameter annotated ``Context`` (a string annotation under
    ``from __future__ import annotations``), under another name."""
    return _describe(context, x)


async def async_ctx(ctx: Context, x: int) -> dict[str, Any]:
    await asyncio.sleep(0.01)
    return _describe(ctx, x)


def no_ctx(x: int = 0) -> int:
    """A first parameter that is neither named ``ctx`` nor annotated gets payload only."""
    return x + 1


def pid() -> int:
    return os.getpid()


def fail(message: str = "boom") -> None:
    raise ValueError(message)


def record(ctx: Context, label: str = "run", value: Any = None, seconds: float = 0.0) -> Any:
    """Records that it ran (with its attempt number), takes ``seconds``, returns ``value``."""
    record_event(ctx.app, ctx.job.id, label, attempt=ctx.job.attempts, value=value)
    if seconds:
        time.sleep(seconds)
    return value


def record_and_fail(ctx: Context, label: str = "run") -> None:
    record_event(ctx.app, ctx.job.id, label, attempt=ctx.job.attempts)
    raise ValueError(f"{label} failed on attempt {ctx.job.attempts}")


def fail_before_attempt(ctx: Context, succeed_on: int) -> int:
    """Raises until attempt number ``succeed_on``, then returns the attempt number."""
    if ctx.job.attempts < succeed_on:
        raise ValueError(f"not yet: attempt {ctx.job.attempts}")
    return ctx.job.attempts


def fail_then_sleep(ctx: Context, seconds: float) -> int:
    """Raises at the first attempt; later ones sleep ``seconds`` and return their number."""
    if ctx.job.attempts < 2:
        raise ValueError("not yet")
    time.sleep(seconds)
    return ctx.job.attempts


# -- long-running and misbehaving handlers -------------------------------------------------


def busy_loop(ctx: Context, seconds: float = 30.0) -> str:
    """Pure-Python loop (interruptible by an exception raised into its thread)."""
    record_event(ctx.app, ctx.job.id, "busy-start")
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    record_event(ctx.app, ctx.job.id, "busy-end")
    return "finished"


def sleep_in_c(ctx: Context, seconds: float) -> str:
    """Blocks inside C (``time.sleep``): an exception raised into the thread waits."""
    record_event(ctx.app, ctx.job.id, "sleep-start")
    time.sleep(seconds)
    return "slept"


def sleep_with_alarm_blocked(ctx: Context, seconds: float) -> str:
    """Blocks SIGALRM, then sleeps: stands in for C code that never gives the interpreter a
    chance to run a signal handler, so only a kill can stop it."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # first, before the alarm
    record_event(ctx.app, ctx.job.id, "sleep-start")
    time.sleep(seconds)
    return "slept"


def stubborn_sleep(ctx: Context, seconds: float, marker: str) -> str:
    """Sleeps in C for ``seconds`` whatever is raised into it, then writes ``marker``
    (its thread id) and returns a value: a late return after its timeout."""
    record_event(ctx.app, ctx.job.id, "stubborn-start")
    end = time.monotonic() + seconds
    while True:
        try:
            remaining = end - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(remaining)
        except BaseException:  # noqa: B036 - the point: ignore JobTimeout and keep going
            continue
    Path(marker).write_text(str(threading.get_ident()))
    return "late result"


def exit_process(code: int) -> None:
    os._exit(code)


def kill_self(signal_name: str) -> None:
    faulthandler.disable()  # pytest's would print a traceback for SIGSEGV
    os.kill(os.getpid(), getattr(signal, signal_name))
    time.sleep(30)  # in case the signal is not fatal


def wait_for_file(ctx: Context, path: str, timeout: float = 30.0) -> str:
    """Runs until ``path`` exists (polls), so a test decides when it ends."""
    record_event(ctx.app, ctx.job.id, "gate-start")
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > end:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)
    return "opened"


def block_first_attempt(ctx: Context, seconds: float = 120.0) -> str:
    """The first attempt records itself and blocks (until its worker is killed); a later
    attempt returns at once."""
    record_event(ctx.app, ctx.job.id, "attempt", attempt=ctx.job.attempts, lost=ctx.job.lost)
    if ctx.job.attempts == 1:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(0.02)
        return "first attempt was never interrupted"
    return f"done on attempt {ctx.job.attempts}"


def long_unless_put_back(ctx: Context, seconds: float = 60.0) -> str:
    """Runs ``seconds`` (in short sleeps, so interruptible) unless the job was put back
    before (lost with its worker, or released at a shutdown), then returns at once."""
    job = ctx.job
    record_event(ctx.app, job.id, "attempt", attempt=job.attempts, lost=job.lost,
                 released=job.released)
    if job.lost == 0 and job.released == 0:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(0.02)
        return "ran to the end"
    return f"second run (lost={job.lost}, released={job.released})"


def grouped_work(ctx: Context, seconds: float) -> None:
    """Records its start and end (wall clock) for overlap checks."""
    start = time.time()
    time.sleep(seconds)
    end = time.time()
    record_event(ctx.app, ctx.job.id, "grouped", group=ctx.job.group, start=start, end=end)


def short_sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


# -- progress and snoozes --------------------------------------------------------------------


def _wait_for_path(path: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > end:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)


def report_progress(ctx: Context, gate: str) -> str:
    """Reports 40%, waits until ``gate`` exists, then reports 100% and returns."""
    ctx.progress(0.4, "step 2 of 5")
    _wait_for_path(gate)
    ctx.progress(1, "done")
    return "reported"


def report_progress_often(ctx: Context, calls: int, gate: str) -> int:
    """Reports ``calls`` times as fast as it can (recording how long that took), then waits
    until ``gate`` exists."""
    start = time.monotonic()
    for done in range(1, calls + 1):
        ctx.progress(done / calls, f"{done} of {calls}")
    record_event(ctx.app, ctx.job.id, "reported", seconds=time.monotonic() - start)
    _wait_for_path(gate)
    return calls


def report_bad_progress(ctx: Context, fraction: Any, message: Any = None) -> None:
    ctx.progress(fraction, message)


def progress_then_fail_once(ctx: Context) -> list[Any]:
    """The first attempt reports half done and fails; the next returns the progress its
    job had when it was claimed."""
    if ctx.job.attempts == 1:
        ctx.progress(0.5, "half")
        raise ValueError("first attempt fails")
    return [ctx.job.progress, ctx.job.progress_message]


def snooze(ctx: Context, times: int, delay: float, how: str = "raise") -> str:
    """Snoozes for ``delay`` seconds (``how``: ``raise`` or ``return`` a ``Snooze``) until
    it was snoozed ``times`` times, then returns."""
    if ctx.job.snoozed < times:
        if how == "raise":
            raise Snooze(delay)
        return Snooze(delay)  # type: ignore[return-value]
    return f"ran after {ctx.job.snoozed} snoozes"


def snooze_then_fail(ctx: Context, times: int) -> None:
    """Snoozes (for no time) ``times`` times, then fails."""
    if ctx.job.snoozed < times:
        raise Snooze(0)
    raise ValueError(f"failed after {ctx.job.snoozed} snoozes")


# -- callbacks and hooks ----------------------------------------------------------------


def callback_record(ctx: Context) -> None:
    job = ctx.job
    record_event(ctx.app, job.id, "callback", status=job.status.value, result=job.result,
                 error=job.error, is_context=isinstance(ctx, Context),
                 exception=type(ctx.exception).__name__ if ctx.exception else None)


def batch_callback(ctx: Context) -> None:
    """A batch's callback job: records which callback it is and the counts it was given."""
    record_event(ctx.app, ctx.job.id, "batch-callback", **ctx.job.meta["batch"])


def fail_every(n: int, every: int, seconds: float = 0.0) -> int:
    """Sleeps ``seconds``, then fails when ``n`` is a multiple of ``every``; returns ``n``
    otherwise."""
    time.sleep(seconds)
    if n % every == 0:
        raise ValueError(f"{n} is a multiple of {every}")
    return n


def callback_raise(ctx: Context) -> None:
    record_event(ctx.app, ctx.job.id, "callback-raise")
    raise RuntimeError("callback exploded")


def callback_busy(ctx: Context) -> None:
    """Never ends on its own (pure Python, so a timeout can interrupt it)."""
    record_event(ctx.app, ctx.job.id, "callback-busy-start")
    end = time.monotonic() + 30.0
    while time.monotonic() < end:
        pass
    record_event(ctx.app, ctx.job.id, "callback-busy-end")


# -- outcomes that are hard to store ---------------------------------------------------------


def fail_with_nul() -> None:
    """Fails with a message PostgreSQL's text type cannot hold as it is."""
    raise ValueError("bad byte \x00 in the middle")


def timed(ctx: Context, seconds: float = 0.0) -> dict[str, Any]:
    """Takes ``seconds`` and returns when it started and ended (``time.time()`` here) and
    when its claim started it (``started_at`` as the claim stamped it, the database's
    clock, ISO text): for rate and concurrency checks."""
    start = time.time()
    if seconds:
        time.sleep(seconds)
    end = time.time()
    claimed = ctx.job.started_at
    return {"start": start, "end": end, "claimed": claimed.isoformat() if claimed else None,
            "pid": os.getpid()}
