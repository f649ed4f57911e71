"""The operator commands of ``pgwerk``, run in-process with click's runner against a real
PostgreSQL; ``--json`` output is parsed, tables are read as text."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from pgwerk import JobStatus, Werk
from pgwerk.cli import cli
from tests.helpers import ago, count_rows, make_job

DOWN_DSN = "postgresql://postgres@127.0.0.1:1/nothing"


def run(*args: str, ok: bool = True) -> Result:
    result = CliRunner().invoke(cli, list(args))
    if ok:
        assert result.exit_code == 0, (result.output, result.stderr, result.exception)
    return result


def db(app: Werk) -> list[str]:
    return ["--dsn", app.dsn, "--schema", app.config.schema]


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)


@pytest.fixture
def app_spec(app: Werk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``module:attribute`` of a module in the current directory holding a Werk on the
    test's schema."""
    name = f"cliapp_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        "from pgwerk import Werk\n"
        "from pgwerk.cron import CronScheduler\n"
        f"app = Werk({app.dsn!r}, schema={app.config.schema!r})\n"
        "scheduler = CronScheduler(app)\n"
        "scheduler.register('tests.jobs.noop', interval=60, name='every-minute')\n"
    )
    monkeypatch.chdir(tmp_path)
    return f"{name}:app"


# -- enqueue ----------------------------------------------------------------------------------


def test_enqueue__prints_the_job_id_and_stores_the_payload_and_options(app: Werk) -> None:
    result = run("enqueue", *db(app), "tests.jobs.add", "--args", "[1, 2]", "--queue", "q",
                 "--priority", "5", "--retry", "3", "--timeout", "9", "--delay", "60")
    job = app.get_job(int(result.stdout.strip()))
    assert (job.function, job.args, job.queue, job.priority) == ("tests.jobs.add", (1, 2), "q", 5)
    assert (job.max_attempts, job.timeout, job.status) == (3, 9.0, JobStatus.Scheduled)


def test_enqueue__kwargs_starting_with_an_underscore_are_payload_not_options(app: Werk) -> None:
    result = run("enqueue", *db(app), "tests.jobs.echo", "--kwargs", '{"_queue": "x", "a": 1}')
    job = app.get_job(int(result.stdout))
    assert job.kwargs == {"_queue": "x", "a": 1} and job.queue == "default"


def test_enqueue__the_same_key_twice_enqueues_once_and_both_exit_0(app: Werk) -> None:
    first = run("enqueue", *db(app), "tests.jobs.noop", "--key", "nightly:2026-01-01")
    second = run("enqueue", *db(app), "tests.jobs.noop", "--key", "nightly:2026-01-01")
    assert first.stdout.strip().isdigit()
    assert "already exists" in second.stdout
    assert count_rows(app) == 1


def test_enqueue__json_says_whether_a_job_was_created(app: Werk) -> None:
    first = as_json(run("enqueue", *db(app), "tests.jobs.noop", "--key", "k", "--json"))
    second = as_json(run("enqueue", *db(app), "tests.jobs.noop", "--key", "k", "--json"))
    assert first["created"] and first["job"]["function"] == "tests.jobs.noop"
    assert second == {"id": None, "created": False, "key": "k", "existing_id": first["id"],
                      "job": None}


def test_enqueue__with_app_uses_the_apps_schema(app: Werk, app_spec: str) -> None:
    result = run("enqueue", app_spec, "tests.jobs.noop")
    assert app.get_job(int(result.stdout)).function == "tests.jobs.noop"


@pytest.mark.parametrize("args, message", [
    (["tests.jobs.add", "--args", "[1"], "not valid JSON"),
    (["tests.jobs.add", "--args", '{"a": 1}'], "must be a JSON list"),
    (["tests.jobs.add", "--kwargs", "[1]"], "must be a JSON object"),
    (["not a path"], "dotted import path"),
    (["tests.jobs.add", "--priority", "high"], "is not a valid integer"),
    (["tests.jobs.add", "--retry", "0"], "0 is not in the range"),
    (["a:b", "c:d", "tests.jobs.add"], "expected [APP] FUNC"),
])
def test_enqueue__bad_arguments_are_usage_errors_and_write_nothing(
        app: Werk, args: list[str], message: str) -> None:
    result = run("enqueue", *db(app), *args, ok=False)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert count_rows(app) == 0


def test_enqueue__app_and_dsn_together_is_a_usage_error(app_spec: str, app: Werk) -> None:
    result = run("enqueue", app_spec, "tests.jobs.noop", "--dsn", app.dsn, ok=False)
    assert result.exit_code == 2 and "not both" in result.stderr


# -- looking at jobs --------------------------------------------------------------------------


def test_jobs__lists_newest_first_with_filters_and_paging(app: Werk) -> None:
    a = make_job(app, "tests.jobs.add", args=(1, 2), options={"_queue": "a"})
    b = make_job(app, "tests.jobs.noop", options={"_queue": "b"}, status="failed",
                 error="Traceback...\nValueError: boom")
    c = make_job(app, "tests.jobs.noop", options={"_queue": "a"})
    listed = as_json(run("jobs", *db(app), "--json"))
    assert [j["id"] for j in listed] == [c.id, b.id, a.id]
    assert [j["id"] for j in as_json(run("jobs", *db(app), "--queue", "a", "--json"))] == [
        c.id, a.id]
    assert [j["id"] for j in as_json(run("jobs", *db(app), "--status", "failed", "--json"))] == [
        b.id]
    by_function = as_json(run("jobs", *db(app), "--function", "tests.jobs.add", "--json"))
    assert [j["id"] for j in by_function] == [a.id]
    page = as_json(run("jobs", *db(app), "--limit", "1", "--offset", "1", "--json"))
    assert [j["id"] for j in page] == [b.id]
    table = run("jobs", *db(app)).stdout
    assert "ValueError: boom" in table and "tests.jobs.add" in table


def test_jobs__bad_status_is_a_usage_error(app: Werk) -> None:
    result = run("jobs", *db(app), "--status", "done", ok=False)
    assert result.exit_code == 2 and "'done' is not one of" in result.stderr


def test_job__shows_one_job_with_its_attempts(app: Werk) -> None:
    job = make_job(app, "tests.jobs.add", args=(2, 3), status="complete", attempts=1,
                   result="5", completed_at=ago(1), started_at=ago(2))
    detail = as_json(run("job", *db(app), str(job.id), "--json"))
    assert detail["id"] == job.id and detail["result"] == 5 and detail["args"] == [2, 3]
    assert detail["executions"][0]["outcome"] == "complete"
    text = run("job", *db(app), str(job.id)).stdout
    assert "tests.jobs.add" in text and "result:" in text


def test_job__shows_the_progress_of_a_running_job_and_its_snoozes(app: Werk) -> None:
    quiet = make_job(app, status="active", attempts=1, worker_id="w", started_at=ago(2))
    assert "PROGRESS" not in run("jobs", *db(app)).stdout  # no job reported any
    job = make_job(app, status="active", attempts=3, snoozed=2, worker_id="w",
                   started_at=ago(2), progress=0.4, progress_message="step 2 of 5")
    text = run("job", *db(app), str(job.id)).stdout
    assert "progress:       40% step 2 of 5" in text
    assert "attempts:       3/1 (2 snoozed, not counted)" in text
    detail = as_json(run("job", *db(app), str(job.id), "--json"))
    assert (detail["progress"], detail["progress_message"], detail["snoozed"]) == (
        0.4, "step 2 of 5", 2)
    listing = run("jobs", *db(app)).stdout.splitlines()
    assert listing[0].split()[:3] == ["ID", "STATUS", "PROGRESS"]
    assert listing[1].split()[:3] == [str(job.id), "active", "40%"]
    assert listing[2].split()[:3] == [str(quiet.id), "active", "-"]


def test_job__unknown_id_is_one_line_and_exit_1(app: Werk) -> None:
    result = run("job", *db(app), "999999", ok=False)
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: no job with id 999999"


def test_job__an_id_that_is_not_a_number_is_a_usage_error(app: Werk) -> None:
    result = run("job", *db(app), "abc", ok=False)
    assert result.exit_code == 2 and "positive integer" in result.stderr


def test_retry__requeues_a_failed_job_and_refuses_a_queued_one(app: Werk) -> None:
    failed = make_job(app, status="failed", attempts=1, error="boom", completed_at=ago(1))
    queued = make_job(app)
    assert "queued again" in run("retry", *db(app), str(failed.id)).stdout
    assert app.get_job(failed.id).status is JobStatus.Queued
    refused = run("retry", *db(app), str(queued.id), ok=False)
    assert refused.exit_code == 1 and "is queued" in refused.stderr


def test_cancel__cancels_an_unstarted_job_and_reports_an_ended_one(app: Werk) -> None:
    job = make_job(app)
    assert "cancelled" in run("cancel", *db(app), str(job.id)).stdout
    assert app.get_job(job.id).status is JobStatus.Aborted
    again = run("cancel", *db(app), str(job.id), ok=False)
    assert again.exit_code == 1 and "already ended (aborted)" in again.stderr


def test_cancel__asks_the_worker_to_stop_a_running_job(app: Werk) -> None:
    job = make_job(app, status="active", attempts=1, started_at=ago(1))
    assert "asked to stop" in run("cancel", *db(app), str(job.id)).stdout
    assert app.get_job(job.id).status is JobStatus.Aborting


def test_purge__deletes_old_ended_jobs_of_the_given_statuses(app: Werk) -> None:
    old_done = make_job(app, status="complete", completed_at=ago(3600))
    new_done = make_job(app, status="complete", completed_at=ago(1))
    old_failed = make_job(app, status="failed", completed_at=ago(3600))
    queued = make_job(app)
    result = as_json(run("purge", *db(app), "--older-than", "60", "--json"))
    assert result["deleted"] == 1
    remaining = {j.id for j in app.list_jobs()}
    assert remaining == {new_done.id, old_failed.id, queued.id}
    text = run("purge", *db(app), "--status", "failed", "--status", "complete", "--yes").stdout
    assert text.strip() == "deleted 2 job(s)"
    assert old_done.id not in remaining


def test_purge__a_status_that_is_not_an_end_status_is_a_usage_error(app: Werk) -> None:
    result = run("purge", *db(app), "--status", "queued", ok=False)
    assert result.exit_code == 2


def test_stats_and_info__count_jobs_by_queue_and_status(app: Werk) -> None:
    make_job(app, options={"_queue": "a"})
    make_job(app, options={"_queue": "a"}, status="failed")
    make_job(app, options={"_queue": "b"})
    counts = as_json(run("stats", *db(app), "--json"))
    assert {q: {s: n for s, n in c.items() if s != "oldest_queued_age"}
            for q, c in counts.items()} == {"a": {"failed": 1, "queued": 1}, "b": {"queued": 1}}
    summary = as_json(run("info", *db(app), "--json"))
    assert summary["schema"] == app.config.schema and summary["schema_version"] >= 1
    assert summary["queues"]["b"]["queued"] == 1 and summary["workers"] == 0
    assert "password" not in summary["database"]
    table = run("stats", *db(app)).stdout.splitlines()
    assert table[0].split()[0] == "QUEUE" and table[1].split()[0] == "a"


def test_workers__lists_registered_workers(app: Werk) -> None:
    app._store.fetch("worker_register", {"id": "w1", "hostname": "h", "pid": 1, "queues": ["q"],
                                  "concurrency": 2, "pool": "thread", "heartbeat_interval": 5})
    listed = as_json(run("workers", *db(app), "--json"))
    assert [(w["id"], w["queues"], w["concurrency"]) for w in listed] == [("w1", ["q"], 2)]
    assert "thread" in run("workers", *db(app)).stdout


# -- migrate ----------------------------------------------------------------------------------


def test_migrate_sql__prints_exactly_the_apps_ddl_without_connecting(app_spec: str,
                                                                    app: Werk) -> None:
    assert run("migrate", app_spec, "--sql").stdout == app.migration_sql()
    offline = run("migrate", "--dsn", DOWN_DSN, "--schema", "s1", "--sql").stdout
    assert offline == Werk(DOWN_DSN, schema="s1").migration_sql()


def test_migrate__creates_the_tables_that_read_commands_never_create(make_app: Any) -> None:
    fresh = make_app(auto_migrate=False)
    before = run("jobs", *db(fresh), ok=False)
    assert before.exit_code == 1 and "pgwerk migrate" in before.stderr
    assert "applied" in run("migrate", *db(fresh)).stdout
    assert "already at version" in run("migrate", *db(fresh)).stdout
    assert as_json(run("jobs", *db(fresh), "--json")) == []


# -- failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["jobs"], ["info"], ["enqueue", "tests.jobs.noop"],
                                     ["job", "1"], ["migrate"], ["cron", "list"]])
def test_unreachable_database__one_line_and_a_non_zero_exit(command: list[str]) -> None:
    result = run(*command, "--dsn", DOWN_DSN, ok=False)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "cannot reach PostgreSQL" in result.stderr
    assert "Traceback" not in result.output


def test_no_database_given__names_pgwerk_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGWERK_DSN", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    result = run("jobs", ok=False)
    assert result.exit_code == 2 and "PGWERK_DSN" in result.stderr


def test_unknown_command_and_option_are_usage_errors() -> None:
    assert run("frobnicate", ok=False).exit_code == 2
    assert run("jobs", "--frob", ok=False).exit_code == 2


# -- cron -------------------------------------------------------------------------------------


def test_cron__list_pause_resume_remove(app_spec: str, app: Werk) -> None:
    listed = as_json(run("cron", "list", app_spec, "--json"))
    assert [(c["name"], c["schedule"], c["paused"], c["registered"]) for c in listed] == [
        ("every-minute", "every 60s", False, True)]
    assert run("cron", "pause", app_spec, "every-minute").stdout.strip() == "every-minute: paused"
    stored = as_json(run("cron", "list", *db(app), "--json"))
    assert [(c["name"], c["paused"], c["registered"]) for c in stored] == [
        ("every-minute", True, False)]
    assert "every-minute: resumed" in run("cron", "resume", *db(app), "every-minute").stdout
    assert as_json(run("cron", "list", *db(app), "--json"))[0]["paused"] is False
    assert "removed" in run("cron", "remove", *db(app), "every-minute").stdout
    assert as_json(run("cron", "list", *db(app), "--json")) == []
    missing = run("cron", "pause", *db(app), "nope", ok=False)
    assert missing.exit_code == 1 and "no cron job named 'nope'" in missing.stderr


def test_cron__list_shows_a_table(app_spec: str) -> None:
    text = CliRunner(env={"COLUMNS": "120"}).invoke(cli, ["cron", "list", app_spec]).stdout
    assert "every-minute" in text and "every 60s" in text and "tests.jobs.noop" in text


# -- APP --------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec, message", [
    ("no_such_module_xyz:app", "no module named 'no_such_module_xyz'"),
    ("json:nothing", "module 'json' has no attribute 'nothing'"),
    ("json:dumps", "json:dumps is a function, not a pgwerk Werk"),
    ("json", "APP must be module:attribute"),
])
def test_bad_app__one_line_exit_2(spec: str, message: str) -> None:
    result = run("jobs", spec, ok=False)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {message}\n" or message in result.stderr
    assert result.stderr.count("\n") == 1


def test_bad_app__a_failing_module_is_reported_with_its_location(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"broken_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("x = 1\nraise RuntimeError('no config')\n")
    monkeypatch.chdir(tmp_path)
    result = run("worker", f"{name}:app", ok=False)
    assert result.exit_code == 2
    assert "RuntimeError: no config" in result.stderr and "line 2" in result.stderr
    assert result.stderr.count("\n") == 1

