"""``pgwerk cron list`` tells the truth: the next tick (blank while paused), the last tick
that really enqueued a job and that job, the time zone, and whether a scheduler runs;
with APP and with only ``--dsn`` (from the database rows)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgwerk import Werk
from pgwerk._doctor import cron_lock_key
from pgwerk.cron import CronScheduler
from tests.integration.test_cli import as_json, db, run

MODULE = """
from pgwerk import Werk
from pgwerk.cron import CronScheduler
app = Werk({dsn!r}, schema={schema!r})
scheduler = CronScheduler(app)
scheduler.register("tests.jobs.noop", interval=60, name="every-minute")
scheduler.register("tests.jobs.add", cron="0 3 * * *", tz="Europe/Berlin", name="nightly",
                   args=(1, 2))
"""


@pytest.fixture
def spec(app: Werk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"cronapp_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(MODULE.format(dsn=app.dsn, schema=app.config.schema))
    monkeypatch.chdir(tmp_path)
    return f"{name}:app"


def _scheduler(app: Werk) -> CronScheduler:
    scheduler = CronScheduler(app)
    scheduler.register("tests.jobs.noop", interval=60, name="every-minute")
    scheduler.register("tests.jobs.add", cron="0 3 * * *", tz="Europe/Berlin", name="nightly",
                       args=(1, 2))
    return scheduler


def by_name(listed: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in listed}


def test_cron_list__the_first_pass_enqueues_nothing_and_says_so(app: Werk, spec: str) -> None:
    _scheduler(app).tick(now=datetime(2026, 1, 1, 12, 0, 30, tzinfo=timezone.utc))
    for args in ([spec], db(app)):
        minute = by_name(as_json(run("cron", "list", *args, "--json")))["every-minute"]
        assert minute["last_enqueued_tick"] is None and minute["last_job_id"] is None
        assert minute["next_tick"] is not None


def test_cron_list__the_last_tick_that_enqueued_and_its_job(app: Werk, spec: str) -> None:
    scheduler = _scheduler(app)
    start = datetime.now(timezone.utc) - timedelta(seconds=90)
    scheduler.tick(now=start)
    jobs = scheduler.tick(now=start + timedelta(seconds=70))
    minute_job = next(j for j in jobs if j.meta["cron"] == "every-minute")
    for args in ([spec], db(app)):
        listed = by_name(as_json(run("cron", "list", *args, "--json")))
        minute, nightly = listed["every-minute"], listed["nightly"]
        assert minute["last_job_id"] == minute_job.id
        assert minute["last_enqueued_tick"] == minute_job.meta["tick"]
        assert minute["last_job_status"] == "queued"
        assert (nightly["schedule"], nightly["timezone"]) == ("0 3 * * *", "Europe/Berlin")
        assert (minute["schedule"], minute["timezone"]) == ("every 60s", None)
        assert minute["state"] == "no scheduler" and minute["scheduler_running"] is False


def test_cron_list__a_paused_schedule_has_no_next_tick(app: Werk, spec: str) -> None:
    _scheduler(app).tick()
    run("cron", "pause", spec, "nightly")
    for args in ([spec], db(app)):
        nightly = by_name(as_json(run("cron", "list", *args, "--json")))["nightly"]
        assert nightly["paused"] is True and nightly["state"] == "paused"
        assert nightly["next_tick"] is None


def test_cron_list__active_while_a_scheduler_holds_the_lock(app: Werk, spec: str) -> None:
    _scheduler(app).tick()
    with psycopg.connect(app.dsn, autocommit=True) as leader:
        leader.execute("SELECT pg_advisory_lock(%s)", [cron_lock_key(app)])
        listed = as_json(run("cron", "list", *db(app), "--json"))
        assert {c["state"] for c in listed} == {"active"}
    result = run("cron", "list", *db(app))
    assert "no cron scheduler is running" in result.stderr


def test_cron_list__the_table_shows_zone_and_last_job(app: Werk, spec: str) -> None:
    scheduler = _scheduler(app)
    start = datetime.now(timezone.utc) - timedelta(seconds=90)
    scheduler.tick(now=start)
    job = next(j for j in scheduler.tick(now=start + timedelta(seconds=70))
               if j.meta["cron"] == "every-minute")
    from click.testing import CliRunner

    from pgwerk.cli import cli
    text = CliRunner(env={"COLUMNS": "160"}).invoke(cli, ["cron", "list", spec]).stdout
    header, *rows = text.splitlines()
    assert header.split()[:4] == ["NAME", "SCHEDULE", "TZ", "FUNCTION"]
    minute = next(r for r in rows if r.startswith("every-minute"))
    assert minute.rstrip().endswith(str(job.id)) and "no scheduler" in minute
    assert "Europe/Berlin" in next(r for r in rows if r.startswith("nightly"))
