"""CronScheduler: schedules, ticks enqueued once each with their key, pause/resume, the
table, and leader election between schedulers of one process (other processes:
``test_cron_processes.py``)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from pgwerk import Werk
from pgwerk.cron import CronJobNotFound, CronScheduler, run_in_thread, wait_for_leader
from tests import jobs
from tests.helpers import eventually, query

T0 = datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def keys(found: list[Any]) -> list[str]:
    return [job.key for job in found]


@pytest.fixture
def scheduler(app: Werk) -> CronScheduler:
    return CronScheduler(app, retry_interval=0.2, poll_interval=0.2)


@pytest.fixture
def running() -> Iterator[list[tuple[CronScheduler, threading.Thread]]]:
    """Schedulers started in threads by the test; all stopped afterwards."""
    started: list[tuple[CronScheduler, threading.Thread]] = []
    yield started
    for sched, _ in started:
        sched.stop()
    for _, thread in started:
        thread.join(10)
        assert not thread.is_alive()


# -- ticks ------------------------------------------------------------------------------------


def test_tick__the_first_pass_sets_a_baseline_and_enqueues_nothing(
        scheduler: CronScheduler, app: Werk) -> None:
    scheduler.register(jobs.noop, interval=10)
    assert scheduler.tick(now=at(0)) == []
    assert app.list_jobs() == []
    (stored,) = scheduler.list()
    assert stored.last_tick == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert stored.next_tick == datetime(2026, 1, 1, 0, 0, 10, tzinfo=timezone.utc)


def test_tick__enqueues_each_due_tick_once_with_its_key(scheduler: CronScheduler,
                                                        app: Werk) -> None:
    scheduler.register(jobs.add, interval=10, name="adder", args=[1, 2], queue="q",
                       priority=3, retry=2, timeout=5)
    scheduler.tick(now=at(0))
    found = scheduler.tick(now=at(25))
    assert keys(found) == ["cron:adder:2026-01-01T00:00:10+00:00",
                           "cron:adder:2026-01-01T00:00:20+00:00"]
    job = app.get_job(found[0].id)
    assert (job.function, job.args, job.queue, job.priority) == ("tests.jobs.add", (1, 2), "q", 3)
    assert (job.max_attempts, job.timeout) == (2, 5.0)
    assert job.meta == {"cron": "adder", "tick": "2026-01-01T00:00:10+00:00"}
    assert scheduler.tick(now=at(25)) == []
    assert keys(scheduler.tick(now=at(30))) == ["cron:adder:2026-01-01T00:00:30+00:00"]


def test_tick__two_schedulers_never_enqueue_a_tick_twice(app: Werk, make_app: Any) -> None:
    other_app = make_app(schema=app.config.schema)
    first, second = CronScheduler(app), CronScheduler(other_app)
    for sched in (first, second):
        sched.register("tests.jobs.noop", interval=1, name="n")
    first.tick(now=at(0))
    assert len(first.tick(now=at(3))) == 3
    assert second.tick(now=at(3)) == []
    assert len(app.list_jobs()) == 3


def test_tick__cron_expressions_tick_on_their_minutes(app: Werk) -> None:
    scheduler = CronScheduler(app, misfire_grace=3600)
    scheduler.register(jobs.noop, cron="*/15 * * * *", name="quarter")
    scheduler.tick(now=at(30))
    assert keys(scheduler.tick(now=at(31 * 60))) == ["cron:quarter:2026-01-01T00:15:00+00:00",
                                                     "cron:quarter:2026-01-01T00:30:00+00:00"]


def test_tick__cron_expressions_follow_their_time_zone(app: Werk) -> None:
    scheduler = CronScheduler(app, misfire_grace=86400)
    scheduler.register(jobs.noop, cron="0 9 * * *", tz="Europe/Berlin", name="nine")
    scheduler.tick(now=at(0))
    # 09:00 in Berlin in January is 08:00 UTC.
    assert keys(scheduler.tick(now=at(9 * 3600))) == ["cron:nine:2026-01-01T08:00:00+00:00"]


def test_tick__ticks_older_than_misfire_grace_are_skipped(app: Werk) -> None:
    scheduler = CronScheduler(app, misfire_grace=30)
    scheduler.register(jobs.noop, interval=10, name="n")
    scheduler.tick(now=at(0))
    found = scheduler.tick(now=at(3600))
    # now is 01:00:00.5, so ticks after 00:59:30.5 are recent enough.
    assert keys(found) == [f"cron:n:2026-01-01T00:59:{s}+00:00" for s in (40, 50)] + [
        "cron:n:2026-01-01T01:00:00+00:00"]


def test_pause__nothing_is_enqueued_and_resume_goes_on_from_then(
        scheduler: CronScheduler, app: Werk) -> None:
    scheduler.register(jobs.noop, interval=10, name="n")
    scheduler.tick(now=at(0))
    scheduler.pause("n")
    assert scheduler.tick(now=at(35)) == []
    assert scheduler.list()[0].paused
    assert scheduler.list()[0].last_tick == at(30) - timedelta(microseconds=500000)
    scheduler.resume("n")
    assert not scheduler.list()[0].paused
    # Resuming moves the last tick to the database's now: the ticks missed while paused
    # (and every fake moment of this test) lie behind it.
    assert scheduler.tick(now=at(60)) == []


def test_pause__works_before_the_schedule_was_ever_stored(scheduler: CronScheduler) -> None:
    scheduler.register(jobs.noop, interval=10, name="n")
    scheduler.pause("n")
    assert scheduler.list()[0].paused


def test_pause__an_unknown_name_raises(scheduler: CronScheduler) -> None:
    with pytest.raises(CronJobNotFound, match="no cron job named 'x'"):
        scheduler.pause("x")
    with pytest.raises(CronJobNotFound):
        scheduler.unregister("x")


def test_unregister__forgets_the_schedule_here_and_in_the_table(scheduler: CronScheduler,
                                                               app: Werk) -> None:
    scheduler.register(jobs.noop, interval=10, name="n")
    scheduler.tick(now=at(0))
    scheduler.unregister("n")
    assert scheduler.list() == []
    assert query(app, "SELECT * FROM {cron}") == []


def test_list__shows_stored_schedules_another_process_defined(scheduler: CronScheduler,
                                                              app: Werk) -> None:
    scheduler.register(jobs.noop, cron="0 3 * * *", name="nightly", queue="maintenance")
    scheduler.tick(now=at(0))
    (seen,) = CronScheduler(app).list()
    assert (seen.name, seen.function, seen.schedule, seen.queue, seen.registered) == (
        "nightly", "tests.jobs.noop", "0 3 * * *", "maintenance", False)
    assert seen.next_tick == datetime(2026, 1, 1, 3, tzinfo=timezone.utc)


# -- registering ------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, error, message", [
    ({}, ValueError, "exactly one of"),
    ({"cron": "* * * * *", "interval": 5}, ValueError, "exactly one of"),
    ({"cron": "61 * * * *"}, ValueError, "not a valid cron expression"),
    ({"interval": 0.5}, ValueError, "at least 1 second"),
    ({"interval": -1}, ValueError, ">= 0|> 0"),
    ({"interval": 5, "key": "k"}, TypeError, "unknown option"),
    ({"interval": 5, "colour": "red"}, TypeError, "unknown option"),
    ({"interval": 5, "priority": "high"}, TypeError, "_priority"),
    ({"interval": 5, "tz": "Mars/Olympus"}, ValueError, "not a known time zone"),
])
def test_register__rejects_bad_schedules(scheduler: CronScheduler, kwargs: dict[str, Any],
                                         error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        scheduler.register(jobs.noop, **kwargs)
    assert scheduler.names == []


def test_register__a_lambda_is_rejected(scheduler: CronScheduler) -> None:
    with pytest.raises(ValueError, match="lambda"):
        scheduler.register(lambda: None, interval=5)


def test_register__the_same_name_twice(scheduler: CronScheduler) -> None:
    scheduler.register(jobs.noop, interval=5)
    scheduler.register(jobs.noop, interval=5)  # the same definition again: fine
    with pytest.raises(ValueError, match="already registered"):
        scheduler.register(jobs.noop, interval=6)
    scheduler.register(jobs.noop, interval=6, name="other")
    assert scheduler.names == ["other", "tests.jobs.noop"]


def test_register__cron_without_croniter_names_the_extra(scheduler: CronScheduler,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "croniter", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r"pip install pgwerk\[cron\]"):
        scheduler.register(jobs.noop, cron="* * * * *")
    scheduler.register(jobs.noop, interval=60)  # intervals need nothing more


def test_of__finds_the_scheduler_registered_for_an_app(app: Werk, make_app: Any) -> None:
    scheduler = CronScheduler(app)
    scheduler.register(jobs.noop, interval=60)
    assert CronScheduler.of(app) is scheduler
    assert CronScheduler.of(make_app()).names == []


# -- running ----------------------------------------------------------------------------------


def test_run__one_leader_enqueues_ticks_and_another_takes_over_when_it_stops(
        app: Werk, make_app: Any, running: list[tuple[CronScheduler, threading.Thread]]) -> None:
    schedulers = [CronScheduler(make_app(schema=app.config.schema), retry_interval=0.2)
                  for _ in range(2)]
    for sched in schedulers:
        sched.register(jobs.noop, interval=1, name="every-second")
        running.append((sched, run_in_thread(sched)))
    eventually(lambda: any(s.is_leader for s in schedulers), timeout=10)
    leader = next(s for s in schedulers if s.is_leader)
    other = next(s for s in schedulers if s is not leader)
    assert not other.is_leader
    eventually(lambda: len(app.list_jobs()) >= 2, timeout=10, message="two ticks enqueued")
    leader.stop()
    assert wait_for_leader(other, timeout=5), "the other scheduler did not take over"
    before = len(app.list_jobs())
    eventually(lambda: len(app.list_jobs()) > before, timeout=10, message="ticks go on")
    ticks = sorted(j.meta["tick"] for j in app.list_jobs(limit=1000))
    assert len(ticks) == len(set(ticks))
    steps = {(datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()
             for a, b in zip(ticks, ticks[1:], strict=False)}
    assert steps == {1.0}, f"a tick is missing: {ticks}"


def test_run__stop_returns_and_releases_leadership(
        app: Werk, running: list[tuple[CronScheduler, threading.Thread]]) -> None:
    scheduler = CronScheduler(app, retry_interval=0.2)
    scheduler.register(jobs.noop, interval=3600)
    thread = run_in_thread(scheduler)
    assert wait_for_leader(scheduler, timeout=10)
    scheduler.stop()
    thread.join(10)
    assert not thread.is_alive() and not scheduler.is_leader
    locks = query(app, "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' "
                       "AND objid = %s", [scheduler.lock_key])
    assert locks[0]["n"] == 0
