"""Where handlers run: a thread pool (here), a fresh forked child per job, or pre-forked
processes (``pgwerk._process_pools``).

All three have one interface (``free_slots``, ``submit``, ``abort``, ``interrupt``,
``running_ids``, ``problem``, ``stop``) and report each finished attempt through
``on_done(job, outcome, inline)``; ``inline`` is True when called from the thread that ran
the job (which may then run callbacks itself). ``problem`` says what broke when the pool
cannot go on (the worker then stops rather than run without it).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from pgwerk._execute import (
    ABORTED,
    ERROR,
    INTERRUPTED,
    SNOOZED,
    SUCCESS,
    TIMEOUT,
    Outcome,
    OutcomeKind,
    close_event_loop,
    execute,
    stray_outcome,
)
from pgwerk._logging import job_fields
from pgwerk._process_pools import ProcessPool
from pgwerk._timeouts import Deadline, DeadlineWatcher, raise_in_thread, release_logging_locks
from pgwerk.exceptions import JobAborted, JobTimeout, WorkerShutdown
from pgwerk.job import Job

if TYPE_CHECKING:
    from pgwerk.app import Werk
    from pgwerk.worker import Worker

logger = logging.getLogger(__name__)

OnDone = Callable[[Job, Outcome, bool], None]
POOL_KINDS = ("thread", "fork", "process")


class ExecutionPool(Protocol):
    kind: str
    capacity: int

    def start(self) -> None: ...
    def free_slots(self) -> int: ...
    def submit(self, job: Job) -> None: ...
    def abort(self, job_id: int) -> bool: ...
    def interrupt(self) -> list[int]: ...
    def running_ids(self) -> list[int]: ...
    def problem(self) -> str | None: ...
    def stop(self) -> None: ...


# -- threads ------------------------------------------------------------------------------


class _Slot:
    """One job running in one thread."""

    __slots__ = ("job", "thread_id", "in_handler", "done", "abandoned", "deadline", "grace",
                 "gate", "delivered")

    def __init__(self, job: Job, thread_id: int) -> None:
        self.job = job
        # Held while checking that the handler still runs and raising into its thread, and
        # while the thread marks the handler as returned: an interruption can then never
        # land in the code that records the outcome, or in the thread's next job.
        self.gate = threading.Lock()
        self.thread_id = thread_id
        self.in_handler = True
        self.done = False
        self.abandoned = False
        self.deadline: Deadline | None = None
        self.grace: Deadline | None = None
        # The first interruption raised into the handler: it decides the outcome even if
        # the handler catches it and returns.
        self.delivered: type[BaseException] | None = None


_INTERRUPTION_KINDS: dict[type[BaseException], OutcomeKind] = {
    JobTimeout: TIMEOUT, JobAborted: ABORTED, WorkerShutdown: INTERRUPTED,
}


class ThreadPool:
    """``concurrency`` threads. Time limits and aborts raise into the job's thread; a thread
    stuck in C (or in a handler that catches the interruption and goes on) past the grace
    period is abandoned and replaced, so capacity is kept. At most ``capacity`` abandoned
    threads are replaced: beyond that each one costs a slot until it returns, and a pool
    whose every thread is stuck reports itself broken (``problem``)."""

    kind = "thread"

    def __init__(self, app: Werk, worker: Worker, capacity: int, watcher: DeadlineWatcher,
                 grace: float, on_done: OnDone) -> None:
        self.app, self.worker, self.capacity = app, worker, capacity
        self.watcher, self.grace, self.on_done = watcher, grace, on_done
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running: dict[int, _Slot] = {}
        # Handed to the pool, not yet taken by a thread: held by the pool all the same.
        self._pending: dict[int, Job] = {}
        self._threads: list[threading.Thread] = []
        self._serial = 0
        self._abandoned = 0  # threads abandoned that have not returned
        self._owed = 0  # slots lost to abandoned threads that were not replaced

    def start(self) -> None:
        for _ in range(self.capacity):
            self._spawn()

    def _spawn(self) -> None:
        self._serial += 1
        thread = threading.Thread(target=self._work, name=f"pgwerk-job-{self._serial}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def free_slots(self) -> int:
        with self._lock:
            return self.capacity - len(self._running) - len(self._pending) - self._owed

    def submit(self, job: Job) -> None:
        with self._lock:
            self._pending[job.id] = job
        self._queue.put(job)

    def running_ids(self) -> list[int]:
        with self._lock:
            return [*self._running, *self._pending]

    def problem(self) -> str | None:
        with self._lock:
            if self.capacity and self._owed >= self.capacity:
                return (f"every thread of the pool ({self.capacity}) is stuck in a job past its "
                        f"timeout; the worker cannot run jobs any more")
        return None

    def abort(self, job_id: int) -> bool:
        with self._lock:
            slot = self._running.get(job_id)
        if slot is None or not self._interrupt(slot, JobAborted):
            return False
        with slot.gate:
            if slot.grace is None and not slot.done:
                # A handler that catches JobAborted and goes on must not stay ``aborting``.
                slot.grace = self.watcher.add(self.grace, lambda: self._abandon(slot, ABORTED))
        return True

    def interrupt(self) -> list[int]:
        with self._lock:
            slots = list(self._running.values())
            unstarted, self._pending = list(self._pending.values()), {}
        for job in unstarted:  # a thread taking it later skips it
            self._report(job, Outcome(INTERRUPTED, error=(
                "WorkerShutdown: the worker stopped before the job started")), False)
        for slot in slots:
            self._interrupt(slot, WorkerShutdown)
        return [slot.job.id for slot in slots] + [job.id for job in unstarted]

    @staticmethod
    def _interrupt(slot: _Slot, exc_type: type[BaseException]) -> bool:
        with slot.gate:
            if not (slot.in_handler and raise_in_thread(slot.thread_id, exc_type)):
                return False
            slot.delivered = slot.delivered or exc_type
            return True

    def stop(self) -> None:
        threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        # Idle threads end at once; one still in a job (put back after the drain gave up
        # on it) is not waited for long.
        end = time.monotonic() + 1.0
        for thread in threads:
            if thread is not threading.current_thread() and thread.ident is not None:
                thread.join(max(0.0, end - time.monotonic()))

    def _expire(self, slot: _Slot) -> None:
        if slot.done or not self._interrupt(slot, JobTimeout):
            return
        with slot.gate:
            if slot.grace is None:
                slot.grace = self.watcher.add(self.grace, lambda: self._abandon(slot, TIMEOUT))

    def _abandon(self, slot: _Slot, kind: OutcomeKind) -> None:
        with self._lock:
            if slot.done:
                return
            slot.abandoned = True
            self._running.pop(slot.job.id, None)
            self._threads = [t for t in self._threads if t.ident != slot.thread_id]
            self._abandoned += 1
            replace_it = self._abandoned <= self.capacity
            if replace_it:
                self._spawn()
            else:
                self._owed += 1
        job = slot.job
        logger.warning(
            "job %s (%s) did not stop within %.1fs of its %s (blocked outside Python, or it "
            "catches the exception?); recorded as %s, its thread is abandoned%s. Use "
            "pool='fork' for code that cannot be interrupted.", job.id, job.function,
            self.grace, "timeout" if kind == TIMEOUT else "abort",
            "timed out" if kind == TIMEOUT else "aborted",
            " and replaced" if replace_it else
            f"; {self._abandoned} threads are stuck, so it costs a slot until it returns",
            extra=job_fields(job))
        if kind == TIMEOUT:
            error = (f"JobTimeout: job {job.id} exceeded its timeout of {job.timeout}s and did "
                     f"not stop within the {self.grace}s grace period; its thread was abandoned")
        else:
            error = (f"JobAborted: aborted on request; job {job.id} did not stop within the "
                     f"{self.grace}s grace period; its thread was abandoned")
        self._report(job, Outcome(kind, error=error), False)

    def _report(self, job: Job, outcome: Outcome, inline: bool) -> None:
        try:
            self.on_done(job, outcome, inline)
        except Exception:
            logger.exception("recording the outcome of job %s failed", job.id)

    def _work(self) -> None:
        try:
            while True:
                try:
                    job = self._queue.get()
                    if job is None:
                        return
                    if not self._run(job):
                        return  # this thread was abandoned and replaced
                except (JobTimeout, JobAborted, WorkerShutdown):
                    # It may have landed inside a log call, after the lock was taken.
                    release_logging_locks()
                    logger.debug("late interruption ignored between jobs")
                except Exception:  # a bug of ours: this job is lost, the thread goes on
                    logger.exception("job thread: unexpected error")
        finally:
            release_logging_locks()  # a thread that ends holds no logging lock legitimately
            close_event_loop()

    def _run(self, job: Job) -> bool:
        slot = _Slot(job, threading.get_ident())
        with self._lock:
            if self._pending.pop(job.id, None) is None:
                return True  # put back by ``interrupt`` before this thread got to it
            self._running[job.id] = slot
        if job.timeout:
            slot.deadline = self.watcher.add(job.timeout, lambda: self._expire(slot))

        def handler_done() -> None:
            with slot.gate:
                slot.in_handler = False
            self.watcher.cancel(slot.deadline)

        outcome: Outcome | None = None
        try:
            outcome = execute(self.app, self.worker, job, handler_done,
                              self.worker.record_progress)
        except (JobTimeout, JobAborted, WorkerShutdown) as exc:
            outcome = outcome or stray_outcome(exc)
        finally:
            slot.in_handler = False
            self.watcher.cancel(slot.deadline)
            self.watcher.cancel(slot.grace)
            with self._lock:
                slot.done = True
                abandoned = slot.abandoned
                if not abandoned:
                    self._running.pop(job.id, None)
            if slot.delivered is not None:
                # It may have landed while this thread held a logging lock.
                release_logging_locks()
        if abandoned:
            logger.warning("abandoned job %s finally returned; its late result is discarded",
                           job.id, extra=job_fields(job))
            with self._lock:
                self._abandoned -= 1
                if self._owed:  # this thread takes its slot back
                    self._owed -= 1
                    self._threads.append(threading.current_thread())
                    return True
            return False
        self._report(job, _swallowed(slot, outcome), True)
        return True


def _swallowed(slot: _Slot, outcome: Outcome) -> Outcome:
    """The outcome of a handler that caught the interruption raised into it and returned
    (or raised something else, or snoozed): the attempt still ended as the interruption
    said."""
    if slot.delivered is None or outcome.kind not in (SUCCESS, ERROR, SNOOZED):
        return outcome
    job, name = slot.job, slot.delivered.__name__
    kind = _INTERRUPTION_KINDS[slot.delivered]
    how = {SUCCESS: "returned", SNOOZED: "snoozed"}.get(outcome.kind, "raised another error")
    cause = {TIMEOUT: f"job {job.id} exceeded its timeout of {job.timeout}s",
             ABORTED: "aborted on request",
             INTERRUPTED: "the worker stopped"}[kind]
    error = f"{name}: {cause}; the handler caught {name} and {how}"
    if outcome.kind == ERROR and outcome.error:
        error = f"{error}:\n{outcome.error}"
    return Outcome(kind, error=error, duration=outcome.duration)


def make_pool(kind: str, app: Werk, worker: Worker, capacity: int, watcher: DeadlineWatcher,
              grace: float, on_done: OnDone) -> ExecutionPool:
    if kind == "thread":
        return ThreadPool(app, worker, capacity, watcher, grace, on_done)
    if kind in ("fork", "process"):
        return ProcessPool(app, worker, capacity, watcher, grace, on_done,
                           persistent=kind == "process")
    raise ValueError(f"pool must be one of {', '.join(POOL_KINDS)}, got {kind!r}")


