"""A schedule that can never fire is refused at ``register``; a schedule that fails at tick
time is logged and skipped, and every other schedule of the scheduler still fires."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

import pytest

from pgwerk import Werk
from pgwerk.cron import CronScheduler
from tests import jobs
from tests.helpers import query

T0 = datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def keys(found: list[Any]) -> list[str]:
    return [job.key for job in found]


# -- expressions that never fire ------------------------------------------------------------


@pytest.mark.parametrize("cron", ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 11 *"])
def test_register__cron_that_never_fires_is_rejected(app: Werk, cron: str) -> None:
    scheduler = CronScheduler(app)
    with pytest.raises(ValueError, match=rf"^cron {re.escape(repr(cron))} never fires: no date "
                                         r"matches it in the next 50 years"):
        scheduler.register(jobs.noop, cron=cron, name="never")
    assert scheduler.names == []
    assert scheduler.tick(now=at(0)) == []
    assert query(app, "SELECT * FROM {cron}") == []


@pytest.mark.parametrize(("cron", "first"), [
    ("0 0 29 2 *", datetime(2028, 2, 29, tzinfo=timezone.utc)),   # every four years
    ("0 0 31 */2 *", datetime(2026, 1, 31, tzinfo=timezone.utc)),  # some months have no 31st
])
def test_register__rare_but_real_expressions_are_accepted(app: Werk, cron: str,
                                                          first: datetime) -> None:
    scheduler = CronScheduler(app)
    scheduler.register(jobs.noop, cron=cron, name="rare")
    assert scheduler.tick(now=at(0)) == []
    (stored,) = scheduler.list()
    assert stored.next_tick == first


def test_register__a_never_firing_schedule_does_not_block_the_others(app: Werk) -> None:
    scheduler = CronScheduler(app)
    scheduler.register(jobs.noop, interval=10, name="healthy")
    with pytest.raises(ValueError, match="never fires"):
        scheduler.register(jobs.noop, cron="0 0 30 2 *", name="feb-30")
    scheduler.tick(now=at(0))
    assert keys(scheduler.tick(now=at(10))) == ["cron:healthy:2026-01-01T00:00:10+00:00"]


# -- errors at tick time ------------------------------------------------------------------------


def test_tick__a_schedule_whose_payload_fails_is_skipped_and_the_others_fire(
        app: Werk, caplog: pytest.LogCaptureFixture) -> None:
    scheduler = CronScheduler(app, misfire_grace=3600)
    changing: list[Any] = []
    scheduler.register(jobs.echo, interval=10, name="broken", kwargs={"items": changing})
    scheduler.register(jobs.noop, interval=10, name="healthy")
    scheduler.tick(now=at(0))
    changing.append(object())  # the shared list no longer encodes to JSON
    with caplog.at_level(logging.ERROR, logger="pgwerk.cron"):
        found = scheduler.tick(now=at(20))
    assert keys(found) == ["cron:healthy:2026-01-01T00:00:10+00:00",
                           "cron:healthy:2026-01-01T00:00:20+00:00"]
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "cron broken" in record.getMessage() and "skipped" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is TypeError
    # The failed ticks are not retried; the healthy schedule goes on; once the payload
    # encodes again, the broken one fires from its next tick.
    assert keys(scheduler.tick(now=at(30))) == ["cron:healthy:2026-01-01T00:00:30+00:00"]
    changing.clear()
    assert sorted(keys(scheduler.tick(now=at(40)))) == [
        "cron:broken:2026-01-01T00:00:40+00:00", "cron:healthy:2026-01-01T00:00:40+00:00"]


def test_tick__a_schedule_whose_job_the_database_rejects_is_skipped_and_the_others_fire(
        app: Werk, caplog: pytest.LogCaptureFixture) -> None:
    # A trigger of the user's (an audit rule, say) refuses the rows of one function.
    query(app, """
        CREATE FUNCTION {jobs_schema}.refuse_fail() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.function = 'tests.jobs.fail' THEN
                RAISE EXCEPTION 'tests.jobs.fail may not be enqueued';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_fail BEFORE INSERT ON {jobs}
            FOR EACH ROW EXECUTE FUNCTION {jobs_schema}.refuse_fail();
    """.replace("{jobs_schema}", f'"{app.config.schema}"'))
    scheduler = CronScheduler(app, misfire_grace=3600)
    scheduler.register(jobs.fail, interval=10, name="refused")
    scheduler.register(jobs.noop, interval=10, name="healthy")
    scheduler.register(jobs.add, interval=20, name="adder", args=[1, 2])
    scheduler.tick(now=at(0))
    with caplog.at_level(logging.ERROR, logger="pgwerk.cron"):
        found = scheduler.tick(now=at(20))
    assert sorted(keys(found)) == ["cron:adder:2026-01-01T00:00:20+00:00",
                                   "cron:healthy:2026-01-01T00:00:10+00:00",
                                   "cron:healthy:2026-01-01T00:00:20+00:00"]
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "cron refused" in record.getMessage()
    assert "may not be enqueued" in str(record.exc_info[1] if record.exc_info else "")
    assert {j.function for j in app.list_jobs()} == {"tests.jobs.noop", "tests.jobs.add"}
    assert keys(scheduler.tick(now=at(30))) == ["cron:healthy:2026-01-01T00:00:30+00:00"]


# -- expressions with a year field -----------------------------------------------------------


def test_tick__a_schedule_past_its_last_year_ends_quietly_and_the_others_fire(
        app: Werk, caplog: pytest.LogCaptureFixture) -> None:
    year = datetime.now(timezone.utc).year + 1
    scheduler = CronScheduler(app, misfire_grace=3600)
    # Fires once, on New Year of next year (the seventh field is the year).
    scheduler.register(jobs.noop, cron=f"0 0 1 1 * 0 {year}", name="once")
    scheduler.register(jobs.noop, interval=10, name="healthy")
    start = datetime(year - 1, 12, 31, 23, 59, 55, tzinfo=timezone.utc)
    assert scheduler.tick(now=start) == []  # no earlier tick of "once": nothing was due
    assert sorted(keys(scheduler.tick(now=start + timedelta(seconds=5)))) == [
        f"cron:healthy:{year}-01-01T00:00:00+00:00", f"cron:once:{year}-01-01T00:00:00+00:00"]
    with caplog.at_level(logging.WARNING, logger="pgwerk.cron"):
        # Only what these passes log (an earlier test of the process may have made the
        # ticks above log at INFO).
        caplog.clear()
        for step in (10, 20, 30):
            found = scheduler.tick(now=start + timedelta(seconds=5 + step))
            assert [job.meta["cron"] for job in found] == ["healthy"]
    assert caplog.records == []
    [stored] = query(app, "SELECT last_tick, next_tick FROM {cron} WHERE name = 'once'")
    assert stored == {"last_tick": datetime(year, 1, 1, tzinfo=timezone.utc), "next_tick": None}


def test_register__a_year_field_in_the_past_never_fires(app: Werk) -> None:
    with pytest.raises(ValueError, match="never fires"):
        CronScheduler(app).register(jobs.noop, cron="0 0 1 1 * 0 2020")


class _ZoneThatBreaks(tzinfo):
    """UTC until ``broken`` is set; then every conversion raises, as a faulty tzinfo of the
    user's might."""

    broken = False

    def utcoffset(self, dt: datetime | None) -> timedelta:
        if self.broken:
            raise RuntimeError("time zone data unavailable")
        return timedelta(0)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "BREAKS"


def test_tick__a_schedule_whose_ticks_cannot_be_computed_is_logged_once_and_skipped(
        app: Werk, caplog: pytest.LogCaptureFixture) -> None:
    zone = _ZoneThatBreaks()
    scheduler = CronScheduler(app, misfire_grace=3600)
    scheduler.register(jobs.noop, cron="* * * * *", tz=zone, name="zoned")
    scheduler.register(jobs.noop, interval=60, name="healthy")
    scheduler.tick(now=at(0))
    zone.broken = True
    with caplog.at_level(logging.ERROR, logger="pgwerk.cron"):
        for minute in (1, 2, 3):
            found = scheduler.tick(now=at(minute * 60))
            assert [job.meta["cron"] for job in found] == ["healthy"]
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "cron zoned: cannot compute its ticks; skipped until it can" in record.getMessage()
    zone.broken = False
    assert sorted(job.meta["cron"] for job in scheduler.tick(now=at(4 * 60))) == [
        "healthy", "zoned", "zoned", "zoned", "zoned"]
