"""The progress running jobs report (``ctx.progress``), on its way to the database.

A handler may report in a tight loop; the database sees at most one write per job per
``INTERVAL``. The first report is written at once; one within the interval after a write is
kept (the newest replaces the older) and written once the interval has passed; the value
still unwritten when the attempt ends goes with its outcome, in the completion batch.

``Throttle`` holds that rule and nothing else: no I/O, no thread, and the time is passed in,
so that it can be tested with any clock. The completion writer (``_completions``) asks it
what is due and writes it; the worker feeds it the reports of its pool
(``Worker.record_progress``): from the handler's thread in the thread pool, from the reader
thread that receives them from the children of the fork and process pools.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: The least time between two writes of one job's progress, in seconds.
INTERVAL = 1.0

#: What a job reported: the fraction done and the message (or None).
Value = tuple[float, str | None]
#: One write: job id, attempt, fraction, message.
Row = tuple[int, int, float, str | None]


class _Entry:
    __slots__ = ("attempt", "value", "dirty", "sending", "next_at")

    def __init__(self, attempt: int, value: Value) -> None:
        self.attempt = attempt
        self.value = value
        self.dirty = True  # reported and not yet handed out for writing
        self.sending = False  # handed out, not yet known to be written
        self.next_at = 0.0  # the earliest moment of its next write


class Throttle:
    """The newest progress of each job that reported lately, and when it may be written.

    Args:
        on_pending: called (outside the throttle's lock) when a job gets a value waiting to
            be written and had none: the writer then works out afresh when to wake up.
        interval: the least time between two writes of one job's progress.
    """

    def __init__(self, on_pending: Callable[[], None] = lambda: None,
                 interval: float = INTERVAL) -> None:
        self._on_pending = on_pending
        self._interval = interval
        self._lock = threading.Lock()
        self._entries: dict[int, _Entry] = {}

    def report(self, job_id: int, attempt: int, value: Value,
               now: float | None = None) -> None:
        """A job reported ``value`` during ``attempt``."""
        with self._lock:
            entry = self._entries.get(job_id)
            if entry is None or entry.attempt != attempt:
                self._entries[job_id] = _Entry(attempt, value)
                fresh = True
            else:
                fresh = not entry.dirty
                entry.value, entry.dirty = value, True
        if fresh:
            self._on_pending()

    def wait(self, now: float | None = None) -> float | None:
        """Seconds until a write is due (0 or less: one is due now); None when no value
        waits."""
        if not self._entries:
            return None
        now = time.monotonic() if now is None else now
        with self._lock:
            due = [e.next_at for e in self._entries.values() if e.dirty]
        return min(due) - now if due else None

    def take_due(self, now: float | None = None) -> list[Row]:
        """The values to write now, each counted as written at ``now``. Entries with
        nothing to say any more (written more than an interval ago) are forgotten: a job's
        next report is then written at once, as it would be anyway."""
        if not self._entries:  # the common case: no job reports progress
            return []
        now = time.monotonic() if now is None else now
        rows: list[Row] = []
        with self._lock:
            for job_id, entry in list(self._entries.items()):
                if entry.next_at > now:
                    continue
                if entry.dirty:
                    rows.append((job_id, entry.attempt, *entry.value))
                    entry.dirty, entry.sending = False, True
                    entry.next_at = now + self._interval
                elif not entry.sending:
                    del self._entries[job_id]
        return rows

    def written(self, rows: list[Row]) -> None:
        """Values ``take_due`` handed out are written (or given up): the end of their
        attempt need not write them again."""
        with self._lock:
            for job_id, attempt, _fraction, _message in rows:
                entry = self._entries.get(job_id)
                if entry is not None and entry.attempt == attempt:
                    entry.sending = False

    def unwritten(self, rows: list[Row]) -> None:
        """Values ``take_due`` handed out that could not be written: they wait for the
        next turn, unless a newer value came meanwhile (or the attempt ended: its last
        value goes with its outcome)."""
        with self._lock:
            for job_id, attempt, fraction, message in rows:
                entry = self._entries.get(job_id)
                if entry is not None and entry.attempt == attempt:
                    entry.sending = False
                    if not entry.dirty:
                        entry.value, entry.dirty = (fraction, message), True

    def finish(self, job_id: int, attempt: int) -> Value | None:
        """The attempt ended: its newest value if it may not be written yet, to write with
        the outcome (None when it is, so that no statement is spent on it); the job is
        forgotten."""
        if not self._entries:  # the common case, without the lock: reports of this
            return None        # attempt came before its end, in the thread that ends it
        with self._lock:
            entry = self._entries.get(job_id)
            if entry is None or entry.attempt != attempt:
                return None
            del self._entries[job_id]
            return entry.value if entry.dirty or entry.sending else None
