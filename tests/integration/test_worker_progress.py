"""``ctx.progress``: what a running job reports is on its row (``get_job``) while it runs, in
every pool; a handler reporting in a tight loop makes about one write a second, and the
last value lands; bad values fail the job with an error naming the argument."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pgwerk import Job, JobStatus, Werk
from tests import worker_jobs
from tests.helpers import eventually
from tests.worker_support import create_events_table, events, running_worker, wait_status

POOLS = ["thread", "fork", "process"]


def _progress_of(app: Werk, job: Job, fraction: float) -> Job | None:
    current = app.get_job(job.id)
    return current if current.progress == fraction else None


@pytest.mark.parametrize("pool", POOLS)
def test_progress__is_on_the_job_while_it_runs_and_the_last_value_stays(
        app: Werk, tmp_path: Path, pool: str) -> None:
    gate = tmp_path / "gate"
    with running_worker(app, pool=pool, concurrency=1):
        job = app.enqueue(worker_jobs.report_progress, str(gate))
        assert job is not None
        running = eventually(lambda: _progress_of(app, job, 0.4), timeout=15,
                             message="progress 0.4 on the running job")
        assert running.status is JobStatus.Active
        assert running.progress_message == "step 2 of 5"
        gate.touch()
        done = wait_status(app, job, JobStatus.Complete)
    assert (done.result, done.progress, done.progress_message) == ("reported", 1.0, "done")


def _log_progress_writes(app: Werk) -> None:
    """A trigger that records every write of a running job's progress (the worker's
    ``job_progress_many``; not the claim, which clears it, nor the outcome)."""
    schema = app.config.schema
    log, func = sql.Identifier(schema, "progress_writes"), sql.Identifier(schema, "log_progress")
    jobs = sql.Identifier(schema, f"{app.config.prefix}_jobs")
    with psycopg.connect(app.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (id bigserial, job_id bigint, progress float8, "
                             "message text)").format(log))
        conn.execute(sql.SQL(
            "CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "INSERT INTO {} (job_id, progress, message) "
            "VALUES (NEW.id, NEW.progress, NEW.progress_message); RETURN NEW; END $$"
        ).format(func, log))
        conn.execute(sql.SQL(
            "CREATE TRIGGER log_progress AFTER UPDATE OF progress, progress_message ON {} "
            "FOR EACH ROW WHEN (OLD.status IN ('active', 'aborting') "
            "AND NEW.status IN ('active', 'aborting')) EXECUTE FUNCTION {}()"
        ).format(jobs, func))


def _progress_writes(app: Werk, job: Job) -> list[tuple[float, str]]:
    log = sql.Identifier(app.config.schema, "progress_writes")
    with psycopg.connect(app.dsn, autocommit=True) as conn:
        rows = conn.execute(sql.SQL("SELECT progress, message FROM {} WHERE job_id = %s "
                                    "ORDER BY id").format(log), [job.id]).fetchall()
    return [(row[0], row[1]) for row in rows]


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_progress__reported_in_a_tight_loop_is_written_about_once_a_second(
        app: Werk, tmp_path: Path, pool: str) -> None:
    create_events_table(app)
    _log_progress_writes(app)
    gate = tmp_path / "gate"
    calls = 2000
    with running_worker(app, pool=pool, concurrency=1):
        job = app.enqueue(worker_jobs.report_progress_often, calls, str(gate))
        assert job is not None
        # The last report lands while the job still runs (the handler waits for the gate).
        running = eventually(lambda: _progress_of(app, job, 1.0), timeout=15,
                             message="the last report written")
        assert running.status is JobStatus.Active
        assert running.progress_message == f"{calls} of {calls}"
        gate.touch()
        wait_status(app, job, JobStatus.Complete)
    [reported] = events(app, "reported", job.id)
    writes = _progress_writes(app, job)
    assert writes[-1] == (1.0, f"{calls} of {calls}")
    # One write when the first report comes, then at most one a second: the reports took
    # `seconds`, so at most that many more, and one for the value left at the end (and,
    # should the attempt end before its worker knows that write done, that one again
    # with the outcome).
    assert 1 <= len(writes) <= 3 + int(reported["data"]["seconds"]), writes


def test_progress__a_new_attempt_starts_without_the_progress_of_the_last(app: Werk) -> None:
    with running_worker(app, concurrency=1):
        job = app.enqueue(worker_jobs.progress_then_fail_once, _retry=2)
        assert job is not None
        done = wait_status(app, job, JobStatus.Complete, JobStatus.Failed)
    assert (done.status, done.attempts) == (JobStatus.Complete, 2)
    assert done.result == [None, None]  # what the second attempt saw when it was claimed
    assert [run.outcome for run in app.get_executions(job.id)] == ["failed", "complete"]


@pytest.mark.parametrize(("fraction", "message", "expected"), [
    (True, None, "TypeError: ctx.progress(): fraction must be a real number from 0 to 1, "
                 "got True"),
    (1.5, None, "ValueError: ctx.progress(): fraction must be from 0 to 1, got 1.5"),
    (0.5, 7, "TypeError: ctx.progress(): message must be a string or None, got 7"),
    (0.5, "a\x00b", "ValueError: ctx.progress(): message must not contain a NUL character"),
])
def test_progress__a_bad_value_fails_the_job_naming_the_argument(
        app: Werk, fraction: object, message: object, expected: str) -> None:
    with running_worker(app, concurrency=1):
        job = app.enqueue(worker_jobs.report_bad_progress, fraction, message)
        assert job is not None
        failed = wait_status(app, job, JobStatus.Failed)
    assert expected in (failed.error or "")
    assert failed.progress is None
