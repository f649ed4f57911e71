"""``Worker``: registers, claims jobs in batches, hands them to an execution pool, and
drains on SIGTERM.

Threads of a running worker: the main loop (claims), the completion writer
(``_completions``), the heartbeat (``_heartbeat``, on a connection of its own), the sweep,
the listener, and the execution pool's own. Each background loop outlives any single bad
item; if one dies anyway, the worker stops and ``run()`` raises ``WorkerFailed``, so that a
supervisor restarts it rather than leaving it heartbeating with a dead part.
"""

from __future__ import annotations

import collections
import enum
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

from pgwerk._allowlist import warn_if_unrestricted
from pgwerk._completions import CompletionWriter
from pgwerk._execute import (
    Outcome,
    Settlement,
    callback_ref,
    close_event_loop,
    job_after,
    run_callback,
    settle,
)
from pgwerk._heartbeat import Heartbeat, registration
from pgwerk._logging import job_fields
from pgwerk._pools import POOL_KINDS, ExecutionPool, make_pool
from pgwerk._timeouts import DeadlineWatcher, raise_in_thread, release_logging_locks
from pgwerk._validate import integer, is_int, text
from pgwerk.app import Werk
from pgwerk.exceptions import JobAborted, JobTimeout, WorkerFailed, WorkerShutdown
from pgwerk.job import CallbackRef, Context, Job, JobStatus
from pgwerk.options import seconds
from pgwerk.store.connections import UNREACHABLE
from pgwerk.store.core import RATE_HANDOFF

if TYPE_CHECKING:
    from pgwerk.metrics import WorkerMetrics

logger = logging.getLogger(__name__)

Hook = Callable[[Context], Any]
_MICROSECOND = timedelta(microseconds=1)  # the resolution of PostgreSQL's timestamps
#: The most jobs one worker runs at once (threads, or child processes).
MAX_CONCURRENCY = 1024
#: prefetch="auto" holds at most ``max(4 * concurrency, AUTO_PREFETCH_CAP)`` jobs. With 32,
#: a worker of 8 threads burning down no-op jobs claimed 40 at a time and spent 60% of its
#: time waiting on claims; with 128 it claims ~120 at a time, for 1.4x the jobs/s.
AUTO_PREFETCH_CAP = 128


class DequeueStrategy(str, enum.Enum):
    """Which job a worker with several queues takes next."""

    Priority = "priority"  #: highest priority first across all queues, then oldest
    RoundRobin = "round_robin"  #: one queue after the other
    Random = "random"  #: queues in random order


@dataclass
class Hooks:
    before_process: Hook | None = None
    after_process: Hook | None = None
    on_exception: list[Hook] = field(default_factory=list)


class Worker:
    """Runs jobs from the given queues until stopped.

    Args:
        app: the ``Werk`` to take jobs from.
        queues: queue names, in preference order for ``RoundRobin``.
        concurrency: jobs run at once (threads, or child processes), 1 to 1024.
        pool: ``"thread"`` (default), ``"fork"`` (a fresh child per job: isolation and hard
            kills) or ``"process"`` (pre-started children, for CPU-bound work).
        burst: exit once the queues are empty instead of waiting for more.
        poll_interval: seconds between checks when no notification arrives.
        heartbeat_interval: seconds between heartbeats; a worker silent for two intervals
            is presumed dead and its jobs are rescued.
        sweep_interval: seconds between attempts to run the sweep (one process at a time).
        shutdown_timeout: on SIGTERM, how long running jobs may finish before they are
            interrupted and put back for another worker.
        dequeue_strategy: a ``DequeueStrategy``.
        before_process / after_process: hooks called with the ``Context`` around each job.
        on_exception: callables called with the ``Context`` (``ctx.exception`` set) when a
            handler raises.
        timeout_grace: seconds a job may overrun its ``_timeout`` (or go on after an
            abort) before its thread is abandoned (thread pool) or its child is killed
            (fork/process pools).
        name: worker id prefix (default: host name).
        prefetch: jobs a worker may claim beyond its free slots and hold until a slot
            frees. ``"auto"`` (the default) holds about as many as this worker starts
            during two claim round trips: none for jobs slower than a round trip, at
            most ``max(4 * concurrency, 128)``; several times the throughput for short
            jobs. A number holds that many; 0 claims exactly the free slots. Either way
            a job's ``started_at`` is when its handler started, and when no slot has
            freed for ``hold_limit`` seconds (every slot busy with a longer job), the held
            jobs go back to their queue for any other worker, without spending an attempt.
        hold_limit: seconds without a free slot after which held jobs are given back.
        metrics: a ``pgwerk.metrics.WorkerMetrics`` to update (the ``metrics`` extra).

    Example::

        Worker(app, queues=["high", "default"], concurrency=8).run()
    """

    def __init__(
        self,
        app: Werk,
        queues: Sequence[str] | str = ("default",),
        concurrency: int = 8,
        pool: str = "thread",
        *,
        burst: bool = False,
        poll_interval: float = 1.0,
        heartbeat_interval: float = 5.0,
        sweep_interval: float | None = None,
        shutdown_timeout: float = 30.0,
        dequeue_strategy: DequeueStrategy | str = DequeueStrategy.Priority,
        before_process: Hook | None = None,
        after_process: Hook | None = None,
        on_exception: Hook | Sequence[Hook] | None = None,
        timeout_grace: float = 2.0,
        name: str | None = None,
        flush_interval: float = 0.005,
        prefetch: int | str = "auto",
        hold_limit: float = 0.25,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        if not isinstance(app, Werk):
            raise TypeError(f"Worker needs a Werk app, got {type(app).__name__}")
        if isinstance(queues, str):
            queues = [q.strip() for q in queues.split(",") if q.strip()]
        if not isinstance(queues, Sequence) or isinstance(queues, bytes):
            raise TypeError(f"queues must be a list of queue names (or one name, or names "
                            f"separated by commas), got {queues!r}")
        queues = list(queues)
        if not queues:
            raise ValueError("queues must name at least one queue")
        for queue in queues:
            text("queues", queue)
        if name is not None:
            text("name", name, max_len=100)
        # More threads or children than this is a mistake, and would take the machine down.
        integer("concurrency", concurrency, minimum=1, maximum=MAX_CONCURRENCY)
        if pool not in POOL_KINDS:
            raise ValueError(f"pool must be one of {', '.join(POOL_KINDS)}, got {pool!r}")
        try:
            strategy = DequeueStrategy(dequeue_strategy)
        except ValueError:
            raise ValueError(
                f"dequeue_strategy must be one of {', '.join(s.value for s in DequeueStrategy)},"
                f" got {dequeue_strategy!r}") from None
        for hook_name, hook in (("before_process", before_process),
                                ("after_process", after_process)):
            if hook is not None and not callable(hook):
                raise TypeError(f"{hook_name} must be callable, got {hook!r}")
        if on_exception is None:
            handlers: list[Hook] = []
        elif callable(on_exception):
            handlers = [on_exception]
        elif isinstance(on_exception, Sequence) and all(callable(h) for h in on_exception):
            handlers = list(on_exception)
        else:
            raise TypeError(f"on_exception must be a callable or a list of callables, "
                            f"got {on_exception!r}")
        if metrics is not None and not callable(getattr(metrics, "job_started", None)):
            raise TypeError(f"metrics must be a pgwerk.metrics.WorkerMetrics, got {metrics!r}")
        self.app = app
        self.store = app._store
        self.queues = list(dict.fromkeys(queues))
        self.concurrency = concurrency
        self.pool_kind = pool
        self.burst = bool(burst)
        self.poll_interval = seconds("poll_interval", poll_interval, positive=True) or 1.0
        self.heartbeat_interval = seconds("heartbeat_interval", heartbeat_interval,
                                          positive=True) or 5.0
        self.sweep_interval = seconds("sweep_interval", sweep_interval, positive=True) \
            or self.heartbeat_interval
        self.shutdown_timeout = seconds("shutdown_timeout", shutdown_timeout) or 0.0
        self.timeout_grace = seconds("timeout_grace", timeout_grace) or 0.0
        self.flush_interval = seconds("flush_interval", flush_interval) or 0.0
        if self.flush_interval > 1.0:  # outcomes wait this long before they are written
            raise ValueError(f"flush_interval must be at most 1 second, got {flush_interval!r}")
        self.hold_limit = seconds("hold_limit", hold_limit) or 0.0
        self.dequeue_strategy = strategy
        if prefetch == "auto":
            self._auto_prefetch: int | None = max(4 * concurrency, AUTO_PREFETCH_CAP)
            prefetch = 0
        elif not is_int(prefetch) or prefetch < 0:
            raise ValueError(f"prefetch must be an int >= 0 or 'auto', got {prefetch!r}")
        else:
            self._auto_prefetch = None
        self.prefetch = prefetch
        # For prefetch="auto": moving averages of the claim round trip (s) and of the jobs
        # this worker finishes per second between claims.
        self._claim_rtt = 0.0
        self._rate = 0.0
        self._rate_mark = (time.monotonic(), 0)
        self.metrics = metrics
        if metrics is not None:
            metrics.attach(self)
        self._buffer: collections.deque[Job] = collections.deque()
        # Monotonic time each held job was claimed, then the seconds it waited here before
        # its handler started (recorded with its outcome as the real start).
        self._claimed_at: dict[int, float] = {}
        self._waited: dict[int, float] = {}
        # Monotonic time before which a held job of a rate-limited queue does not start
        # (RATE_HANDOFF after its claim was sent), and the rated jobs of the last claim.
        self._start_at: dict[int, float] = {}
        self._rated: frozenset[int] = frozenset()
        self._last_start: datetime | None = None
        self._hold_off_until = 0.0
        # What the last claim said about queue limits: runnable jobs held back, and when a
        # rate limit lets more start (seconds).
        self._held_back = False
        self._retry_in: float | None = None
        # Whether some of the queues have limits (then claims obey them with a statement
        # of their own): looked up at the start, again when a notice says they changed,
        # and said by every heartbeat.
        self._limited = False
        self._limits_stale = False
        self._slot_freed_at = time.monotonic()
        self._dispatch_lock = threading.Lock()
        self.hooks = Hooks(before_process, after_process, handlers)
        self.id = f"{name or socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"

        self._stopping = threading.Event()
        self._sweep_stop = threading.Event()
        self._immediate = threading.Event()
        self._wake = threading.Event()
        self._next_stage = 0.0
        self._rotation = 0
        self._pool: ExecutionPool | None = None
        self._watcher: DeadlineWatcher | None = None
        self._completions = CompletionWriter(self)
        self._heartbeat = Heartbeat(self)
        self._sweeper: threading.Thread | None = None
        self._heartbeat_jobs: dict[int, float] = {}
        # Jobs claimed and not yet recorded (buffered, running, or waiting to be written).
        self._held: dict[int, Job] = {}
        self._unknown: set[int] = set()
        # Attempts the database gave to someone else while they ran here: their outcome
        # is dropped.
        self._disowned: set[tuple[int, int]] = set()
        self._failure: str | None = None
        self._lock = threading.Lock()
        self.processed = 0
        self._registered = False

    def __repr__(self) -> str:
        return f"<Worker {self.id} queues={self.queues} pool={self.pool_kind}x{self.concurrency}>"

    # -- control -------------------------------------------------------------------------

    def stop(self, now: bool = False) -> None:
        """Ask the worker to stop: finish running jobs (up to ``shutdown_timeout``), or with
        ``now=True`` interrupt them at once and put them back. Safe from any thread."""
        if now:
            self._immediate.set()
        self._stopping.set()
        self._wake.set()

    def run(self) -> None:
        """Work until ``stop()``, a signal, or (``burst``) empty queues. Blocks."""
        main = threading.current_thread() is threading.main_thread()
        previous = self._install_signal_handlers() if main else {}
        try:
            try:
                self._start()
            except BaseException:
                self._undo_start()
                raise
            try:
                self._loop()
            finally:
                self._drain()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self._failure is not None:
            raise WorkerFailed(self._failure)

    # -- lifecycle -------------------------------------------------------------------------

    def _install_signal_handlers(self) -> dict[int, Any]:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            name = signal.Signals(signum).name
            if self._stopping.is_set():
                logger.warning("%s again: stopping now, interrupting running jobs", name)
                self.stop(now=True)
            else:
                logger.info("%s: finishing running jobs (up to %.0fs), then stopping",
                            name, self.shutdown_timeout)
                self.stop()

        previous: dict[int, Any] = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
        return previous

    def _start(self) -> None:
        app = self.app
        app.connect()
        warn_if_unrestricted(app)
        self._watcher = DeadlineWatcher()
        self._watcher.start()
        self._pool = make_pool(self.pool_kind, app, self, self.concurrency, self._watcher,
                               self.timeout_grace, self._on_done)
        self._pool.start()  # forks process-pool children before our threads exist
        self._register()
        self.store.listener.subscribe(self._on_notification)
        self.store.listener.wait_ready(timeout=5.0)
        self._completions.start()
        self._heartbeat.start()
        self._sweeper = threading.Thread(target=self._sweep_loop, name="pgwerk-sweep",
                                         daemon=True)
        self._sweeper.start()
        logger.info("worker %s started: queues %s, %s pool x%d", self.id,
                    ",".join(self.queues), self.pool_kind, self.concurrency)

    def _register(self) -> None:
        self.store.register_worker(registration(self))
        self._registered = True
        self._limited = self.store.has_limits(self.queues)

    @property
    def limited(self) -> bool:
        """Whether some of this worker's queues have limits (its claims then obey them,
        and its outcomes free the concurrency slots of their jobs)."""
        return self._limited

    def _limits_changed(self, limited: bool) -> None:
        """Limits appeared on (or left) this worker's queues: claim with the statement
        that obeys them (or the plain one) from now on."""
        if limited != self._limited:
            logger.info("queue limits %s on %s", "found" if limited else "gone",
                        ",".join(self.queues))
            self._limited = limited
            self._wake.set()

    # -- a start that failed halfway, and parts that died ----------------------------------

    def _check_parts(self) -> bool:
        """Whether a part the worker cannot run without died (a background thread, the
        deadline watcher, every thread of the pool): said once; the worker then drains and
        ``run()`` raises ``WorkerFailed``."""
        if self._failure is None:
            threads = {"completion writer": self._completions.is_alive(),
                       "heartbeat": self._heartbeat.is_alive(),
                       "sweep": self._sweeper is not None and self._sweeper.is_alive()}
            dead = [name for name, alive in threads.items() if not alive]
            problems = [part.problem() for part in (self._watcher, self._pool)
                        if part is not None]
            if dead:
                self._failure = f"the worker's {' and '.join(dead)} thread died"
            elif any(problems):
                self._failure = next(p for p in problems if p)
            if self._failure is not None:
                logger.critical("worker %s: %s; stopping (see the errors logged above)",
                                self.id, self._failure)
        return self._failure is not None

    def _undo_start(self) -> None:
        """Stop whatever a failed ``_start`` had started: no thread, child process or signal
        handler of this worker outlives ``run``. Each step is tried on its own."""
        steps: list[tuple[str, Callable[[], object]]] = []
        if self._pool is not None:
            steps.append(("stop the execution pool", self._pool.stop))
        steps.append(("unsubscribe", lambda: self.store.listener.unsubscribe(
            self._on_notification)))
        if self._completions.started():
            steps.append(("stop the completion writer", self._completions.stop))
        if self._heartbeat.started():
            steps.append(("stop the heartbeat", self._heartbeat.stop))
        if self._sweeper is not None:
            sweeper = self._sweeper

            def stop_sweep() -> None:
                self._sweep_stop.set()
                sweeper.join(timeout=5.0)

            steps.append(("stop the sweep", stop_sweep))
        if self._registered:
            steps.append(("unregister", lambda: self.store.unregister_worker(self.id)))
        if self._watcher is not None:
            steps.append(("stop the deadline watcher", self._watcher.stop))
        for what, step in steps:
            try:
                step()
            except Exception:
                logger.exception("worker %s failed to start; could not %s", self.id, what)

    def _drain(self) -> None:
        pool = self._pool
        assert pool is not None and self._watcher is not None
        deadline = time.monotonic() + self.shutdown_timeout
        with self._dispatch_lock:  # claimed but never started: straight back to the queue
            held = list(self._buffer)
            self._buffer.clear()
            self._start_at.clear()
        if held:
            self._completions.unclaim(held)
        try:
            self.store.worker_stopping(self.id)
        except UNREACHABLE:
            pass
        while pool.running_ids() and time.monotonic() < deadline and not self._immediate.is_set():
            self._wake.wait(0.05)
            self._wake.clear()
        if pool.running_ids():
            interrupted = pool.interrupt()
            logger.warning("interrupting %d running job(s) to stop: %s", len(interrupted),
                           ", ".join(map(str, interrupted)))
            grace_end = time.monotonic() + max(self.timeout_grace, 0.5)
            while pool.running_ids() and time.monotonic() < grace_end:
                time.sleep(0.02)
            stuck = pool.running_ids()
            for job_id in stuck:
                known = self._held.get(job_id)
                if known is not None:
                    self._completions.release(known)
                else:
                    self._completions.release_ids([job_id])
        pool.stop()
        self._completions.stop()
        self.store.listener.unsubscribe(self._on_notification)
        self._sweep_stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=5.0)
        self._heartbeat.stop()
        try:
            self.store.unregister_worker(self.id)
        except UNREACHABLE:
            logger.warning("could not unregister worker %s: database unreachable", self.id)
        self._watcher.stop()
        logger.info("worker %s stopped after %d job(s)", self.id, self.processed)

    # -- the claim loop ----------------------------------------------------------------------

    def _loop(self) -> None:
        pool = self._pool
        assert pool is not None
        failures = 0
        while not self._stopping.is_set():
            if self._check_parts():
                break
            self._wake.clear()
            self._dispatch()
            free = pool.free_slots()
            self._give_back_stale_holds(free)
            prefetch = self.prefetch if time.monotonic() >= self._hold_off_until else 0
            want = free + prefetch - len(self._buffer)
            # With prefetch, claim again once half of it has been handed out, not only when
            # a slot is free: the next batch is then on its way while the buffer drains.
            if free <= 0 and want < max(1, prefetch // 2):
                want = 0
            try:
                if self._limits_stale:
                    self._limits_stale = False
                    self._limits_changed(self.store.has_limits(self.queues))
                if time.monotonic() >= self._next_stage:
                    self._stage()
                # The claim's started_at is the database's clock when the statement began,
                # near when it was sent: a held job's wait is counted from then, so that
                # started_at keeps the order handlers really started in, however long the
                # answer took to come back.
                sent = time.monotonic()
                writes = self._completions.writes
                # Limited queues give only what can start now, in a free slot.
                claimed = self._claim(want, max(0, free - len(self._buffer))) \
                    if want > 0 else []
                failures = 0
            except UNREACHABLE as exc:
                failures += 1
                pause = min(0.1 * 2 ** failures, 5.0)
                logger.warning("database unreachable (%s); retrying in %.1fs", exc, pause)
                self._stopping.wait(pause)
                continue
            except Exception:
                # Not a bad row (those fail their own job): a statement the database
                # refuses. Keep trying, slowly; the log says why.
                failures += 1
                pause = min(0.1 * 2 ** failures, 5.0)
                logger.exception("claiming jobs failed; retrying in %.1fs", pause)
                self._stopping.wait(pause)
                continue
            with self._lock:
                self._held.update((job.id, job) for job in claimed)
            for job in claimed:
                self._claimed_at[job.id] = sent
                if job.id in self._rated:
                    self._start_at[job.id] = sent + RATE_HANDOFF
                if self.metrics is not None:
                    self.metrics.job_started(job)
                if job.heartbeat:
                    with self._lock:
                        self._heartbeat_jobs[job.id] = job.heartbeat
                    self._heartbeat.wake()
                self._buffer.append(job)
            self._dispatch()
            if want and len(claimed) == want:
                continue  # there may be more; claim again as soon as slots free up
            # Only a claim that came back short says the queues are empty; with no slot
            # free no claim was tried, and the running job may have just finished. Jobs a
            # queue limit holds back are not gone: they are waited for. Nor is it the last
            # word if outcomes were written meanwhile: they may have queued more.
            if self.burst and want and len(claimed) < want and not self._buffer \
                    and not self._held_back and self._idle() \
                    and self._completions.writes == writes:
                logger.info("burst: queues empty, stopping")
                break
            wait = min(self.poll_interval, max(0.0, self._next_stage - time.monotonic()))
            if self._buffer:
                wait = min(wait, self.hold_limit)
                start_at = self._start_at.get(self._buffer[0].id)
                if start_at is not None:
                    wait = min(wait, max(0.0, start_at - time.monotonic()))
            if want and self._retry_in is not None:
                wait = min(wait, self._retry_in)  # when a rate limit lets more start
            self._wake.wait(wait)

    def _oldest_hold(self) -> float:
        return self._claimed_at.get(self._buffer[0].id, time.monotonic()) if self._buffer \
            else time.monotonic()

    def _give_back_stale_holds(self, free: int) -> None:
        """When no slot freed for ``hold_limit`` (every slot busy with a longer job), the
        held jobs go back to their queue (another worker may be idle), and this worker
        stops holding for a while."""
        if free > 0 or not self._buffer:
            return
        if time.monotonic() - max(self._slot_freed_at, self._oldest_hold()) < self.hold_limit:
            return
        with self._dispatch_lock:
            stale = list(self._buffer)
            self._buffer.clear()
        if stale:
            logger.debug("giving back %d held job(s): every slot is busy", len(stale))
            self._hold_off_until = time.monotonic() + max(1.0, 10 * self.hold_limit)
            for job in stale:
                self._claimed_at.pop(job.id, None)
                self._start_at.pop(job.id, None)
            self._completions.unclaim(stale)

    def _dispatch(self) -> None:
        """Hand claimed jobs to free slots. Called by the claim loop and by each finished
        job (so a slot refills at once, even while the loop waits for a claim)."""
        pool = self._pool
        assert pool is not None
        with self._dispatch_lock:
            free = pool.free_slots()
            while free > 0 and self._buffer:
                start_at = self._start_at.get(self._buffer[0].id)
                if start_at is not None:
                    if start_at > time.monotonic():
                        break  # a rated job waits out its hand-off; the loop wakes for it
                    del self._start_at[self._buffer[0].id]
                job = self._buffer.popleft()
                claimed_at = self._claimed_at.pop(job.id, None)
                if claimed_at is not None and job.started_at is not None:
                    self._waited[job.id] = self._wait_before_start(job.started_at, claimed_at)
                pool.submit(job)
                free -= 1

    def _wait_before_start(self, claimed: datetime, sent: float) -> float:
        """Seconds between the claim (``claimed``, the database's clock when the claim
        began; ``sent``, this process's clock when it was sent) and now, when the handler
        starts: the job's ``started_at`` becomes ``claimed`` plus that. Kept increasing in
        the order this worker starts its jobs, which a claim's round trip (that varies
        from one claim to the next) would otherwise blur for jobs of different claims."""
        start = claimed + timedelta(seconds=time.monotonic() - sent)
        if self._last_start is not None and start <= self._last_start:
            start = self._last_start + _MICROSECOND
        self._last_start = start
        return (start - claimed).total_seconds()

    def _claim(self, limit: int, free: int | None = None) -> list[Job]:
        """Claim up to ``limit`` jobs, of limited queues no more than ``free`` (default
        ``limit``)."""
        queues = self.queues
        round_robin = self.dequeue_strategy is DequeueStrategy.RoundRobin and len(queues) > 1
        if round_robin:  # start after the queue of the last job claimed
            queues = queues[self._rotation:] + queues[:self._rotation]
        started = time.monotonic()
        limited = self._limited
        claim = self.store.claim(self.dequeue_strategy.value, queues, limit, self.id, free,
                                 limited=limited)
        jobs, self._held_back, self._retry_in = claim.jobs, claim.held, claim.retry_in
        self._rated = claim.rated
        if limited and not claim.limited:
            self._limits_changed(False)  # the limits are gone: back to the plain claim
        elif claim.held:
            logger.debug("queue limits hold back runnable jobs%s", "" if claim.retry_in is None
                         else f"; more may start in {claim.retry_in:.3f}s")
        if self._auto_prefetch is not None:
            self._adapt_prefetch(time.monotonic() - started)
        if jobs:
            logger.debug("claimed %d job(s) from %s", len(jobs), ",".join(queues))
        if round_robin and jobs:
            self._rotation = (self.queues.index(jobs[-1].queue) + 1) % len(self.queues)
        return jobs

    def _adapt_prefetch(self, rtt: float) -> None:
        """prefetch="auto": hold what this worker finishes in two claim round trips."""
        now, done = time.monotonic(), self.processed
        then, done_then = self._rate_mark
        self._rate_mark = (now, done)
        if now > then:
            self._rate = 0.5 * self._rate + 0.5 * (done - done_then) / (now - then)
        self._claim_rtt = rtt if not self._claim_rtt else 0.5 * self._claim_rtt + 0.5 * rtt
        assert self._auto_prefetch is not None
        self.prefetch = min(self._auto_prefetch, int(2 * self._rate * self._claim_rtt))

    def _stage(self) -> None:
        _staged, next_due = self.store.stage_scheduled()
        wait = self.poll_interval if next_due is None else min(self.poll_interval, next_due)
        self._next_stage = time.monotonic() + max(wait, 0.001)

    def note_scheduled(self, delay: float) -> None:
        """A retry was scheduled ``delay`` seconds out: stage it on time."""
        self._next_stage = min(self._next_stage, time.monotonic() + delay)
        self._wake.set()

    def _idle(self) -> bool:
        """Nothing running, nothing left to record, nothing due (burst mode's exit test).
        Retries due within a poll interval still belong to this burst."""
        assert self._pool is not None
        if self._pool.running_ids() or self._pool.free_slots() < self.concurrency:
            return False
        with self._lock:
            if self._held:  # claimed here and not yet recorded (a job just ended, say)
                return False
        if not self._completions.idle():
            return False
        staged, next_due = self.store.stage_scheduled()
        return not staged and (next_due is None or next_due > self.poll_interval)

    def _on_notification(self, payload: str | None) -> None:
        if payload is None:
            self._wake.set()
        elif payload.startswith("q:"):
            if payload[2:] in self.queues:
                self._wake.set()
        elif payload.startswith("l:"):
            if payload[2:] in self.queues:  # limits set or removed: look again
                self._limits_stale = True
                self._wake.set()
        elif payload.startswith("a:") and self._pool is not None:
            job_id = int(payload[2:])
            if self._pool.abort(job_id):
                logger.info("job %s: abort requested, interrupting it", job_id,
                            extra={"job_id": job_id})

    # -- outcomes ------------------------------------------------------------------------

    def wake(self) -> None:
        """Let the claim loop look again (a slot or an outcome was freed)."""
        self._wake.set()

    def record_progress(self, job: Job, fraction: float, message: str | None) -> None:
        """A running job reported its progress (checked already): written soon, at most
        once a second per job (called by the pools, from any thread)."""
        self._completions.progress.report(job.id, job.attempts, (fraction, message))

    def _on_done(self, job: Job, outcome: Outcome, inline: bool) -> None:
        self._slot_freed_at = time.monotonic()
        last_progress = self._completions.progress.finish(job.id, job.attempts)
        with self._lock:
            self._heartbeat_jobs.pop(job.id, None)
            self.processed += 1
            disowned = (job.id, job.attempts) in self._disowned
            self._disowned.discard((job.id, job.attempts))
            # Put back at shutdown while its thread was stuck: the job is not ours any more.
            released = job.id not in self._held
        if released and not disowned:
            logger.info("job %s: attempt %d ended after it was put back at shutdown; its "
                        "outcome (%s) is dropped", job.id, job.attempts, outcome.kind,
                        extra={"job_id": job.id})
            return
        if disowned:
            if self.metrics is not None:
                self.metrics.jobs_lost(1)
            logger.warning("job %s: attempt %d ended here after the database gave the job to "
                           "another worker; its outcome (%s) is dropped", job.id, job.attempts,
                           outcome.kind, extra={"job_id": job.id})
            self.forget([job])
            if self._buffer and not self._stopping.is_set():
                self._dispatch()
            self._wake.set()
            return
        settlement = settle(job, outcome, waited=self._waited.pop(job.id, 0.0),
                            progress=last_progress)
        if self.metrics is not None:
            self.metrics.job_finished(job, settlement.status, outcome.duration)
        if settlement.status == "released":
            self._completions.release(job)
        else:
            self._completions.add(job, settlement)
        if settlement.status in ("scheduled", "snoozed") and settlement.delay > 0:
            self.note_scheduled(settlement.delay)
        if self._buffer and not self._stopping.is_set():
            self._dispatch()
        self._wake.set()
        quiet = outcome.kind == "success" or settlement.status == "snoozed"
        # The log record's fields are built only when it is written: for short jobs, a
        # measurable share of the worker's time otherwise.
        if logger.isEnabledFor(logging.INFO if quiet else logging.WARNING):
            self._log_outcome(job, outcome, settlement)
        ref = callback_ref(job, settlement.callback)
        if ref is not None:
            after = job_after(job, settlement, self.app.serializer)
            if inline:
                self._run_callback(after, ref, outcome.exception)
            else:
                threading.Thread(target=self._run_callback_thread,
                                 args=(after, ref, outcome.exception),
                                 name=f"pgwerk-callback-{job.id}", daemon=True).start()

    def _log_outcome(self, job: Job, outcome: Outcome, settlement: Settlement) -> None:
        extra = job_fields(job, self.id, duration=round(outcome.duration, 6),
                           job_error=outcome.error)
        if outcome.kind == "success":
            logger.info("job %s %s complete in %.3fs", job.id, job.function, outcome.duration,
                        extra=extra)
        elif settlement.status == "snoozed":
            logger.info("job %s %s snoozed for %gs after %.3fs", job.id, job.function,
                        settlement.delay, outcome.duration, extra=extra)
        else:
            first_line = (outcome.error or "").strip().splitlines()[-1:] or [""]
            logger.warning("job %s %s: %s -> %s: %s", job.id, job.function, outcome.kind,
                           settlement.status, first_line[0], extra=extra)

    def _run_callback_thread(self, job: Job, ref: CallbackRef,
                             exception: BaseException | None) -> None:
        try:
            self._run_callback(job, ref, exception)
        except (JobTimeout, JobAborted, WorkerShutdown):
            pass  # a late interruption of the callback's time limit: it has ended anyway
        finally:
            release_logging_locks()  # a thread that ends holds no logging lock legitimately
            close_event_loop()

    def _run_callback(self, job: Job, ref: CallbackRef, exception: BaseException | None) -> None:
        assert self._watcher is not None
        deadline = None
        if ref.timeout:
            thread_id = threading.get_ident()
            deadline = self._watcher.add(ref.timeout,
                                         lambda: raise_in_thread(thread_id, JobTimeout))
        try:
            run_callback(self.app, self, job, ref, exception)
        except JobTimeout:
            logger.warning("callback %s of job %s timed out", ref.path, job.id,
                           extra=job_fields(job, self.id))
        finally:
            self._watcher.cancel(deadline)
            if deadline is not None and deadline.fired:
                release_logging_locks()  # the timeout may have landed inside one

    def stopped_at_shutdown(self, job: Job) -> None:
        """A job asked to abort was put back at shutdown and so ended ``aborted``: its
        ``on_stopped`` callback runs as for any abort."""
        ref = callback_ref(job, "stopped")
        if ref is not None:
            after = replace(job, status=JobStatus.Aborted,
                            error="aborted: its worker shut down before the job stopped")
            self._run_callback(after, ref, None)

    # -- heartbeat and sweep ---------------------------------------------------------------

    def heartbeat_jobs(self) -> dict[int, float]:
        """Running jobs with their own ``_heartbeat`` interval."""
        with self._lock:
            return dict(self._heartbeat_jobs)

    def running_attempts(self) -> set[tuple[int, int]]:
        """(job id, attempt) of every job running here now."""
        assert self._pool is not None
        with self._lock:
            held = dict(self._held)
        return {(job_id, held[job_id].attempts) for job_id in self._pool.running_ids()
                if job_id in held}

    def on_heartbeat(self, row: dict[str, Any], running_before: set[tuple[int, int]]) -> None:
        """Act on what the database said: abort requests, jobs it says this worker holds
        but it does not know of, and jobs running here that are no longer this worker's."""
        if self.metrics is not None:
            self.metrics.heartbeat()
        if row["limited"] != self._limited:
            self._limits_changed(row["limited"])
        if row["aborting"] and self._pool is not None:
            running = set(self._pool.running_ids())
            for job_id in row["aborting"]:
                if job_id in running:
                    self._pool.abort(job_id)
        held = {tuple(int(n) for n in item.split(":")) for item in row["held"]}
        self._release_unknown({job_id for job_id, _ in held})
        # Running both before and after the heartbeat's statement, so its outcome cannot
        # have been written in between: if the database does not hold it, it was taken.
        taken = (running_before & self.running_attempts()) - held
        for job_id, attempt in sorted(taken):
            with self._lock:
                self._disowned.add((job_id, attempt))
            logger.warning("job %s: the database no longer gives attempt %d to this worker "
                           "(rescued after a late heartbeat, or changed by hand); "
                           "interrupting it here", job_id, attempt, extra={"job_id": job_id})
            assert self._pool is not None
            self._pool.abort(job_id)

    def _sweep_loop(self) -> None:
        # Workers started together spread their first attempts over half an interval.
        wait = self.sweep_interval * (0.5 + (os.getpid() % 50) / 100)
        while not self._sweep_stop.wait(wait):
            wait = self.sweep_interval
            try:
                counts = self.app.sweep()
                if self.metrics is not None:
                    self.metrics.swept(counts)
                if any(counts.values()):
                    logger.info("sweep: %s", counts)
            except UNREACHABLE as exc:
                logger.warning("sweep failed: database unreachable (%s)", exc)
            except Exception:
                logger.exception("sweep failed; trying again in %.1fs", wait)

    def _release_unknown(self, in_database: set[int]) -> None:
        """Jobs the database says this worker holds but it does not know of: a claim whose
        answer was lost with the connection. Seen at two heartbeats in a row (a claim may
        be on its way back at the first), they are put back for any worker to run."""
        with self._lock:
            unknown = in_database - self._held.keys()
            orphans, self._unknown = unknown & self._unknown, unknown
        if orphans:
            logger.warning("job(s) %s are held by this worker in the database but not here "
                           "(a claim's answer was lost); putting them back",
                           ", ".join(map(str, sorted(orphans))))
            self._completions.release_ids(sorted(orphans))

    def forget(self, jobs: Iterable[Job]) -> None:
        """These jobs are recorded (or released): no longer held by this worker. Each as
        the claim it came from: a job this worker claimed again meanwhile (a retry due at
        once, a job given back and taken again) stays held."""
        with self._lock:
            for job in jobs:
                if self._held.get(job.id) is job:
                    del self._held[job.id]
