"""Model-based test of the job lifecycle: random sequences of operations run against the
real schema and statements, compared after every step with the reference model
(``tests/model/reference.py``), and checked against the queue's invariants.

Operations: enqueue with random options (queue, priority, delay, retry, timeout,
heartbeat, group, key, depends_on, ttl, retention, failure mode); a worker's claim and the
outcome of an attempt (success, error, timeout, aborted), through the worker's own claim
and completion-writer code; cancel, abort and requeue through ``Werk``; a worker that
vanishes without a word (its claimed jobs stay active, its heartbeat gets old); a worker
whose heartbeats stop getting through for a while, and that reports its jobs late; one
sweep; moving the clock (every stored timestamp shifted back, as the statements use
``now()``).

Invariants: no job is lost; no ended job comes back except by ``requeue_job``; attempts
never decrease; an active job has at most one owner, and only that owner's outcome is
recorded; a group never has two active jobs; a dependent never starts before all its
parents ended; and at the end, with workers that keep working, every job ends.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

import psycopg
import pytest
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from psycopg import sql
from psycopg.rows import dict_row

from pgwerk import Dependency, Job, Retry, Werk, Worker
from pgwerk._execute import ABORTED, ERROR, SUCCESS, TIMEOUT, Outcome, settle
from pgwerk.exceptions import JobNotFound
from tests.conftest import MakeApp
from tests.helpers import table
from tests.model.reference import (
    RUNNING,
    STEP,
    TERMINAL,
    Model,
    ModelJob,
    ModelWorker,
)

FUNCTION = "tests.jobs.noop"
#: The workers' heartbeat interval: one silent for 2 * 7 + 1 = 15 s is presumed dead.
WORKER_BEAT = 7.0
#: An active job without a heartbeat is presumed lost after this (or its timeout + 60 s).
MAX_ACTIVE = 310.0
#: The queues each of the three worker slots takes jobs from.
SLOT_QUEUES = (["default"], ["default", "other"], ["other"])
SHORT_RETENTION = 60.0
#: Shrinking a failing sequence of real database steps can take many minutes: by default a
#: failure is reported as found; PGWERK_MODEL_SHRINK=1 asks for the smallest sequence.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate] + (
    [Phase.shrink] if os.environ.get("PGWERK_MODEL_SHRINK") else [])

# Durations are chosen away from multiples of STEP (see reference.py): a delay of 40 s is
# due after two steps, a ttl of 60 s lapses after three, a job heartbeat of 5 s lapses
# after one step (15 s), one of 30 s after four (90 s), a timeout of 280 s moves the
# max_active limit to 340 s.
OPTIONS = st.fixed_dictionaries({
    "queue": st.sampled_from(["default", "other"]),
    "priority": st.sampled_from([0, 0, 5, -1]),
    "delay": st.sampled_from([None, 0, 40, 110]),
    "retry": st.sampled_from([None, 2, 3, Retry(max=2, intervals=40)]),
    "timeout": st.sampled_from([None, 10, 280]),
    "heartbeat": st.sampled_from([None, None, 5, 30]),
    "group": st.sampled_from([None, None, "g1", "g2"]),
    "key": st.sampled_from([None, None, None, "k1", "k2"]),
    "ttl": st.sampled_from([None, None, 60, 160]),
    "result_ttl": st.sampled_from([None, SHORT_RETENTION]),
    "failure_ttl": st.sampled_from([None, SHORT_RETENTION]),
    "failure_mode": st.sampled_from(["hold", "hold", "delete"]),
})
PARENTS = st.lists(st.tuples(st.integers(0, 10**6), st.booleans()), max_size=2)
OUTCOMES = {
    "success": Outcome(SUCCESS, result="null"),
    "error": Outcome(ERROR, error="ValueError: boom"),
    "timeout": Outcome(TIMEOUT, error="JobTimeout: the job exceeded its timeout"),
    "aborted": Outcome(ABORTED, error="JobAborted: aborted on request"),
}


@dataclass
class Slot:
    """A worker of the test: the real ``Worker`` object (never started; the test drives
    its claim and completion code) and the attempts it holds in hand."""

    worker: Worker
    hand: list[Job] = field(default_factory=list)
    beating: bool = True  # False while stalled: its heartbeats do not get through


class JobLifecycle(RuleBasedStateMachine):
    app: ClassVar[Werk]
    conn: ClassVar[psycopg.Connection[dict[str, Any]]]

    def __init__(self) -> None:
        super().__init__()
        self.app.truncate()
        self.model = Model(max_active=MAX_ACTIVE, max_lost=self.app.config.max_lost)
        self.ever: list[int] = []  # every job id enqueued, deleted ones included
        self.options: dict[int, dict[str, Any]] = {}
        self.slots = [self._new_worker(i) for i in range(len(SLOT_QUEUES))]
        # What the invariants compare with: the rows after the previous step.
        self.rows: dict[int, dict[str, Any]] = {}
        self.ended_once: set[int] = set()
        self.requeued: set[int] = set()  # by requeue_job in the current step
        self.requeued_ever: set[int] = set()

    # -- plumbing ------------------------------------------------------------------------

    def _new_worker(self, slot: int) -> Slot:
        worker = Worker(self.app, queues=SLOT_QUEUES[slot], heartbeat_interval=WORKER_BEAT,
                        name=f"slot{slot}")
        worker._register()
        self.model.register(ModelWorker(worker.id, list(worker.queues), WORKER_BEAT, 0.0))
        return Slot(worker)

    def _sql(self, statement: str, params: Any = None) -> list[dict[str, Any]]:
        composed = sql.SQL(statement).format(
            jobs=table(self.app), workers=table(self.app, "workers"),
            job_groups=table(self.app, "job_groups"))
        cur = self.conn.execute(composed, params)
        return cur.fetchall() if cur.description else []

    def _pick(self, index: int) -> int:
        return self.ever[index % len(self.ever)]

    # -- operations ----------------------------------------------------------------------

    @rule(options=OPTIONS, parents=PARENTS)
    def enqueue(self, options: dict[str, Any], parents: list[tuple[int, bool]]) -> None:
        chosen: dict[int, bool] = {}
        for index, allow in parents:
            if self.ever:
                chosen.setdefault(self._pick(index), allow)
        deps = list(chosen.items())
        kwargs = {f"_{name}": value for name, value in options.items() if value is not None}
        if deps:
            kwargs["_depends_on"] = [Dependency(p, allow_failure=a) for p, a in deps]
        if self.model.missing_parents(deps):
            count = len(self._sql("SELECT id FROM {jobs}"))
            with pytest.raises(ValueError, match="do not exist"):
                self.app.enqueue(FUNCTION, **kwargs)
            assert len(self._sql("SELECT id FROM {jobs}")) == count, "a refused enqueue wrote"
            return
        job = self.app.enqueue(FUNCTION, **kwargs)
        if self.model.key_taken(options["key"]):
            assert job is None, f"key {options['key']!r} is taken, yet a job was written"
            return
        assert job is not None
        delay = float(options["delay"] or 0)
        status = self.model.insert_status(deps, delay)
        assert job.status.value == status
        retry = options["retry"]
        config = self.app.config
        self.model.insert(ModelJob(
            id=job.id, queue=options["queue"], priority=options["priority"],
            group=options["group"], key=options["key"], parents=deps,
            max_attempts=retry.max if isinstance(retry, Retry) else (retry or 1),
            timeout=options["timeout"], heartbeat=options["heartbeat"],
            result_ttl=options["result_ttl"] or config.result_ttl,
            failure_ttl=options["failure_ttl"] or config.failure_ttl,
            failure_mode=options["failure_mode"], status=status, due=0.0, expires=None,
        ), delay, options["ttl"])
        self.ever.append(job.id)
        self.options[job.id] = options

    @rule(slot=st.integers(0, len(SLOT_QUEUES) - 1), limit=st.integers(1, 3))
    def claim(self, slot: int, limit: int) -> None:
        self._claim(slot, limit)

    def _claim(self, slot: int, limit: int) -> list[Job]:
        """What the worker's loop does: stage due jobs, then claim up to ``limit``."""
        holder = self.slots[slot]
        holder.worker._stage()
        self.model.stage()
        expected = self.model.claim(holder.worker.id, holder.worker.queues, limit)
        claimed = holder.worker._claim(limit)
        assert [j.id for j in claimed] == expected
        for job in claimed:
            self._check_parents_ended(job)
        holder.hand.extend(claimed)
        return claimed

    def _check_parents_ended(self, job: Job) -> None:
        """A dependent never starts before every parent ended, nor after a parent it
        needs to complete ended otherwise (unless it was requeued by hand since)."""
        for parent, allow in self.model.jobs[job.id].parents:
            assert parent in self.ended_once, (
                f"job {job.id} started before its parent {parent} ever ended")
            row = self.rows.get(parent)
            if row is not None and row["status"] in TERMINAL - {"complete"} and not allow:
                assert job.id in self.requeued_ever, (
                    f"job {job.id} started although its parent {parent} ended {row['status']}")

    @precondition(lambda self: any(s.hand for s in self.slots))
    @rule(slot=st.integers(0, 10**6), pick=st.integers(0, 10**6),
          kind=st.sampled_from(sorted(OUTCOMES)))
    def finish(self, slot: int, pick: int, kind: str) -> None:
        """One attempt in a worker's hand ends; its outcome goes through the worker's
        completion writer."""
        busy = [s for s in self.slots if s.hand]
        holder = busy[slot % len(busy)]
        job = holder.hand.pop(pick % len(holder.hand))
        self._finish(holder, job, kind)

    def _finish(self, holder: Slot, job: Job, kind: str) -> None:
        current = self.model.jobs.get(job.id)
        if kind == "aborted" and (current is None or current.status != "aborting"):
            kind = "error"  # a handler is interrupted only when asked to abort
        settlement = settle(job, OUTCOMES[kind])
        self.model.record(holder.worker.id, job.id, job.attempts, settlement.status,
                          settlement.delay)
        holder.worker._completions._record([(job, settlement)])

    @precondition(lambda self: self.ever)
    @rule(pick=st.integers(0, 10**6),
          action=st.sampled_from(["cancel", "abort", "abort", "requeue", "requeue"]))
    def manage(self, pick: int, action: str) -> None:
        """``cancel_job``, ``abort_job`` or ``requeue_job`` on any job ever enqueued."""
        job_id = self._pick(pick)
        call = {"cancel": self.app.cancel_job, "abort": self.app.abort_job,
                "requeue": self.app.requeue_job}[action]
        if job_id not in self.model.jobs:
            with pytest.raises(JobNotFound):
                call(job_id)
            return
        predict = {"cancel": self.model.cancel, "abort": self.model.abort,
                   "requeue": self.model.requeue}[action]
        expected = predict(job_id)
        assert call(job_id) == expected, f"{action}_job({job_id})"
        if action == "requeue" and expected:
            self.requeued.add(job_id)
            self.requeued_ever.add(job_id)

    @rule(slot=st.integers(0, len(SLOT_QUEUES) - 1))
    def crash(self, slot: int) -> None:
        """The worker vanishes without a word: its row and its active jobs stay as they
        are, and it never heartbeats again. A new worker takes its place."""
        self.slots[slot] = self._new_worker(slot)

    @rule(slot=st.integers(0, len(SLOT_QUEUES) - 1))
    def stall(self, slot: int) -> None:
        """The worker's heartbeats stop getting through for a while (a long pause, a
        network partition) and a sweep runs meanwhile; the worker keeps its jobs in hand
        and reports them later, when they may belong to someone else."""
        holder = self.slots[slot]
        holder.beating = False
        self.advance(1)
        self.check()
        self.sweep()
        holder.beating = True

    @rule()
    def sweep(self) -> None:
        expected = self.model.sweep()
        counts = self.app.sweep()
        assert {name: counts[name] for name in expected} == expected

    @rule(steps=st.sampled_from([1, 1, 2, 4, 13]))
    def advance(self, steps: int) -> None:
        """Time passes: every stored time moves back, and the living workers heartbeat
        (renewing their jobs that have ``_heartbeat``), as they would have meanwhile."""
        self._shift(steps * STEP)
        for holder in self.slots:
            if not holder.beating:
                continue
            beating = sorted({j.id for j in holder.hand if j.heartbeat})
            row = self.app._store.fetch("job_heartbeat_many",
                                 {"worker": holder.worker.id, "job_ids": beating})[0]
            held, aborting = self.model.heartbeat(holder.worker.id, beating)
            assert row["registered"] == 1
            in_database = {int(item.split(":")[0]) for item in row["held"]}  # "id:attempt"
            assert (in_database, set(row["aborting"])) == (held, aborting)

    def _shift(self, seconds: float) -> None:
        by = timedelta(seconds=seconds)
        self._sql(
            "UPDATE {jobs} SET scheduled_at = scheduled_at - %(by)s,"
            " enqueued_at = enqueued_at - %(by)s, started_at = started_at - %(by)s,"
            " completed_at = completed_at - %(by)s, heartbeat_at = heartbeat_at - %(by)s,"
            " expires_at = expires_at - %(by)s, purge_at = purge_at - %(by)s", {"by": by})
        self._sql("UPDATE {workers} SET started_at = started_at - %(by)s,"
                  " heartbeat_at = heartbeat_at - %(by)s", {"by": by})
        self.model.now += seconds

    # -- what must always hold ---------------------------------------------------------------

    @invariant()
    def database_matches_the_model_and_the_invariants_hold(self) -> None:
        self.check()

    def check(self) -> None:
        rows = {r["id"]: r for r in self._sql(
            "SELECT id, status, attempts, lost, worker_id, group_key FROM {jobs}")}
        self._check_invariants(rows)
        self._check_model(rows)
        for job_id, row in rows.items():
            if row["status"] in TERMINAL:
                self.ended_once.add(job_id)
        self.ended_once.update(set(self.rows) - set(rows))
        self.rows = rows
        self.requeued = set()

    def _check_invariants(self, rows: dict[int, dict[str, Any]]) -> None:
        for job_id, before in self.rows.items():
            after = rows.get(job_id)
            options = self.options[job_id]
            if after is None:  # gone: past its retention, or failure_mode="delete"
                short = options["result_ttl"] if before["status"] == "complete" \
                    else options["failure_ttl"]
                assert (before["status"] in TERMINAL and short is not None) or (
                    before["status"] in RUNNING and options["failure_mode"] == "delete"), (
                    f"job {job_id} vanished (was {before['status']})")
                continue
            if before["status"] in TERMINAL and after["status"] not in TERMINAL:
                assert job_id in self.requeued, (
                    f"job {job_id} came back from {before['status']} to {after['status']}")
            assert after["attempts"] >= before["attempts"], f"job {job_id}: attempts went down"
        active_groups: dict[str, int] = {}
        for job_id, row in rows.items():
            if row["status"] not in RUNNING:
                continue
            owners = [s.worker.id for s in self.slots for j in s.hand
                      if j.id == job_id and j.attempts == row["attempts"]]
            assert len(owners) <= 1, f"job {job_id} has owners {owners}"
            assert owners in ([], [row["worker_id"]]), (
                f"job {job_id} is held by {owners}, the database says {row['worker_id']}")
            group = row["group_key"]
            if group is not None:
                assert group not in active_groups, (
                    f"jobs {active_groups[group]} and {job_id} of group {group} both active")
                active_groups[group] = job_id

    def _check_model(self, rows: dict[int, dict[str, Any]]) -> None:
        model = self.model.jobs
        assert sorted(rows) == sorted(model), "the jobs in the database are not the model's"
        for job_id, row in rows.items():
            want = model[job_id]
            found = (row["status"], row["attempts"], row["lost"])
            assert found == (want.status, want.attempts, want.lost), f"job {job_id}"
            if want.status in RUNNING:
                assert row["worker_id"] == want.owner, f"job {job_id}: owner"
        groups = {r["group_key"]: r["job_id"] for r in self._sql(
            "SELECT group_key, job_id FROM {job_groups}")}
        assert groups == self.model.groups

    # -- the end: keep working until every job ended -----------------------------------------

    def teardown(self) -> None:
        """Workers that vanish and come back, a sweep, and workers that finish everything
        they claim, round after round: every job must end within a few rounds."""
        for _ in range(10):
            if all(j.status in TERMINAL for j in self.model.jobs.values()):
                return
            for slot in range(len(self.slots)):
                self.crash(slot)
            self.advance(16)  # 400 s: past every delay, ttl, heartbeat and max_active
            self.check()
            self.sweep()
            self.check()
            for slot, holder in enumerate(self.slots):
                while self._claim(slot, 3):
                    self.check()
                    while holder.hand:
                        self._finish(holder, holder.hand.pop(0), "success")
                        self.check()
        stuck = {i: j.status for i, j in self.model.jobs.items() if j.status not in TERMINAL}
        assert not stuck, f"jobs never ended: {stuck}"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_job_lifecycle__matches_the_reference_model(make_app: MakeApp) -> None:
    app = make_app(max_active_secs=MAX_ACTIVE).connect()
    with psycopg.connect(app.dsn, autocommit=True, row_factory=dict_row) as conn:
        JobLifecycle.app = app
        JobLifecycle.conn = conn
        run_state_machine_as_test(JobLifecycle, settings=settings(
            max_examples=80, stateful_step_count=40, deadline=None, derandomize=True,
            database=None, print_blob=False, phases=PHASES))
