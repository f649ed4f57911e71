"""``pgwerk queue set`` and ``pgwerk queue show``: the limits of queues from the command
line, with bad values refused (naming the option, exit status 2) before anything is
written."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from pgwerk import Werk
from tests.integration.test_cli import as_json, db, run


@pytest.fixture
def app_spec(app: Werk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``module:attribute`` of a module in the current directory holding a Werk on the
    test's schema."""
    name = f"cliqueue_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        f"from pgwerk import Werk\napp = Werk({app.dsn!r}, schema={app.config.schema!r})\n")
    monkeypatch.chdir(tmp_path)
    return f"{name}:app"


def test_queue_set__sets_changes_and_removes_limits(app: Werk) -> None:
    result = run("queue", "set", *db(app), "mail", "--rate", "10/s", "--concurrency", "3")
    assert result.stdout.strip() == (
        "mail: rate 10/s (0 started in the current window), concurrency 3 (0 running)")
    [limit] = app.queue_limits()
    assert (limit.rate_limit, limit.rate_period, limit.concurrency) == (10, 1.0, 3)

    assert run("queue", "set", *db(app), "mail", "--no-rate").stdout.strip() == (
        "mail: concurrency 3 (0 running)")
    assert run("queue", "set", *db(app), "mail", "--no-concurrency").stdout.strip() == (
        "mail: no limits")
    assert app.queue_limits() == []


def test_queue_set__limits_one_function_and_answers_json(app: Werk, app_spec: str) -> None:
    result = run("queue", "set", app_spec, "mail", "--function", "tests.jobs.noop",
                 "--rate", "50/15m", "--json")
    assert as_json(result)["limits"]["rate"] == "50/15m"
    assert [(x.function, x.rate_period) for x in app.queue_limits("mail")] == [
        ("tests.jobs.noop", 900.0)]


def test_queue_show__lists_limits_with_what_they_hold(app: Werk, app_spec: str) -> None:
    assert "no queue limits" in run("queue", "show", *db(app)).stdout
    app.configure_queue("mail", rate_limit="10/s")
    app.configure_queue("reports", concurrency=2)
    table = run("queue", "list", *db(app)).stdout
    assert "10/s" in table and "reports" in table
    shown = as_json(run("queue", "show", app_spec, "reports", "--json"))
    assert [(x["queue"], x["concurrency"], x["running"]) for x in shown] == [("reports", 2, 0)]


@pytest.mark.parametrize(("args", "words"), [
    (["--rate", "0/s"], "'0/s' is not a rate"),
    (["--rate", "ten/s"], "is not a rate"),
    (["--rate", "10/ms"], "is not a rate"),
    (["--concurrency", "0"], "concurrency must be >= 1"),
    (["--concurrency", "many"], "'many' is not a valid integer"),
    (["--rate", "1/s", "--no-rate"], "give --rate or --no-rate, not both"),
    (["--concurrency", "1", "--no-concurrency"], "not both"),
    ([], "nothing to set"),
    (["--concurrency", "1", "--function", "not a path"], "is not a dotted import path"),
])
def test_queue_set__bad_values_are_usage_errors_and_write_nothing(
        app: Werk, args: list[str], words: str) -> None:
    app.configure_queue("mail", rate_limit="5/s")
    before = app.queue_limits()
    result = run("queue", "set", *db(app), "mail", *args, ok=False)
    assert result.exit_code == 2, result.output
    assert words in result.output
    assert app.queue_limits() == before
