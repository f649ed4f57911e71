"""The completion writer: records the outcomes of a worker's jobs in batches.

One transaction per batch writes the outcomes, promotes or fails the dependents of the
jobs that ended, and inserts the next run of repeating jobs, so that none of these can be
lost between two round trips. One outcome the database refuses (a value out of range in a
row written by hand or by another version) is isolated: the batch is written again one
job at a time, and the job whose outcome cannot be written ends ``failed`` with the
reason. Nothing an outcome holds stops the writer.

The same thread writes the progress running jobs report (``_progress``): at most once a
second per job, in one statement for all the jobs due, and only for jobs that report; the
last value of an attempt goes with its outcome.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
import tenacity

from pgwerk._execute import Settlement
from pgwerk._progress import Row, Throttle
from pgwerk.job import Job
from pgwerk.options import JobSpec, repeat_spec
from pgwerk.store.connections import UNREACHABLE
from pgwerk.store.core import OutcomeBatch

if TYPE_CHECKING:
    from pgwerk.worker import Worker

logger = logging.getLogger(__name__)

Outcomes = list[tuple[Job, Settlement]]
T = TypeVar("T")

_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def _conflict(exc: BaseException | None) -> bool:
    """A transaction that PostgreSQL rolled back to break a deadlock (two transactions
    ending members of the same batches, see ``batch_lock``) or a serialization failure:
    it succeeds when run again."""
    return isinstance(exc, psycopg.errors.TransactionRollback)


class CompletionWriter:
    """Writes outcomes in batches: one transaction per batch, flushed within a few ms."""

    MAX_BATCH = 500
    GIVE_UP = 600.0  # seconds without a database before outcomes are left to the sweep

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.store = worker.store
        self._cond = threading.Condition()
        self._items: Outcomes = []
        self._releases: dict[int, Job | None] = {}
        self._unclaims: list[Job] = []
        self._busy = False
        self._stop = False
        #: Writes finished so far: one that ends during a claim may have queued jobs
        #: (dependents, the next run of a repeat, a retry) that the claim did not see.
        self.writes = 0
        self.progress = Throttle(self._progress_waits)
        self._thread = threading.Thread(target=self._run, name="pgwerk-completions", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def started(self) -> bool:
        return self._thread.ident is not None

    def add(self, job: Job, settlement: Settlement) -> None:
        with self._cond:
            self._items.append((job, settlement))
            if len(self._items) == 1 or len(self._items) >= self.MAX_BATCH:
                self._cond.notify()

    def release(self, job: Job) -> None:
        """Put a job this worker did not finish back in its queue (no retry spent)."""
        with self._cond:
            self._releases[job.id] = job
            self._cond.notify()

    def release_ids(self, ids: list[int]) -> None:
        with self._cond:
            for job_id in ids:
                self._releases.setdefault(job_id, None)
            self._cond.notify()

    def unclaim(self, jobs: list[Job]) -> None:
        """Give back claimed jobs that never started here (no attempt spent)."""
        with self._cond:
            self._unclaims.extend(jobs)
            self._cond.notify()

    def _progress_waits(self) -> None:
        # A job has progress to write: work out afresh when that is due.
        with self._cond:
            self._cond.notify()

    def idle(self) -> bool:
        with self._cond:
            return not (self._items or self._releases or self._unclaims or self._busy)

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout=60.0)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._items or self._releases or self._unclaims or self._stop):
                    progress_due = self.progress.wait(time.monotonic())
                    if progress_due is not None and progress_due <= 0:
                        break
                    self._cond.wait(progress_due)
                if self._stop and not (self._items or self._releases or self._unclaims):
                    return
                if self._items and len(self._items) < self.MAX_BATCH and not self._stop:
                    # Let a few more outcomes join this batch.
                    self._cond.wait(self.worker.flush_interval)
                batch, self._items = self._items[:self.MAX_BATCH], self._items[self.MAX_BATCH:]
                releases, self._releases = self._releases, {}
                unclaims, self._unclaims = self._unclaims, []
                self._busy = True
            # After the batch is taken: the attempts in it are finished, so their last
            # progress is in their settlement, not here.
            progress = self.progress.take_due(time.monotonic())
            try:
                if progress:
                    self._write_progress(progress)
                if unclaims:
                    self._write_unclaims(unclaims)
                if releases:
                    self._write_releases(releases)
                if batch:
                    self._write(batch)
            except Exception:
                # Never expected (each write guards itself); the loop must outlive it.
                logger.exception("could not record %d outcome(s); their jobs will be put back",
                                 len(batch) + len(releases) + len(unclaims))
                self.worker.forget([job for job, _ in batch] + unclaims
                                   + [job for job in releases.values() if job is not None])
            finally:
                with self._cond:
                    self._busy = False
                    self.writes += 1
                if batch or releases or unclaims:
                    self.worker.wake()

    # -- writing -------------------------------------------------------------------------

    def _with_retry(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``, retried with backoff while the database is unreachable (for at
        most ``GIVE_UP`` seconds, then the error is raised)."""
        try:
            return fn(*args)  # the common case, without building a retry policy
        except UNREACHABLE:
            logger.warning("cannot record %s: database unreachable; retrying", what)
        return self._retrying(what)(fn, *args)

    def _retrying(self, what: str) -> tenacity.Retrying:
        return tenacity.Retrying(
            wait=tenacity.wait_exponential(multiplier=0.1, max=5.0),
            retry=(tenacity.retry_if_exception_type(UNREACHABLE)
                   | tenacity.retry_if_exception(_conflict)),
            stop=tenacity.stop_after_delay(self.GIVE_UP),
            before_sleep=lambda s: logger.warning(
                "cannot record %s: %s; retrying", what,
                "deadlock or serialization failure" if s.outcome is not None
                and _conflict(s.outcome.exception()) else "database unreachable"),
            reraise=True,
        )

    def _write_progress(self, rows: list[Row]) -> None:
        """One statement for every job whose progress is due. Not retried here (outcomes
        must not wait for it): rows that could not be written wait for the next turn."""
        try:
            self.store.record_progress(self.worker.id, _dumps(rows))
        except UNREACHABLE as exc:
            logger.warning("cannot record the progress of %d job(s): database unreachable "
                           "(%s); trying again", len(rows), exc)
            self.progress.unwritten(rows)
            return
        except Exception:  # refused: given up, so that their outcome is not refused too
            logger.exception("could not record the progress of job(s) %s",
                             ", ".join(str(row[0]) for row in rows))
        self.progress.written(rows)

    def _write_unclaims(self, jobs: list[Job]) -> None:
        ids = [job.id for job in jobs]
        try:
            self._with_retry(f"{len(ids)} unclaim(s)", self.store.unclaim, self.worker.id, ids)
        except UNREACHABLE:
            logger.error("could not give back job(s) %s: database unreachable; the sweep will",
                         ", ".join(map(str, ids)))
        self.worker.forget(jobs)

    def _write_releases(self, releases: dict[int, Job | None]) -> None:
        worker = self.worker
        try:
            rows = self._with_retry(f"{len(releases)} release(s)", self.store.release,
                                    worker.id, list(releases))
        except UNREACHABLE:
            logger.error("could not put back job(s) %s: database unreachable; the sweep will",
                         ", ".join(map(str, releases)))
            rows = []
        worker.forget(job for job in releases.values() if job is not None)
        for row in rows:
            job = releases.get(row["id"])
            if row["status"] == "aborted" and job is not None:
                worker.stopped_at_shutdown(job)

    def _write(self, batch: Outcomes) -> None:
        worker = self.worker
        try:
            recorded = self._with_retry(f"{len(batch)} outcome(s)", self._record, batch)
        except UNREACHABLE:
            logger.error("gave up recording %d outcome(s) after %.0fs without a database; "
                         "those jobs will be put back and run again", len(batch), self.GIVE_UP)
            # Unknown to this worker from now on: its heartbeat puts them back.
            worker.forget(job for job, _ in batch)
            return
        except Exception as exc:
            if len(batch) == 1:
                recorded = self._fail_unrecordable(batch[0][0], exc)
            else:
                logger.warning("a batch of %d outcomes was refused (%s); recording them one "
                               "by one", len(batch), exc)
                recorded = set()
                for item in batch:
                    self._write_one(item, recorded)
        worker.forget(job for job, _ in batch)
        logger.debug("recorded %d outcome(s) in one batch", len(recorded))
        if len(recorded) < len(batch):
            lost = [job.id for job, _ in batch if job.id not in recorded]
            if worker.metrics is not None:
                worker.metrics.jobs_lost(len(lost))
            logger.warning("outcome of job(s) %s not recorded: the job is no longer this "
                           "worker's (rescued by the sweep, deleted, or changed by hand)",
                           ", ".join(map(str, lost)), extra={"job_id": lost[0]})

    def _write_one(self, item: tuple[Job, Settlement], recorded: set[int]) -> None:
        try:
            recorded |= self._with_retry("an outcome", self._record, [item])
        except UNREACHABLE:
            pass  # forgotten by the caller: the heartbeat puts it back
        except Exception as exc:
            recorded |= self._fail_unrecordable(item[0], exc)

    def _fail_unrecordable(self, job: Job, exc: Exception) -> set[int]:
        reason = f"pgwerk: the outcome of this attempt could not be recorded: {exc}"
        logger.error("job %s: %s", job.id, reason, extra={"job_id": job.id})
        try:
            return self._with_retry("a failure", self.store.fail_unrecordable,
                                    self.worker.id, job.id, job.attempts, reason)
        except Exception:
            logger.exception("job %s: could not record its failure either; it will be put "
                             "back", job.id, extra={"job_id": job.id})
            return set()

    def _record(self, batch: Outcomes) -> set[int]:
        """One transaction: the last progress of the attempts that reported lately, the
        outcomes, the dependents of the jobs that ended, and the next run of repeating
        jobs. Returns the ids whose outcome was written."""
        outcomes = _dumps([(job.id, job.attempts, s.status, s.result, s.error, s.delay,
                            s.waited, s.kind) for job, s in batch])
        progress = [(job.id, job.attempts, *s.progress) for job, s in batch
                    if s.progress is not None]
        next_runs: dict[int, JobSpec] = {}
        for job, s in batch:
            if s.status == "complete" and job.repeat is not None:
                spec = repeat_spec(job, self.store.serializer)
                if spec is not None:
                    next_runs[job.id] = spec
        batches = {job.batch_id for job, _ in batch if job.batch_id is not None}
        slots = {job.id: (job.queue, job.function) for job, _ in batch} \
            if self.worker.limited else None
        return self.store.record_outcomes(self.worker.id, OutcomeBatch(
            outcomes, next_runs, _dumps(progress) if progress else None, sorted(batches),
            slots))
