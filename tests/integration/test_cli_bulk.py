"""Bulk commands of ``pgwerk``: retry, cancel and purge many jobs at once, with filters,
dry runs, durations like ``7d`` and a question before touching every queue."""

from __future__ import annotations

import pytest

from pgwerk import JobStatus, Werk
from tests.helpers import ago, count_rows, make_job
from tests.integration.test_cli import as_json, db, run


def _failed(app: Werk, queue: str = "default", func: str = "tests.jobs.noop",
            ended: float = 60.0, status: str = "failed") -> int:
    return make_job(app, func, options={"_queue": queue}, status=status, attempts=1,
                    error="boom", completed_at=ago(ended)).id


def test_retry__bulk_requeues_the_failed_jobs_of_a_queue_and_prints_the_count(app: Werk) -> None:
    mail = [_failed(app, "mail"), _failed(app, "mail")]
    other = _failed(app, "other")
    aborted = _failed(app, "mail", status="aborted")
    assert run("retry", *db(app), "--queue", "mail", "--failed").stdout.strip() == \
        "requeued 2 job(s)"
    assert {app.get_job(i).status for i in mail} == {JobStatus.Queued}
    assert app.get_job(other).status is JobStatus.Failed
    assert app.get_job(aborted).status is JobStatus.Aborted


def test_retry__bulk_by_function_and_age_with_a_dry_run_first(app: Werk) -> None:
    old = _failed(app, func="tests.jobs.add", ended=7200)
    _failed(app, func="tests.jobs.add", ended=10)
    _failed(app, func="tests.jobs.noop", ended=7200)
    args = ["retry", *db(app), "--function", "tests.jobs.add", "--older-than", "1h"]
    dry = as_json(run(*args, "--dry-run", "--json"))
    assert dry["count"] == 1 and dry["dry_run"] is True
    assert app.get_job(old).status is JobStatus.Failed
    assert as_json(run(*args, "--json"))["count"] == 1
    assert app.get_job(old).status is JobStatus.Queued


def test_retry__without_id_or_filter_is_a_usage_error(app: Werk) -> None:
    _failed(app)
    result = run("retry", *db(app), ok=False)
    assert result.exit_code == 2 and "--queue" in result.stderr
    assert app.list_jobs()[0].status is JobStatus.Failed


def test_cancel__bulk_cancels_the_unstarted_jobs_of_a_queue(app: Werk) -> None:
    queued = [make_job(app, options={"_queue": "q"}).id for _ in range(3)]
    running = make_job(app, options={"_queue": "q"}, status="active", attempts=1,
                       started_at=ago(1)).id
    kept = make_job(app, options={"_queue": "other"}).id
    assert run("cancel", *db(app), "--queue", "q", "--dry-run").stdout.strip() == \
        "would cancel 3 job(s) (dry run: nothing changed)"
    assert run("cancel", *db(app), "--queue", "q").stdout.strip() == "cancelled 3 job(s)"
    assert {app.get_job(i).status for i in queued} == {JobStatus.Aborted}
    assert app.get_job(running).status is JobStatus.Active
    assert app.get_job(kept).status is JobStatus.Queued


def test_cancel__every_queue_asks_first_and_a_no_changes_nothing(app: Werk) -> None:
    job = make_job(app).id
    declined = run("cancel", *db(app), ok=False)  # no answer on stdin
    assert declined.exit_code == 1 and "Continue?" in declined.stderr
    assert "pass --yes" in declined.stderr
    assert app.get_job(job).status is JobStatus.Queued
    assert run("cancel", *db(app), "--yes").stdout.strip() == "cancelled 1 job(s)"


def test_purge__by_queue_and_age_with_a_dry_run(app: Werk) -> None:
    old = make_job(app, options={"_queue": "q"}, status="complete", completed_at=ago(8 * 86400))
    make_job(app, options={"_queue": "q"}, status="complete", completed_at=ago(86400))
    make_job(app, options={"_queue": "other"}, status="complete", completed_at=ago(8 * 86400))
    args = ["purge", *db(app), "--queue", "q", "--older-than", "7d"]
    assert run(*args, "--dry-run").stdout.strip() == \
        "would delete 1 job(s) (dry run: nothing changed)"
    assert count_rows(app) == 3
    assert run(*args).stdout.strip() == "deleted 1 job(s)"
    assert old.id not in {j.id for j in app.list_jobs()} and count_rows(app) == 2


def test_purge__without_a_filter_asks_before_deleting_every_complete_job(app: Werk) -> None:
    make_job(app, status="complete", completed_at=ago(5))
    make_job(app, status="complete", completed_at=ago(5))
    refused = run("purge", *db(app), ok=False)
    assert "delete all 2 complete job(s), in every queue? Continue?" in refused.stderr
    assert count_rows(app) == 2
    from click.testing import CliRunner

    from pgwerk.cli import cli
    answered = CliRunner().invoke(cli, ["purge", *db(app)], input="y\n")
    assert answered.exit_code == 0 and "deleted 2 job(s)" in answered.stdout
    make_job(app, status="complete", completed_at=ago(5))
    assert run("purge", *db(app), "--yes").stdout.strip() == "deleted 1 job(s)"


@pytest.mark.parametrize("value", ["7 days", "1x", "h", "-5s", "1h-30m", "nan"])
def test_purge__a_bad_duration_is_a_usage_error_naming_the_forms(app: Werk, value: str) -> None:
    make_job(app, status="complete", completed_at=ago(5))
    result = run("purge", *db(app), "--older-than", value, "--yes", ok=False)
    assert result.exit_code == 2 and "--older-than" in result.stderr
    assert count_rows(app) == 1


def test_an_id_and_filters_together_are_a_usage_error(app: Werk) -> None:
    job = _failed(app)
    result = run("retry", *db(app), str(job), "--queue", "default", ok=False)
    assert result.exit_code == 2 and "not both" in result.stderr
