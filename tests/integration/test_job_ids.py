"""Job ids as users hold them: an int, or a decimal string from a URL, a form or a command
line. Any other string names no job: ``JobNotFound`` for lookups (``False`` where a missing
job is ``False``), ``ValueError`` for ``_depends_on``; never a ``TypeError`` or a psycopg
error."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from pgwerk import Dependency, JobNotFound, JobStatus, Werk
from tests import jobs
from tests.helpers import count_rows, make_job

NOT_IDS = ["abc", "²", "١٢", "1.5", "", " 1", "-1", "+1", "1e3", "0", "9223372036854775808",
           "9" * 5000, 2**63, 2**100]
#: A few of them, for every entry point (all of them go through the same check).
SOME_NOT_IDS = ["abc", "²", "1.5", "", 2**63]

LOOKUPS: dict[str, Callable[[Werk, Any], Any]] = {
    "get_job": lambda app, i: app.get_job(i),
    "wait_for": lambda app, i: app.wait_for(i, timeout=5),
    "cancel_job": lambda app, i: app.cancel_job(i),
    "abort_job": lambda app, i: app.abort_job(i),
    "requeue_job": lambda app, i: app.requeue_job(i),
    "get_executions": lambda app, i: app.get_executions(i),
    "get_job_dependencies": lambda app, i: app.get_job_dependencies(i),
}
#: Calls that answer False for a job that does not exist.
ANSWERS_FALSE: dict[str, Callable[[Werk, Any], Any]] = {
    "delete_job": lambda app, i: app.delete_job(i),
    "touch_job": lambda app, i: app.touch_job(i),
}


# -- decimal strings work like ints ---------------------------------------------------------


def test_get_job__decimal_string_finds_the_job(app: Werk) -> None:
    job = make_job(app)
    assert app.get_job(str(job.id)) == job
    assert app.get_job(f"000{job.id}") == job


def test_wait_for__decimal_string_waits_for_the_job(app: Werk) -> None:
    job = make_job(app, status="complete", attempts=1)
    assert app.wait_for(str(job.id), timeout=5).status is JobStatus.Complete
    assert app.wait_for(str(job.id), timeout=timedelta(seconds=5)).id == job.id


def test_management_calls__take_a_decimal_string(app: Werk) -> None:
    queued, failed = make_job(app), make_job(app, status="failed", attempts=1)
    running = make_job(app, status="active", attempts=1, worker_id="w")
    assert app.cancel_job(str(queued.id)) is True
    assert app.abort_job(str(queued.id)) is False
    assert app.requeue_job(str(failed.id)) is True
    assert app.touch_job(str(running.id)) is True
    assert app.get_executions(str(failed.id)) == app.get_executions(failed.id)
    assert app.get_job_dependencies(str(failed.id)) == []
    assert app.delete_job(str(queued.id)) is True
    assert count_rows(app) == 2


def test_abort_job__decimal_string_stops_a_running_job(app: Werk) -> None:
    job = make_job(app, status="active", attempts=1)
    assert app.abort_job(str(job.id)) is True
    assert app.get_job(job.id).status is JobStatus.Aborting


# -- other strings and out-of-range numbers name no job ----------------------------------------


def _short(value: Any) -> str:
    return repr(value)[:20]


@pytest.mark.parametrize("bad", NOT_IDS, ids=_short)
def test_get_job__what_is_not_an_id_is_job_not_found(app: Werk, bad: Any) -> None:
    make_job(app)
    with pytest.raises(JobNotFound) as info:
        app.get_job(bad)
    assert info.value.job_id == bad


@pytest.mark.parametrize("call", LOOKUPS.values(), ids=LOOKUPS.keys())
@pytest.mark.parametrize("bad", SOME_NOT_IDS, ids=_short)
def test_lookups__what_is_not_an_id_is_job_not_found(
        app: Werk, call: Callable[[Werk, Any], Any], bad: Any) -> None:
    make_job(app)
    with pytest.raises(JobNotFound) as info:
        call(app, bad)
    assert info.value.job_id == bad
    assert count_rows(app) == 1


@pytest.mark.parametrize("call", ANSWERS_FALSE.values(), ids=ANSWERS_FALSE.keys())
@pytest.mark.parametrize("bad", SOME_NOT_IDS, ids=_short)
def test_delete_and_touch__what_is_not_an_id_is_false(
        app: Werk, call: Callable[[Werk, Any], Any], bad: Any) -> None:
    make_job(app)
    assert call(app, bad) is False
    assert count_rows(app) == 1


def test_job_not_found__message_quotes_a_string_id(app: Werk) -> None:
    with pytest.raises(JobNotFound, match=r"^no job with id ''$"):
        app.get_job("")
    with pytest.raises(JobNotFound, match=r"^no job with id 'abc'$"):
        app.get_job("abc")
    with pytest.raises(JobNotFound, match=r"^no job with id 9223372036854775808$"):
        app.get_job(2**63)


@pytest.mark.parametrize("call", {**LOOKUPS, **ANSWERS_FALSE}.values(),
                         ids={**LOOKUPS, **ANSWERS_FALSE}.keys())
@pytest.mark.parametrize("bad", [True, 1.0, None])
def test_id_taking_calls__bool_float_none_bytes_are_a_type_error(
        app: Werk, call: Callable[[Werk, Any], Any], bad: Any) -> None:
    with pytest.raises(TypeError, match="job id is an int or a string of digits"):
        call(app, bad)


# -- _depends_on -------------------------------------------------------------------------------


def test_depends_on__decimal_string_is_the_job_with_that_id(app: Werk) -> None:
    upstream = make_job(app)
    for depends_on in (str(upstream.id), [str(upstream.id)],
                       Dependency(str(upstream.id), allow_failure=True)):
        job = app.enqueue(jobs.noop, _depends_on=depends_on)
        assert job is not None and job.status is JobStatus.Waiting
        assert [d["id"] for d in app.get_job_dependencies(job.id)] == [upstream.id]


@pytest.mark.parametrize("bad", NOT_IDS, ids=_short)
def test_depends_on__what_is_not_an_id_is_a_value_error_and_writes_nothing(
        app: Werk, bad: Any) -> None:
    upstream = make_job(app)
    for depends_on in (bad, [upstream, bad]):
        with pytest.raises(ValueError, match=r"^_depends_on: .* is not a job id"):
            app.enqueue(jobs.noop, _depends_on=depends_on)
    with pytest.raises(ValueError, match=r"is not a job id"):
        app.enqueue(jobs.noop, _depends_on=Dependency(bad))
    assert count_rows(app) == 1
    assert count_rows(app, "job_deps") == 0


@pytest.mark.parametrize("bad", [True, 1.5, None])
def test_depends_on__bool_or_float_is_a_type_error(app: Werk, bad: Any) -> None:
    with pytest.raises(TypeError, match="_depends_on"):
        app.enqueue(jobs.noop, _depends_on=[bad])
    assert count_rows(app) == 0
