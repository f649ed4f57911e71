"""``_unique``: while a matching job holds its key, enqueue returns that job and writes
nothing; the database's partial unique index decides, also between processes racing."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import psycopg2
import pytest
from click.testing import CliRunner

from pgwerk import (
    Dependency,
    EnqueueParams,
    Job,
    JobStatus,
    Repeat,
    Retry,
    Unique,
    Werk,
)
from pgwerk.aio import AsyncWerk
from pgwerk.cli import cli
from pgwerk.dashboard import Dashboard
from tests import jobs
from tests.conftest import MakeApp
from tests.helpers import (
    count_rows,
    enqueue_unique_in_child,
    eventually,
    make_job,
    query,
    set_columns,
)
from tests.integration.dashboard_client import Client
from tests.worker_support import running_worker, wait_status

UNENDED = ("scheduled", "queued", "waiting", "active", "aborting")


def rows(app: Werk) -> list[dict[str, Any]]:
    return query(app, "SELECT id, status, unique_key, unique_states FROM {jobs} ORDER BY id")


# -- one process -------------------------------------------------------------------------------


def test_enqueue_unique__a_second_enqueue_returns_the_job_that_holds_the_key(app: Werk) -> None:
    first = app.enqueue(jobs.add, 1, 2, _unique=True)
    again = app.enqueue("tests.jobs.add", 1, 2, _unique=True)
    assert isinstance(first, Job) and isinstance(again, Job)
    assert again.id == first.id and again.args == (1, 2)
    assert again.status is JobStatus.Queued
    assert count_rows(app) == 1


def test_enqueue_unique__get_job_shows_the_key_and_its_statuses(app: Werk) -> None:
    job = app.enqueue(jobs.add, 1, 2, _unique=True)
    assert job is not None
    found = app.get_job(job.id)
    assert found.unique_key == job.unique_key and len(found.unique_key or "") == 64
    assert found.unique_states == UNENDED
    assert app.get_job(app.enqueue(jobs.add, 1, 2).id).unique_key is None  # type: ignore[union-attr]


def test_enqueue_unique__the_dashboard_and_the_cli_show_the_key(app: Werk) -> None:
    job = app.enqueue(jobs.add, 1, 2, _unique=Unique(period=60))
    assert job is not None and job.unique_key is not None
    page = Client(Dashboard(app)).get(f"/jobs/{job.id}").text
    assert f"<code>{job.unique_key}</code>" in page
    assert "held while scheduled, queued, waiting, active, aborting" in page
    shown = CliRunner(env={"COLUMNS": "200"}).invoke(
        cli, ["job", "--dsn", app.dsn, "--schema", app.config.schema, str(job.id)])
    assert f"unique key:     {job.unique_key} (held while scheduled," in shown.stdout
    plain = app.enqueue(jobs.add, 1, 2)
    assert plain is not None
    assert "unique key" not in Client(Dashboard(app)).get(f"/jobs/{plain.id}").text


def test_enqueue_unique__other_arguments_queue_or_function_make_other_jobs(app: Werk) -> None:
    ids = {j.id for j in (  # type: ignore[union-attr]
        app.enqueue(jobs.add, 1, 2, _unique=True), app.enqueue(jobs.add, 1, 3, _unique=True),
        app.enqueue(jobs.add, a=1, b=2, _unique=True),
        app.enqueue(jobs.add, 1, 2, _unique=True, _queue="other"),
        app.enqueue(jobs.echo, 1, 2, _unique=True))}
    assert len(ids) == 5 and count_rows(app) == 5


def test_enqueue_unique__the_job_that_holds_the_key_is_returned_as_it_is(app: Werk) -> None:
    by_function = Unique(by="function")
    first = app.enqueue(jobs.echo, 1, _unique=by_function, _priority=5, _meta={"v": 1})
    again = app.enqueue(jobs.echo, 2, _unique=by_function, _priority=9, _queue="other")
    assert first is not None and again is not None
    assert (again.id, again.args, again.priority, again.queue, again.meta) == (
        first.id, (1,), 5, "default", {"v": 1})


def test_enqueue_unique__by_one_keyword_argument(app: Werk) -> None:
    by_user = Unique(by=("function", "kwargs:user_id"))
    first = app.enqueue(jobs.echo, user_id=7, note="a", _unique=by_user)
    assert first is not None
    assert app.enqueue(jobs.echo, user_id=7, note="b", _unique=by_user).id == first.id  # type: ignore[union-attr]
    assert app.enqueue(jobs.echo, user_id=8, _unique=by_user).id != first.id  # type: ignore[union-attr]
    assert count_rows(app) == 2


def test_enqueue_unique__plain_jobs_and_keys_are_not_affected(app: Werk) -> None:
    unique = app.enqueue(jobs.add, 1, 2, _unique=True)
    plain = [app.enqueue(jobs.add, 1, 2) for _ in range(2)]
    assert unique is not None and all(p is not None for p in plain)
    assert app.enqueue(jobs.add, 1, 2, _key="k") is not None
    assert app.enqueue(jobs.add, 1, 2, _key="k") is None
    assert count_rows(app) == 4


def test_enqueue_unique__a_job_that_ended_frees_the_key(app: Werk) -> None:
    first = app.enqueue(jobs.add, 1, 2, _unique=True)
    assert first is not None
    with running_worker(app):
        wait_status(app, first, "complete")
        again = app.enqueue(jobs.add, 1, 2, _unique=True)
        assert again is not None and again.id != first.id
        assert wait_status(app, again, "complete").result == 3
    assert count_rows(app) == 2


def test_enqueue_unique__with_complete_in_its_states_a_finished_job_still_holds_it(
        app: Werk) -> None:
    until_done = Unique(states=(*Unique.REQUIRED_STATES, "complete"))
    first = app.enqueue(jobs.add, 1, 2, _unique=until_done)
    assert first is not None
    with running_worker(app):
        wait_status(app, first, "complete")
    again = app.enqueue(jobs.add, 1, 2, _unique=until_done)
    assert again is not None and again.id == first.id
    assert again.status is JobStatus.Complete and again.result == 3
    # the default statuses make another key: a job that only dedupes unended ones
    assert app.enqueue(jobs.add, 1, 2, _unique=True).id != first.id  # type: ignore[union-attr]


def test_enqueue_unique__a_job_holds_its_key_through_retries(app: Werk) -> None:
    first = app.enqueue("tests.worker_jobs.fail_before_attempt", succeed_on=2, _retry=2,
                        _unique=True)
    assert first is not None
    with running_worker(app):
        done = wait_status(app, first, "complete", "failed")
    assert (done.status, done.attempts) == (JobStatus.Complete, 2)
    assert count_rows(app) == 1


@pytest.mark.parametrize("status", ["scheduled", "waiting", "active", "aborting"])
def test_enqueue_unique__every_unended_status_holds_the_key(app: Werk, status: str) -> None:
    first = make_job(app, "tests.jobs.add", args=(1, 2), options={"_unique": True},
                     status=status)
    assert app.enqueue(jobs.add, 1, 2, _unique=True).id == first.id  # type: ignore[union-attr]


@pytest.mark.parametrize("status", ["waiting", "aborting"])
def test_enqueue_unique__queued_scheduled_active_also_holds_it_waiting_and_aborting(
        app: Werk, status: str) -> None:
    named = Unique(by=("function", "args"), states=("queued", "scheduled", "active"),
                   period=3600)
    holder = make_job(app, "tests.jobs.add", args=(1, 2), options={"_unique": named},
                      status=status)
    assert app.enqueue(jobs.add, 1, 2, _unique=named).id == holder.id  # type: ignore[union-attr]
    assert count_rows(app) == 1


@pytest.mark.parametrize("status", ["complete", "failed", "aborted", "expired"])
def test_enqueue_unique__an_ended_status_holds_the_key_only_when_chosen(
        app: Werk, status: str) -> None:
    chosen = Unique(states=(*UNENDED, status))
    holder = make_job(app, "tests.jobs.add", args=(1, 2), options={"_unique": chosen},
                      status=status)
    other = make_job(app, "tests.jobs.add", args=(1, 2), options={"_unique": True},
                     status=status)
    assert app.enqueue(jobs.add, 1, 2, _unique=chosen).id == holder.id  # type: ignore[union-attr]
    assert app.enqueue(jobs.add, 1, 2, _unique=True).id not in (holder.id, other.id)  # type: ignore[union-attr]


def test_enqueue_unique__period_buckets_on_the_databases_clock(app: Werk) -> None:
    hourly = app.enqueue(jobs.add, 1, 2, _unique=Unique(period=3600))
    assert hourly is not None and hourly.unique_key is not None
    bucket = query(app, "SELECT floor(extract(epoch FROM enqueued_at) / 3600)::bigint AS b "
                        "FROM {jobs} WHERE id = %s", [hourly.id])[0]["b"]
    assert hourly.unique_key.endswith(f"@{bucket}")
    assert app.enqueue(jobs.add, 1, 2, _unique=True).id != hourly.id  # type: ignore[union-attr]

    first = app.enqueue(jobs.add, 1, 2, _unique=Unique(period=1))
    assert first is not None

    def a_new_bucket() -> Job | None:
        job = app.enqueue(jobs.add, 1, 2, _unique=Unique(period=1))
        assert job is not None
        return job if job.id != first.id else None

    second = eventually(a_new_bucket, timeout=5, interval=0.05, message="the next second")
    assert second.unique_key != first.unique_key
    assert app.get_job(first.id).status is JobStatus.Queued  # and still holds its own key
    assert count_rows(app) == 4


def test_enqueue_unique__with_dependencies_links_only_the_job_written(app: Werk) -> None:
    parent, other = app.enqueue(jobs.noop), app.enqueue(jobs.noop)
    assert parent is not None and other is not None
    first = app.enqueue(jobs.add, 1, 2, _unique=True, _depends_on=parent)
    again = app.enqueue(jobs.add, 1, 2, _unique=True, _depends_on=Dependency(other))
    assert first is not None and again is not None and again.id == first.id
    assert first.status is JobStatus.Waiting
    assert [d["id"] for d in app.get_job_dependencies(first.id)] == [parent.id]


def test_enqueue_unique__bad_values_are_refused_and_write_nothing(app: Werk) -> None:
    cases: list[tuple[Callable[[], Any], type, str]] = [
        (lambda: app.enqueue(jobs.noop, _unique=1), TypeError, "_unique must be"),
        (lambda: app.enqueue(jobs.noop, _unique="yes"), TypeError, "_unique must be"),
        (lambda: app.enqueue(jobs.noop, _unique=True, _key="k"), ValueError,
         "_key and _unique cannot be used together"),
        (lambda: app.enqueue(jobs.noop, _unique=Unique(states=("queued",))), ValueError,
         "Unique.states must include"),
        (lambda: app.enqueue(jobs.echo, {1: 2, "a": 3}, _unique=True), TypeError,
         "_unique by function, queue, args"),
        (lambda: app.enqueue_many([EnqueueParams(jobs.noop, unique=True),
                                   EnqueueParams(jobs.noop, unique=3)]), TypeError,
         "_unique must be"),
    ]
    for call, error, words in cases:
        with pytest.raises(error, match=words):
            call()
    assert count_rows(app) == 0


def test_enqueue_unique__repeat_runs_do_not_carry_the_key(app: Werk) -> None:
    first = app.enqueue(jobs.noop, _unique=True, _repeat=Repeat(times=1, interval=0))
    assert first is not None
    with running_worker(app):
        wait_status(app, first, "complete")
        eventually(lambda: count_rows(app) == 2, message="the repeat run written")
    keys = [r["unique_key"] for r in rows(app)]
    assert keys[0] == first.unique_key and keys[1] is None


def test_enqueue_unique__the_row_is_what_the_plain_insert_writes(app: Werk) -> None:
    """The unique insert is its own statement: the same options make the same row."""
    options: dict[str, Any] = dict(
        _queue="q", _priority=3, _delay=30, _retry=Retry(max=3, intervals=[1, 2]),
        _timeout=5, _heartbeat=2, _group="g", _meta={"a": 1}, _ttl=60, _result_ttl=10,
        _failure_ttl=20, _failure_mode="delete", _on_success=jobs.on_done,
        _repeat=Repeat(times=1, interval=1))
    plain, unique = app.enqueue(jobs.echo, 1, **options), app.enqueue(
        jobs.echo, 1, _unique=True, **options)
    assert plain is not None and unique is not None
    written = query(app, """
        SELECT to_jsonb(j) - ARRAY['id', 'unique_key', 'unique_states', 'scheduled_at',
                                   'enqueued_at', 'expires_at'] AS rest,
               scheduled_at - enqueued_at AS delay, expires_at - enqueued_at AS ttl
        FROM {jobs} j ORDER BY id""")
    assert written[0] == written[1]
    assert query(app, "SELECT count(*) AS n FROM {jobs} WHERE status = 'failed'")[0]["n"] == 0
    # and a job whose dependency failed starts failed, in both
    parent = make_job(app, status="failed")
    broken = [app.enqueue(jobs.echo, 2, _depends_on=parent, **u) for u in ({}, {"_unique": True})]
    assert [j.status for j in broken if j] == [JobStatus.Failed, JobStatus.Failed]


# -- requeue --------------------------------------------------------------------------------


def test_requeue__a_unique_job_stays_ended_while_another_holds_its_key(app: Werk) -> None:
    old = make_job(app, "tests.jobs.add", args=(1, 2), options={"_unique": True},
                   status="failed", attempts=1)
    newer = app.enqueue(jobs.add, 1, 2, _unique=True)
    assert newer is not None and newer.id != old.id
    assert app.requeue_job(old.id) is False
    assert app.get_job(old.id).status is JobStatus.Failed
    why = f"job {old.id} is failed, but another job holds its unique key"
    client = Client(Dashboard(app))
    assert why in client.follow(client.submit("/jobs", f"/jobs/{old.id}/retry")).text
    shown = CliRunner().invoke(cli, ["retry", "--dsn", app.dsn, "--schema", app.config.schema,
                                     str(old.id)])
    assert shown.exit_code == 1 and why in shown.output
    set_columns(app, newer.id, status="complete")
    assert app.requeue_job(old.id) is True
    assert app.get_job(old.id).status is JobStatus.Queued
    assert app.enqueue(jobs.add, 1, 2, _unique=True).id == old.id  # type: ignore[union-attr]


def test_requeue__of_several_ended_jobs_with_one_key_only_the_newest_comes_back(
        app: Werk) -> None:
    ended = [make_job(app, "tests.jobs.add", args=(1, 2), options={"_unique": True},
                      status="failed", attempts=1) for _ in range(3)]
    plain = make_job(app, "tests.jobs.add", args=(1, 2), status="failed", attempts=1)
    assert app.bulk_requeue_jobs(statuses=["failed"]) == 2
    assert [(r["id"], r["status"]) for r in rows(app)] == [
        (ended[0].id, "failed"), (ended[1].id, "failed"), (ended[2].id, "queued"),
        (plain.id, "queued")]


def test_requeue__a_holder_committed_while_the_requeue_waited_keeps_the_job_ended(
        make_app: MakeApp) -> None:
    app = make_app(application_name=f"race-{uuid.uuid4().hex[:8]}").connect()
    old = make_job(app, "tests.jobs.add", args=(1, 2), options={"_unique": True},
                   status="failed", attempts=1)
    out: list[bool] = []
    with psycopg.connect(app.dsn) as conn:
        holder = app.enqueue(jobs.add, 1, 2, _unique=True, _conn=conn)
        thread = threading.Thread(target=lambda: out.append(app.requeue_job(old.id)))
        thread.start()  # its update waits for this transaction: it cannot see the holder
        wait_for_lock(app)
    thread.join(timeout=10)
    assert holder is not None and out == [False]
    assert [(r["id"], r["status"]) for r in rows(app)] == [(old.id, "failed"),
                                                          (holder.id, "queued")]


def test_requeue__a_failed_job_that_holds_its_key_comes_back(app: Werk) -> None:
    with_failed = Unique(states=(*UNENDED, "failed"))
    job = make_job(app, "tests.jobs.add", args=(1, 2), options={"_unique": with_failed},
                   status="failed", attempts=1)
    assert app.enqueue(jobs.add, 1, 2, _unique=with_failed).id == job.id  # type: ignore[union-attr]
    assert app.requeue_job(job.id) is True


# -- enqueue_many ------------------------------------------------------------------------------


def test_enqueue_many__two_identical_unique_jobs_make_one_row(app: Werk) -> None:
    same = EnqueueParams(jobs.add, (1, 2), unique=True)
    first, second = app.enqueue_many([same, same])
    assert first is not None and second is not None and first.id == second.id
    assert count_rows(app) == 1


def test_enqueue_many__unique_plain_and_keyed_jobs_in_one_list(app: Werk,
                                                               statements: list[bytes]) -> None:
    held = app.enqueue(jobs.add, 9, 9, _unique=True)
    assert held is not None
    statements.clear()
    result = app.enqueue_many([
        EnqueueParams(jobs.add, (1, 2), unique=True), EnqueueParams(jobs.add, (1, 2)),
        EnqueueParams(jobs.add, (1, 2), key="k"), EnqueueParams(jobs.add, (1, 2), unique=True),
        EnqueueParams(jobs.add, (1, 2), key="k"), EnqueueParams(jobs.add, (9, 9), unique=True),
    ])
    assert statements == [app._store.queries["job_insert_unique"]]
    ids = [j.id if j else None for j in result]
    assert ids[0] == ids[3] and ids[5] == held.id and ids[4] is None
    assert len({ids[0], ids[1], ids[2], held.id}) == 4
    assert count_rows(app) == 4


def test_enqueue_many__unique_inside_the_callers_transaction(app: Werk) -> None:
    with psycopg.connect(app.dsn) as conn:
        jobs_ = app.enqueue_many([EnqueueParams(jobs.add, (1, 2), unique=True)] * 3, _conn=conn)
        assert len({j.id for j in jobs_ if j}) == 1
        assert count_rows(app) == 0
    assert count_rows(app) == 1


# -- round trips: the default path pays nothing ------------------------------------------------


def test_enqueue__without_unique_sends_the_one_plain_statement(app: Werk,
                                                              statements: list[bytes]) -> None:
    app.enqueue(jobs.noop)  # opens the pool and its first connection
    statements.clear()
    app.enqueue(jobs.add, 1, 2, _queue="q")
    app.enqueue(jobs.add, 1, 2, _key="k", _queue="q")
    assert statements == [app._store.queries["job_insert_one"]] * 2


def test_enqueue_unique__one_statement_whether_it_writes_or_finds(app: Werk,
                                                                 statements: list[bytes]) -> None:
    app.enqueue(jobs.noop)
    statements.clear()
    first = app.enqueue(jobs.add, 1, 2, _unique=True)
    again = app.enqueue(jobs.add, 1, 2, _unique=True)
    assert first is not None and again is not None and again.id == first.id
    assert statements == [app._store.queries["job_insert_unique"]] * 2


# -- the caller's transaction ------------------------------------------------------------------


def test_enqueue_unique__inside_the_callers_transaction(app: Werk) -> None:
    with psycopg.connect(app.dsn) as conn:
        first = app.enqueue(jobs.add, 1, 2, _unique=True, _conn=conn)
        again = app.enqueue(jobs.add, 1, 2, _unique=True, _conn=conn)
        assert first is not None and again is not None and again.id == first.id
        assert count_rows(app) == 0
    after = app.enqueue(jobs.add, 1, 2, _unique=True)
    assert after is not None and after.id == first.id


def test_enqueue_unique__a_rolled_back_job_holds_nothing(app: Werk) -> None:
    with psycopg.connect(app.dsn) as conn:
        gone = app.enqueue(jobs.add, 1, 2, _unique=True, _conn=conn)
        conn.rollback()
    fresh = app.enqueue(jobs.add, 1, 2, _unique=True)
    assert gone is not None and fresh is not None and fresh.id != gone.id
    assert count_rows(app) == 1


def test_enqueue_unique__through_psycopg2(app: Werk) -> None:
    conn = psycopg2.connect(app.dsn)
    try:
        first = app.enqueue(jobs.add, 1, 2, _unique=Unique(period=60), _conn=conn)
        again = app.enqueue(jobs.add, 1, 2, _unique=Unique(period=60), _conn=conn)
        conn.commit()
    finally:
        conn.close()
    assert first is not None and again is not None and again.id == first.id
    assert app.get_job(first.id).unique_states == UNENDED


def test_enqueue_unique__async_werk_and_async_connection(app: Werk) -> None:
    aapp = AsyncWerk.wrap(app)

    async def main() -> list[int]:
        ids = [(await aapp.enqueue(jobs.add, 1, 2, _unique=True)).id]  # type: ignore[union-attr]
        async with await psycopg.AsyncConnection.connect(app.dsn) as conn:
            ids.append((await aapp.enqueue(jobs.add, 1, 2, _unique=True,  # type: ignore[union-attr]
                                           _conn=conn)).id)
            many = await aapp.enqueue_many([EnqueueParams(jobs.add, (3, 4), unique=True)] * 2,
                                           _conn=conn)
            ids += [j.id for j in many if j]
        return ids

    ids = asyncio.run(main())
    assert ids[0] == ids[1] and ids[2] == ids[3] != ids[0]
    assert count_rows(app) == 2


# -- races -------------------------------------------------------------------------------------


def enqueue_together(apps: list[Werk], *args: Any, **options: Any) -> list[Job | None]:
    """Each app enqueues the same job from its own thread, released at once."""
    start = threading.Barrier(len(apps))
    results: list[Job | None] = [None] * len(apps)
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            start.wait(timeout=10)
            results[i] = apps[i].enqueue(jobs.add, *args, **options)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(apps))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    return results


def test_enqueue_unique__eight_processes_racing_make_one_row(app: Werk) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(8), ctx.Queue()
    children = [ctx.Process(target=enqueue_unique_in_child,
                            args=(app.dsn, app.config.schema, barrier, results, 5))
                for _ in range(8)]
    for child in children:
        child.start()
    got = [results.get(timeout=60) for _ in range(8 * 5)]
    for child in children:
        child.join(timeout=30)
    assert [c.exitcode for c in children] == [0] * 8
    for round_ in range(5):
        ids = [job_id for r, job_id in got if r == round_]
        assert len(ids) == 8 and None not in ids and len(set(ids)) == 1, (round_, ids)
    assert count_rows(app) == 5


def test_enqueue_unique__eight_apps_racing_in_threads_make_one_row(app: Werk,
                                                                   make_app: MakeApp) -> None:
    apps = [make_app(schema=app.config.schema, max_pool_size=1).connect() for _ in range(8)]
    for round_ in range(5):
        results = enqueue_together(apps, round_, 0, _unique=True)
        assert all(isinstance(j, Job) for j in results)
        assert len({j.id for j in results if j}) == 1, f"round {round_}: {results}"
    assert count_rows(app) == 5


def test_enqueue_unique__eight_threads_on_one_pool_make_one_row(make_app: MakeApp) -> None:
    shared = make_app(max_pool_size=8).connect()
    for round_ in range(5):
        results = enqueue_together([shared] * 8, round_, 0, _unique=Unique(period=3600))
        assert len({j.id for j in results if j}) == 1, f"round {round_}: {results}"
    assert count_rows(shared) == 5


def wait_for_lock(app: Werk) -> None:
    """Until one of the app's connections waits for another transaction."""
    eventually(lambda: query(app, "SELECT count(*) AS n FROM pg_stat_activity "
                                  "WHERE application_name = %s AND wait_event_type = 'Lock'",
                             [app.config.application_name])[0]["n"] == 1,
               message="the app's statement waiting for the other transaction")


def blocked_enqueue(app: Werk, *args: Any, **options: Any) -> tuple[threading.Thread, list[Any]]:
    """Enqueue in a thread; returns once that thread's insert waits on a row lock."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(app.enqueue(jobs.add, *args, **options)))
    thread.start()
    wait_for_lock(app)
    return thread, out


def sent_by_every_thread(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The statements sent through psycopg cursors from now on, by any thread."""
    sent: list[bytes] = []
    execute = psycopg.Cursor.execute

    def recording(self: psycopg.Cursor[Any], statement: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(statement if isinstance(statement, bytes) else str(statement).encode())
        return execute(self, statement, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", recording)
    return sent


def test_enqueue_unique__a_holder_committed_while_the_insert_waited_is_found(
        make_app: MakeApp, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(application_name=f"race-{uuid.uuid4().hex[:8]}").connect()
    sent = sent_by_every_thread(monkeypatch)
    with psycopg.connect(app.dsn) as conn:
        holder = app.enqueue(jobs.add, 1, 2, _unique=True, _conn=conn)
        thread, out = blocked_enqueue(app, 1, 2, _unique=True)
    thread.join(timeout=10)  # leaving the block committed the holder
    assert holder is not None and out and out[0].id == holder.id
    assert count_rows(app) == 1
    # its insert could not see the holder (committed after it began): a second look did
    assert sent.count(app._store.queries["job_unique_holders"]) == 1


def test_enqueue_unique__a_holder_rolled_back_while_the_insert_waited_frees_the_key(
        make_app: MakeApp) -> None:
    app = make_app(application_name=f"race-{uuid.uuid4().hex[:8]}").connect()
    with psycopg.connect(app.dsn) as conn:
        holder = app.enqueue(jobs.add, 1, 2, _unique=True, _conn=conn)
        thread, out = blocked_enqueue(app, 1, 2, _unique=True)
        conn.rollback()
    thread.join(timeout=10)
    assert holder is not None and out and out[0].id != holder.id
    assert [r["id"] for r in rows(app)] == [out[0].id]


def test_enqueue_unique__a_holder_that_ends_before_the_second_look_lets_the_job_in(
        make_app: MakeApp, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(application_name=f"race-{uuid.uuid4().hex[:8]}").connect()
    execute = psycopg.Cursor.execute
    ended: list[int] = []
    test_thread = threading.get_ident()

    def then_end_the_holder(self: psycopg.Cursor[Any], statement: Any, *args: Any,
                            **kwargs: Any) -> Any:
        """After the racing enqueue's insert (not the holder's own): the holder ends."""
        result = execute(self, statement, *args, **kwargs)
        if (statement == app._store.queries["job_insert_unique"] and not ended
                and threading.get_ident() != test_thread):
            holder_id = query(app, "SELECT id FROM {jobs}")[0]["id"]
            set_columns(app, holder_id, status="complete")
            ended.append(holder_id)
        return result

    monkeypatch.setattr(psycopg.Cursor, "execute", then_end_the_holder)
    sent = sent_by_every_thread(monkeypatch)
    with psycopg.connect(app.dsn) as conn:
        holder = app.enqueue(jobs.add, 1, 2, _unique=True, _conn=conn)
        thread, out = blocked_enqueue(app, 1, 2, _unique=True)
    thread.join(timeout=10)
    assert holder is not None and ended == [holder.id]
    assert out and out[0].id != holder.id and out[0].status is JobStatus.Queued
    assert [r["status"] for r in rows(app)] == ["complete", "queued"]
    assert sent.count(app._store.queries["job_insert_unique"]) == 3  # holder, racer twice
    assert sent.count(app._store.queries["job_unique_holders"]) == 1
