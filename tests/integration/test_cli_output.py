"""What operators read: tables that fit 80 columns, times with their zone, job ids checked,
payloads shown only when they are JSON, and ``enqueue`` telling which job holds a key."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pgwerk import Werk
from pgwerk.cli import cli
from pgwerk.serializers import PickleSerializer
from tests.helpers import count_rows, make_job, query
from tests.integration.test_cli import as_json, db, run


def run80(*args: str) -> Result:
    result = CliRunner(env={"COLUMNS": "80", "TZ": "UTC"}).invoke(cli, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_jobs__the_table_fits_80_columns_and_cuts_long_cells(app: Werk) -> None:
    make_job(app, "tests.jobs.noop", options={"_queue": "q" * 50}, status="failed",
             error="Traceback...\nValueError: " + "x" * 200)
    lines = run80("jobs", *db(app)).stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" in lines[1]
    assert "PRIO" not in lines[0]  # every priority is 0: the column says nothing


def test_stats__leaves_out_statuses_no_queue_has(app: Werk) -> None:
    make_job(app, options={"_queue": "a"})
    make_job(app, options={"_queue": "a"}, status="failed")
    header = run80("stats", *db(app)).stdout.splitlines()[0].split()
    assert header == ["QUEUE", "QUEUED", "FAILED", "TOTAL"]


def test_times_are_shown_with_their_zone(app: Werk) -> None:
    job = make_job(app)
    text = run80("job", *db(app), str(job.id)).stdout
    enqueued = next(line for line in text.splitlines() if line.startswith("enqueued:"))
    assert enqueued.rstrip().endswith(" UTC")


@pytest.mark.parametrize("text", ["²", "1²", "١٢", "0", "1e3", "99999999999999999999"])
def test_job_ids_must_be_ascii_decimal_digits(app: Werk, text: str) -> None:
    for command in (["job"], ["retry"], ["cancel"]):
        result = run(*command, *db(app), text, ok=False)
        assert result.exit_code == 2, (command, text, result.output)
        assert "ASCII digits" in result.stderr
        assert "Traceback" not in result.output


def test_enqueue__a_duplicate_key_names_the_job_that_holds_it(app: Werk) -> None:
    first = run("enqueue", *db(app), "tests.jobs.noop", "--key", "daily").stdout.strip()
    again = run("enqueue", *db(app), "tests.jobs.noop", "--key", "daily")
    assert f"(job {first})" in again.stdout
    second = as_json(run("enqueue", *db(app), "tests.jobs.noop", "--key", "daily", "--json"))
    assert second["existing_id"] == int(first) and second["created"] is False


@pytest.fixture
def pickle_app(make_app: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
               ) -> tuple[Werk, str]:
    werk = make_app(serializer=PickleSerializer())  # type: ignore[operator]
    werk.connect()
    name = f"cli_pickle_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        "from pgwerk import Werk\nfrom pgwerk.serializers import PickleSerializer\n"
        f"app = Werk({werk.dsn!r}, schema={werk.config.schema!r}, "
        "serializer=PickleSerializer())\n")
    monkeypatch.chdir(tmp_path)
    return werk, f"{name}:app"


def test_pickled_payloads_are_never_unpickled_by_the_cli(pickle_app: tuple[Werk, str]) -> None:
    werk, spec = pickle_app
    # A payload that would run code if it were unpickled.
    job = werk.enqueue("tests.jobs.echo", _marker := "m")
    assert job is not None
    evil = "gASVIQAAAAAAAACMBWJ1aWx0aW5zlIwEZXhpdJSTlEsHhZRSlC4="  # builtins.exit(7)
    query(werk, "UPDATE {jobs} SET payload = %s WHERE id = %s", [evil, job.id])
    size = len(evil)
    for args in (["job", spec, str(job.id)], ["job", *db(werk), str(job.id)]):
        text = run(*args).stdout
        assert f"payload:        binary payload, {size} bytes" in text
    detail = as_json(run("job", spec, str(job.id), "--json"))
    assert detail["payload"] == f"binary payload, {size} bytes" and detail["args"] is None
    listed = as_json(run("jobs", spec, "--json"))
    assert listed[0]["payload"] == f"binary payload, {size} bytes"


def test_enqueue__with_app_writes_with_the_apps_serializer(pickle_app: tuple[Werk, str]) -> None:
    werk, spec = pickle_app
    job_id = int(run("enqueue", spec, "tests.jobs.add", "--args", "[1, 2]").stdout)
    assert werk.get_job(job_id).args == (1, 2)


@pytest.mark.parametrize("func, message", [
    ("tests.jobs.nothing_here", "has no attribute 'nothing_here'"),
    ("no_such_pkg_xyz.tasks.run", "cannot import 'no_such_pkg_xyz.tasks.run'"),
])
def test_enqueue__with_app_a_function_that_does_not_import_is_exit_2(
        app: Werk, func: str, message: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"cli_func_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        f"from pgwerk import Werk\napp = Werk({app.dsn!r}, schema={app.config.schema!r})\n")
    monkeypatch.chdir(tmp_path)
    result = run("enqueue", f"{name}:app", func, ok=False)
    assert result.exit_code == 2 and message in result.stderr
    assert result.stderr.count("\n") == 1
    assert count_rows(app) == 0


def test_jobs__filters_by_key_search_and_age(app: Werk) -> None:
    keyed = make_job(app, "tests.jobs.echo", kwargs={"to": "a@b.c"}, options={"_key": "k:1"})
    make_job(app, "tests.jobs.echo", kwargs={"to": "x@y.z"})
    assert [j["id"] for j in as_json(run("jobs", *db(app), "--key", "k:1", "--json"))] == [
        keyed.id]
    assert [j["id"] for j in as_json(run("jobs", *db(app), "--search", "a@b", "--json"))] == [
        keyed.id]
    assert as_json(run("jobs", *db(app), "--older-than", "1h", "--json")) == []


def test_job__detail_lines_fit_80_columns(app: Werk) -> None:
    job = make_job(app, "tests.jobs.echo", kwargs={"text": "x" * 300},
                   options={"_key": "k" * 120})
    lines = run80("job", *db(app), str(job.id)).stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert next(line for line in lines if line.startswith("kwargs:")).endswith("…")
