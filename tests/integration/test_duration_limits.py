"""Durations are finite and capped at ten years everywhere: the reported cases, and the
largest allowed values working end to end on a real worker and a real sweep."""

from __future__ import annotations

import math
from typing import Any

import pytest

from pgwerk import Callback, ConfigurationError, JobStatus, Repeat, Retry, Werk
from pgwerk._validate import MAX_SECONDS
from tests import jobs
from tests.conftest import MakeApp
from tests.helpers import ChannelSpy, count_rows, query
from tests.worker_support import run_burst

RANGE = r"<= 315576000 seconds \(ten years\)"


def _rejected_and_nothing_written(app: Werk, words: str, **options: Any) -> None:
    with ChannelSpy(app.dsn, app._store.channel) as spy:
        with pytest.raises(ValueError, match=words):
            app.enqueue(jobs.noop, **options)
        assert spy.payloads() == []
    assert count_rows(app) == 0


# -- the reported cases ------------------------------------------------------------------------


def test_enqueue__timeout_1e300_is_rejected_before_it_reaches_a_worker(app: Werk) -> None:
    _rejected_and_nothing_written(app, rf"^_timeout must be > 0 and {RANGE}, got 1e\+300$",
                                  _timeout=1e300)


@pytest.mark.parametrize("option", ["_delay", "_ttl"])
def test_enqueue__delay_or_ttl_1e300_is_a_clear_error_not_a_database_one(
        app: Werk, option: str) -> None:
    _rejected_and_nothing_written(app, rf"^{option} must be .* {RANGE}, got 1e\+300$",
                                  **{option: 1e300})


def test_config__nan_max_active_secs_is_rejected_before_any_sweep(pg_dsn: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"^max_active_secs must be > 0 and {RANGE}, "
                                                 r"got nan$"):
        Werk(pg_dsn, max_active_secs=math.nan)


def test_config__infinite_result_ttl_is_rejected(pg_dsn: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"^result_ttl must be >= 0 and {RANGE}, "
                                                 r"got inf$"):
        Werk(pg_dsn, result_ttl=math.inf)


@pytest.mark.parametrize(("make", "words"), [
    (lambda: Retry(max=3, intervals=math.inf), r"Retry.intervals must be"),
    (lambda: Retry(max=3, intervals=[10, math.inf]), r"Retry.intervals\[1\] must be"),
    (lambda: Repeat(times=2, interval=math.inf), r"Repeat.interval must be"),
    (lambda: Repeat(times=2, intervals=[math.inf]), r"Repeat.intervals\[0\] must be"),
    (lambda: Callback(func=jobs.on_done, timeout=math.inf), r"Callback.timeout must be > 0"),
], ids=["retry", "retry-list", "repeat", "repeat-list", "callback"])
def test_retry_repeat_callback__infinity_is_rejected_when_built(make: Any, words: str) -> None:
    with pytest.raises(ValueError, match=rf"^{words} .*{RANGE}, got inf$"):
        make()


# -- the largest allowed values are safe -----------------------------------------------------


def test_worker__runs_a_job_whose_every_duration_is_at_the_cap(make_app: MakeApp) -> None:
    app = make_app(result_ttl=MAX_SECONDS, failure_ttl=MAX_SECONDS,
                   max_active_secs=MAX_SECONDS).connect()
    job = app.enqueue(
        jobs.add, 1, 2, _timeout=MAX_SECONDS, _ttl=MAX_SECONDS, _result_ttl=MAX_SECONDS,
        _failure_ttl=MAX_SECONDS, _retry=Retry(max=2, intervals=[MAX_SECONDS]),
        _on_success=Callback(func=jobs.on_done, timeout=MAX_SECONDS),
    )
    assert job is not None
    run_burst(app, timeout_grace=MAX_SECONDS, shutdown_timeout=MAX_SECONDS)
    done = app.get_job(job.id)
    assert (done.status, done.result, done.timeout) == (JobStatus.Complete, 3, MAX_SECONDS)


def test_enqueue__delay_at_the_cap_schedules_ten_years_ahead(app: Werk) -> None:
    job = app.enqueue(jobs.noop, _delay=MAX_SECONDS, _repeat=Repeat(times=1,
                                                                    interval=MAX_SECONDS))
    assert job is not None and job.status is JobStatus.Scheduled
    ahead = (job.scheduled_at - job.enqueued_at).total_seconds()
    assert ahead == pytest.approx(MAX_SECONDS, abs=1)


def test_sweep__works_with_max_active_secs_and_a_timeout_at_the_cap(make_app: MakeApp) -> None:
    app = make_app(max_active_secs=MAX_SECONDS).connect()
    job = app.enqueue(jobs.noop, _timeout=MAX_SECONDS)
    assert job is not None
    query(app, "INSERT INTO {workers} (id, hostname, pid, queues, concurrency, pool) "
               "VALUES ('alive', 'h', 1, ARRAY['default'], 1, 'thread')")
    query(app, "UPDATE {jobs} SET status = 'active', attempts = 1, worker_id = 'alive', "
               "started_at = now() - interval '9 years', heartbeat_at = now() WHERE id = %s",
          [job.id])
    assert app.sweep()["rescued"] == 0
    assert app.get_job(job.id).status is JobStatus.Active
