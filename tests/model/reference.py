"""A small in-memory reference model of pgwerk's job lifecycle, for the model-based test.

It knows nothing of SQL: each method says, in plain Python, what one operation of the real
system (enqueue, claim, record an outcome, cancel, abort, requeue, a worker's heartbeat,
one sweep) does to the jobs, on a virtual clock. The state machine in
``test_job_lifecycle.py`` runs the same operation against PostgreSQL and compares.

Times are virtual seconds. The test moves the database's clock by shifting every stored
timestamp back, and only ever by multiples of ``STEP``; every duration the test uses is
chosen so that no threshold is within a few seconds of a multiple of ``STEP``. The real
time a test spends (well under a second per step) can therefore never tip a comparison
the model and the database would otherwise agree on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STEP = 25.0

TERMINAL = frozenset({"complete", "failed", "aborted", "expired"})
UNSTARTED = frozenset({"queued", "scheduled", "waiting"})
RUNNING = frozenset({"active", "aborting"})
REQUEUEABLE = frozenset({"failed", "aborted", "expired"})


@dataclass
class ModelJob:
    """What the model knows of one job row."""

    id: int
    queue: str
    priority: int
    group: str | None
    key: str | None
    parents: list[tuple[int, bool]]  # (upstream job id, allow_failure)
    max_attempts: int
    timeout: float | None
    heartbeat: float | None
    result_ttl: float | None
    failure_ttl: float | None
    failure_mode: str
    status: str
    due: float  # scheduled_at
    expires: float | None  # expires_at
    attempts: int = 0
    lost: int = 0
    owner: str | None = None  # worker_id
    started: float | None = None
    beat: float | None = None  # heartbeat_at
    purge: float | None = None  # purge_at
    has_dependents: bool = False


@dataclass
class ModelWorker:
    id: str
    queues: list[str]
    interval: float  # heartbeat_interval stored in the workers table
    beat: float  # heartbeat_at


@dataclass
class Model:
    """The reference model: jobs by id, the group table, the worker table, a clock."""

    max_active: float
    max_lost: int
    now: float = 0.0
    jobs: dict[int, ModelJob] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)  # group -> job holding it
    workers: dict[str, ModelWorker] = field(default_factory=dict)

    # -- enqueue -------------------------------------------------------------------------

    def key_taken(self, key: str | None) -> bool:
        return key is not None and any(j.key == key for j in self.jobs.values())

    def missing_parents(self, parents: list[tuple[int, bool]]) -> list[int]:
        return sorted({p for p, _ in parents if p not in self.jobs})

    def insert_status(self, parents: list[tuple[int, bool]], delay: float) -> str:
        """The status a new job starts in (its parents all exist)."""
        upstream = [(self.jobs[p].status, allow) for p, allow in parents]
        if any(status not in TERMINAL for status, _ in upstream):
            return "waiting"
        if any(status != "complete" and not allow for status, allow in upstream):
            return "failed"
        return "scheduled" if delay > 0 else "queued"

    def insert(self, job: ModelJob, delay: float, ttl: float | None) -> None:
        job.due = self.now + delay
        job.expires = None if ttl is None else self.now + ttl
        if job.status == "failed":
            job.purge = self._purge_time(job.failure_ttl)
        self.jobs[job.id] = job
        for parent, _ in job.parents:
            self.jobs[parent].has_dependents = True

    # -- claim ---------------------------------------------------------------------------

    def stage(self) -> int:
        due = [j for j in self.jobs.values() if j.status == "scheduled" and j.due <= self.now]
        for job in due:
            job.status = "queued"
        return len(due)

    def claim(self, worker_id: str, queues: list[str], limit: int) -> list[int]:
        """``job_claim`` with the priority strategy: the `limit` best runnable jobs, of which
        only the first of each free group enters."""
        runnable = sorted(
            (j for j in self.jobs.values()
             if j.status == "queued" and j.queue in queues
             and (j.expires is None or j.expires > self.now)
             and (j.group is None or j.group not in self.groups)),
            key=lambda j: (-j.priority, j.id))
        picked = runnable[:limit]
        claimed = []
        for job in picked:
            if job.group is not None:
                if job.group in self.groups:
                    continue
                self.groups[job.group] = job.id
            claimed.append(job)
        for job in claimed:
            job.status = "active"
            job.attempts += 1
            job.started = job.beat = self.now
            job.owner = worker_id
        return [j.id for j in claimed]

    # -- outcomes ------------------------------------------------------------------------

    def _purge_time(self, ttl: float | None) -> float | None:
        return None if ttl is None else self.now + ttl

    def _end(self, job: ModelJob, status: str) -> None:
        job.status = status
        ttl = job.result_ttl if status == "complete" else job.failure_ttl
        job.purge = self._purge_time(ttl)

    def _free_group(self, job: ModelJob) -> None:
        if job.group is not None and self.groups.get(job.group) == job.id:
            del self.groups[job.group]

    def record(self, worker_id: str, job_id: int, attempt: int, status: str,
               delay: float) -> bool:
        """``job_complete_many`` for one outcome (plus the dependents it settles).
        Returns whether it was recorded: only the owner of that very attempt may."""
        job = self.jobs.get(job_id)
        if (job is None or job.status not in RUNNING or job.owner != worker_id
                or job.attempts != attempt):
            return False
        self._free_group(job)
        settles_dependents = status not in ("queued", "scheduled") and job.has_dependents
        if status == "deleted":
            del self.jobs[job_id]
        elif status in ("queued", "scheduled"):
            job.status = status
            if status == "scheduled":
                job.due = self.now + delay
        else:
            self._end(job, status)
        if settles_dependents:
            self.resolve([job_id])
        return True

    # -- dependents ----------------------------------------------------------------------

    def _resolve_step(self, ids: list[int] | None) -> list[ModelJob]:
        """``deps_resolve``: promote or fail the waiting dependents of ``ids`` (all waiting
        jobs when None) whose dependencies have all ended. A missing row counts as not
        complete."""
        wanted = None if ids is None else set(ids)
        changed = []
        for job in sorted(self.jobs.values(), key=lambda j: j.id):
            if job.status != "waiting":
                continue
            if wanted is not None and not any(p in wanted for p, _ in job.parents):
                continue
            upstream = [(self.jobs[p].status if p in self.jobs else None, allow)
                        for p, allow in job.parents]
            if not all(s is None or s in TERMINAL for s, _ in upstream):
                continue
            if any(s != "complete" and not allow for s, allow in upstream):
                self._end(job, "failed")
            else:
                job.status = "scheduled" if job.due > self.now else "queued"
            changed.append(job)
        return changed

    def resolve(self, ids: list[int]) -> int:
        """``Werk.resolve_dependents``: down the chain of failures."""
        total = 0
        while ids:
            rows = self._resolve_step(ids)
            total += len(rows)
            ids = [j.id for j in rows if j.status == "failed" and j.has_dependents]
        return total

    # -- management ----------------------------------------------------------------------

    def cancel(self, job_id: int) -> bool:
        job = self.jobs[job_id]
        if job.status not in UNSTARTED:
            return False
        self._end(job, "aborted")
        if job.has_dependents:
            self.resolve([job_id])
        return True

    def abort(self, job_id: int) -> bool:
        if self.cancel(job_id):
            return True
        job = self.jobs[job_id]
        if job.status != "active":
            return False
        job.status = "aborting"
        return True

    def requeue(self, job_id: int) -> bool:
        job = self.jobs[job_id]
        if job.status not in REQUEUEABLE:
            return False
        # A dependent whose upstream jobs have not all ended waits for them again.
        pending = any(self.jobs[p].status not in TERMINAL for p, _ in job.parents
                      if p in self.jobs)
        job.status = "waiting" if pending else "queued"
        job.due = self.now
        job.started = job.purge = job.expires = None
        job.owner = None
        job.max_attempts = job.attempts - job.lost + 1
        return True

    # -- workers -------------------------------------------------------------------------

    def register(self, worker: ModelWorker) -> None:
        worker.beat = self.now
        self.workers[worker.id] = worker

    def heartbeat(self, worker_id: str, job_ids: list[int]) -> tuple[set[int], set[int]]:
        """``job_heartbeat_many``: renew the worker and the given jobs it owns; return the
        jobs it owns and those of them asked to abort."""
        self.workers[worker_id].beat = self.now
        held = {j.id for j in self.jobs.values() if j.owner == worker_id and j.status in RUNNING}
        for job_id in job_ids:
            if job_id in held:
                self.jobs[job_id].beat = self.now
        aborting = {i for i in held if self.jobs[i].status == "aborting"}
        return held, aborting

    # -- the sweep -----------------------------------------------------------------------

    def _is_orphan(self, job: ModelJob) -> bool:
        worker = self.workers.get(job.owner or "")
        if worker is None or self.now - worker.beat > 2 * worker.interval + 1:
            return True
        assert job.started is not None and job.beat is not None
        if job.heartbeat is not None:
            return self.now - job.beat > 3 * job.heartbeat
        limit = self.max_active if job.timeout is None else max(self.max_active,
                                                                job.timeout + 60)
        return self.now - job.started > limit

    def sweep(self) -> dict[str, int]:
        """One pass of ``run_sweep``: rescue, expire, resolve waiting, prune."""
        counts = {"rescued": 0, "expired": 0, "resolved": 0, "pruned": 0}
        rescued = [j for j in sorted(self.jobs.values(), key=lambda j: j.id)
                   if j.status in RUNNING and self._is_orphan(j)]
        for job in rescued:
            job.lost += 1
            if job.status == "aborting":
                self._end(job, "aborted")
            elif job.lost > self.max_lost:
                self._end(job, "failed")
            else:
                job.status = "queued"
            job.owner = None
        counts["rescued"] = len(rescued)
        self.resolve([j.id for j in rescued if j.status != "queued" and j.has_dependents])
        for group, holder in list(self.groups.items()):
            if holder not in self.jobs or self.jobs[holder].status not in RUNNING:
                del self.groups[group]

        expired = [j for j in sorted(self.jobs.values(), key=lambda j: j.id)
                   if j.status in UNSTARTED and j.expires is not None and j.expires < self.now]
        for job in expired:
            self._end(job, "expired")
        counts["expired"] = len(expired)
        self.resolve([j.id for j in expired if j.has_dependents])

        rows = self._resolve_step(None)
        counts["resolved"] = len(rows) + self.resolve(
            [j.id for j in rows if j.status == "failed" and j.has_dependents])

        pruned = [i for i, j in self.jobs.items() if j.purge is not None and j.purge < self.now]
        for job_id in pruned:
            del self.jobs[job_id]
        counts["pruned"] = len(pruned)
        return counts
