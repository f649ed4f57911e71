"""``Werk(handlers=[...])``: workers run only allowed functions and callbacks, and check
before importing anything; an unrestricted worker says at start that table writers can
run code."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from pgwerk import ConfigurationError, JobStatus, Werk
from tests import jobs
from tests.conftest import MakeApp
from tests.helpers import count_rows, eventually
from tests.worker_support import running_worker, wait_status

CANARY = "tests.allowlist_canary"


def test_worker__refuses_os_system_written_by_another_writer(
        make_app: MakeApp, tmp_path: Path) -> None:
    app = make_app(handlers=["tests.jobs"]).connect()
    writer = make_app(schema=app.config.schema)  # anyone with write access to the table
    marker = tmp_path / "pwned"
    evil = writer.enqueue("os.system", f"touch {marker}", _retry=3)
    assert evil is not None
    with running_worker(app):
        failed = wait_status(app, evil, JobStatus.Failed)
    assert not marker.exists()
    assert failed.attempts == 1  # not retried: no attempt could succeed
    assert "'os.system' is not allowed by this app's handlers (tests.jobs)" in (failed.error or "")


@pytest.mark.parametrize("pool", ["thread", "fork"])
def test_worker__a_refused_function_is_never_imported(make_app: MakeApp, pool: str) -> None:
    sys.modules.pop(CANARY, None)
    app = make_app(handlers=["tests.jobs.add"]).connect()
    writer = make_app(schema=app.config.schema)
    refused = writer.enqueue(f"{CANARY}.run")
    allowed = writer.enqueue(jobs.add, 1, 2)
    assert refused is not None and allowed is not None
    with running_worker(app, pool=pool):
        assert wait_status(app, allowed, JobStatus.Complete).result == 3
        failed = wait_status(app, refused, JobStatus.Failed)
    assert "neither imported nor run" in (failed.error or "")
    assert CANARY not in sys.modules


def test_worker__module_prefixes_and_exact_paths_are_allowed(make_app: MakeApp) -> None:
    app = make_app(handlers=["tests.worker_jobs", "tests.jobs.add"]).connect()
    writer = make_app(schema=app.config.schema)
    by_prefix = writer.enqueue("tests.worker_jobs.double", 4)
    exact = writer.enqueue("tests.jobs.add", 1, 1)
    sibling = writer.enqueue("tests.jobs.noop")  # same module, not listed
    lookalike = writer.enqueue("tests.worker_jobsx.double", 4)  # a prefix is a whole name
    assert by_prefix and exact and sibling and lookalike
    with running_worker(app):
        assert wait_status(app, by_prefix, JobStatus.Complete).result == 8
        assert wait_status(app, exact, JobStatus.Complete).result == 2
        wait_status(app, sibling, JobStatus.Failed)
        wait_status(app, lookalike, JobStatus.Failed)


def test_worker__a_refused_callback_is_not_imported_and_the_job_stays_complete(
        make_app: MakeApp, caplog: pytest.LogCaptureFixture) -> None:
    sys.modules.pop(CANARY, None)
    caplog.set_level(logging.ERROR, logger="pgwerk")
    app = make_app(handlers=["tests.jobs"]).connect()
    writer = make_app(schema=app.config.schema)
    job = writer.enqueue(jobs.add, 2, 2, _on_success=f"{CANARY}.callback")
    assert job is not None
    with running_worker(app):
        assert wait_status(app, job, JobStatus.Complete).result == 4
        eventually(lambda: f"callback '{CANARY}.callback' is not allowed" in caplog.text,
                   timeout=10, message="the refused callback is logged")
    assert CANARY not in sys.modules


def test_enqueue__a_function_or_callback_outside_the_allow_list_is_refused(
        make_app: MakeApp) -> None:
    app = make_app(handlers=["tests.jobs"]).connect()
    with pytest.raises(ValueError, match="'os.system' is not allowed.*nothing was enqueued"):
        app.enqueue("os.system", "true")
    with pytest.raises(ValueError, match="_on_failure 'os.system' is not allowed"):
        app.enqueue(jobs.noop, _on_failure="os.system")
    assert count_rows(app) == 0
    assert app.enqueue(jobs.noop) is not None


def test_worker__warns_at_start_only_when_every_function_may_run(
        make_app: MakeApp, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pgwerk")
    with running_worker(make_app().connect()):
        pass
    warnings = [r for r in caplog.records if "can run code here" in r.getMessage()]
    assert len(warnings) == 1
    caplog.clear()
    with running_worker(make_app(handlers=["tests.jobs"]).connect()):
        pass
    assert not [r for r in caplog.records if "can run code here" in r.getMessage()]


@pytest.mark.parametrize("value", ["tests.jobs", [], ["not a path"], ["tests..jobs"], [1]])
def test_handlers__bad_values_are_a_configuration_error(value: object) -> None:
    with pytest.raises(ConfigurationError, match="handlers"):
        Werk("postgresql://localhost/db", handlers=value)


def test_handlers__accept_modules_and_functions() -> None:
    app = Werk("postgresql://localhost/db", handlers=[jobs, jobs.add.__module__, jobs.add])
    assert app.config.handlers == ("tests.jobs", "tests.jobs.add")


def test_cron_register__a_function_outside_the_allow_list_is_refused(make_app: MakeApp) -> None:
    from pgwerk.cron import CronScheduler

    scheduler = CronScheduler(make_app(handlers=["tests.jobs"]))
    with pytest.raises(ValueError, match="'os.system' is not allowed"):
        scheduler.register("os.system", interval=60)
    assert scheduler.names == []
    scheduler.register(jobs.noop, interval=60)
