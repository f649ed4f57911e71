"""Deadlines: run an action when a moment passes, and raise an exception into a thread.

Two drivers behind one interface: ``SIGALRM`` through ``signal.setitimer`` when the worker
owns the main thread, a watcher thread otherwise. Both fire the same ``Deadline`` objects.
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

# While deadlines are pending the alarm also ticks at this period, so that a deadline
# added concurrently with a firing alarm is at worst this late.
_SAFETY_TICK = 0.25


def raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> bool:
    """Schedule ``exc_type`` to be raised in the thread at its next Python instruction.

    Code blocked in C (``time.sleep``, a socket read) sees it only when it returns.
    Returns False if no such thread exists.
    """
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type)
    )
    if done > 1:  # pragma: no cover - would mean several threads share the id
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)
        return False
    return bool(done)


def release_logging_locks() -> None:
    """Release the ``logging`` locks this thread still holds after an interruption.

    An exception raised into a thread lands between two bytecodes, which may be just after
    ``Handler.acquire`` took a handler's lock and before the ``try`` that releases it: the
    lock then stays held and every other thread blocks on its next log line. Call this in
    the interrupted thread once the interrupted code has unwound, when it can no longer
    hold such a lock legitimately. Locks of other libraries cannot be repaired this way.
    """
    locks: list[Any] = [getattr(logging, "_lock", None)]
    for ref in list(getattr(logging, "_handlerList", ())):
        handler = ref()
        if handler is not None:
            locks.append(handler.lock)
    for lock in locks:
        owned = getattr(lock, "_is_owned", None)
        if owned is not None and owned():
            lock._release_save()  # every level of the re-entrant lock
            logger.warning("an interruption left a logging lock held by this thread; "
                           "released it")


class Deadline:
    """An action due at a monotonic time; fires at most once unless cancelled first."""

    __slots__ = ("at", "action", "cancelled", "fired", "handed_on", "seq", "signal_safe")

    def __init__(self, at: float, action: Callable[[], object], seq: int,
                 signal_safe: bool = False) -> None:
        self.at = at
        self.action = action
        self.cancelled = False
        self.fired = False
        self.handed_on = False
        self.seq = seq
        self.signal_safe = signal_safe

    def __lt__(self, other: Deadline) -> bool:
        return (self.at, self.seq) < (other.at, other.seq)

    def fire(self) -> None:
        if self.cancelled or self.fired:
            return
        self.fired = True
        try:
            self.action()
        except Exception:  # one bad action must not end the watcher
            # Not BaseException: in a forked child the alarm handler raises JobTimeout
            # into its own (main) thread, and that must reach the job's code.
            logger.exception("deadline action failed")


class DeadlineWatcher:
    """Fires ``Deadline`` actions on time, from SIGALRM or from a watcher thread.

    With SIGALRM the handler runs on the main thread, between two of its bytecodes, while
    that thread may hold any lock: only actions added with ``signal_safe=True`` (which take
    no lock, such as raising into a thread) run inside the handler. The others are handed
    to a runner thread through a queue whose ``put`` is safe there.
    """

    def __init__(self, use_signal: bool | None = None) -> None:
        main = threading.current_thread() is threading.main_thread()
        self.use_signal = main if use_signal is None else (use_signal and main)
        self._lock = threading.Lock()
        self._heap: list[Deadline] = []
        self._snapshot: tuple[Deadline, ...] = ()
        self._seq = itertools.count()
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._running = False
        self._previous_handler: object = None
        self._handed: queue.SimpleQueue[Deadline | None] = queue.SimpleQueue()
        self._runner: threading.Thread | None = None
        self._failure: str | None = None

    def start(self) -> None:
        self._running = True
        if self.use_signal:
            self._runner = threading.Thread(target=self._supervise, args=(self._run_handed,),
                                            name="pgwerk-deadlines", daemon=True)
            self._runner.start()
            self._previous_handler = signal.signal(signal.SIGALRM, self._on_alarm)
        else:
            self._thread = threading.Thread(target=self._supervise, args=(self._watch,),
                                            name="pgwerk-deadlines", daemon=True)
            self._thread.start()

    def problem(self) -> str | None:
        """What went wrong with the watcher's thread, if it died: without it time limits
        go unenforced, so the worker must not carry on."""
        if self._failure is not None:
            return self._failure
        thread = self._runner if self.use_signal else self._thread
        if self._running and thread is not None and not thread.is_alive():
            return "the deadline watcher thread ended unexpectedly"
        return None

    def _supervise(self, loop: Callable[[], None]) -> None:
        try:
            loop()
        except BaseException as exc:  # noqa: B036 - whatever it was, the worker must know
            self._failure = f"the deadline watcher thread died: {exc!r}"
            logger.critical("%s", self._failure, exc_info=True)

    def stop(self) -> None:
        with self._lock:
            self._running = False
            self._wake.notify_all()
        if self.use_signal:
            signal.setitimer(signal.ITIMER_REAL, 0)
            if self._previous_handler is not None:
                signal.signal(signal.SIGALRM, self._previous_handler)  # type: ignore[arg-type]
            self._handed.put(None)
            if self._runner is not None:
                self._runner.join(timeout=2.0)
        elif self._thread is not None:
            self._thread.join(timeout=2.0)

    def add(self, delay: float, action: Callable[[], object], *,
            signal_safe: bool = False) -> Deadline:
        """Run ``action`` after ``delay`` seconds. ``signal_safe`` actions may run inside
        the alarm handler; others always run on a thread of the watcher's own."""
        deadline = Deadline(time.monotonic() + max(0.0, delay), action, next(self._seq),
                            signal_safe)
        with self._lock:
            heapq.heappush(self._heap, deadline)
            self._snapshot = tuple(self._heap)
            self._wake.notify_all()
        if self.use_signal:
            self._arm()
        return deadline

    def cancel(self, deadline: Deadline | None) -> None:
        if deadline is None:
            return
        deadline.cancelled = True
        with self._lock:
            self._compact()

    def _compact(self) -> None:
        while self._heap and (self._heap[0].cancelled or self._heap[0].fired):
            heapq.heappop(self._heap)
        self._snapshot = tuple(self._heap)

    def _arm(self) -> None:
        pending = [d for d in self._snapshot if not (d.cancelled or d.fired or d.handed_on)]
        if not pending:
            signal.setitimer(signal.ITIMER_REAL, 0)
            return
        first = max(1e-4, min(d.at for d in pending) - time.monotonic())
        signal.setitimer(signal.ITIMER_REAL, first, _SAFETY_TICK)

    def _on_alarm(self, signum: int, frame: object) -> None:
        # An exception from here would surface in whatever the main thread was doing
        # (the worker's claim loop): recorded instead, so the worker stops cleanly.
        try:
            self._fire_due()
        except Exception as exc:
            self._failure = f"the deadline alarm handler failed: {exc!r}"

    def _fire_due(self) -> None:
        # Runs in the main thread between two bytecodes; it must not take self._lock,
        # which the interrupted code may hold. It reads the immutable snapshot instead.
        now = time.monotonic()
        for deadline in self._snapshot:
            if deadline.at > now or deadline.fired or deadline.cancelled:
                continue
            if deadline.signal_safe:
                deadline.fire()
            elif not deadline.handed_on:
                deadline.handed_on = True
                self._handed.put(deadline)
        if self._running:
            self._arm()

    def _run_handed(self) -> None:
        while True:
            deadline = self._handed.get()
            if deadline is None:
                return
            deadline.fire()

    def _watch(self) -> None:
        with self._lock:
            while self._running:
                self._compact()
                if not self._heap:
                    self._wake.wait()
                    continue
                delay = self._heap[0].at - time.monotonic()
                if delay > 0:
                    self._wake.wait(delay)
                    continue
                due = heapq.heappop(self._heap)
                self._snapshot = tuple(self._heap)
                self._lock.release()
                try:
                    due.fire()
                finally:
                    self._lock.acquire()
