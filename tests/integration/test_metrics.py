"""Prometheus metrics, scraped from the real ``/metrics`` endpoint of a running worker:
counts by outcome (job status names), retries, lost and rescued jobs, slots, heartbeat,
zero-filled queue gauges exported by one worker only, and no ``_created`` series."""

from __future__ import annotations

import re
import socket
import urllib.request
from collections.abc import Iterator
from wsgiref.util import setup_testing_defaults

import pytest

from pgwerk import JobStatus, Werk
from pgwerk.metrics import WorkerMetrics, metrics_wsgi_app, serve_metrics
from tests import jobs, worker_jobs
from tests.helpers import ago, eventually, make_job, set_columns
from tests.worker_support import WorkerThread, running_worker, wait_status


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Endpoint:
    """A worker's metrics served on a port of their own."""

    def __init__(self, app: Werk, **options: object) -> None:
        self.port = _free_port()
        self.metrics = serve_metrics(app, self.port, **options)  # type: ignore[arg-type]

    def scrape(self) -> str:
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            return str(response.read().decode())

    def value(self, name: str, **labels: str) -> float | None:
        return sample(self.scrape(), name, **labels)


def sample(body: str, name: str, **labels: str) -> float | None:
    """The value of one series in a scrape, None when it is absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in body.splitlines():
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if match and match.group(1) == name:
            found = ",".join(sorted((match.group(2) or "").split(",")))
            if found == wanted or (not labels and not match.group(2)):
                return float(match.group(3))
    return None


@pytest.fixture
def endpoint(app: Werk) -> Iterator[Endpoint]:
    yield Endpoint(app)


def test_worker__counts_attempts_by_the_status_they_left_the_job_in(
        app: Werk, endpoint: Endpoint) -> None:
    done = [app.enqueue(jobs.add, 1, 2), app.enqueue(jobs.add, 2, 3)]
    failed = app.enqueue(jobs.fail, _retry=2)
    with running_worker(app, concurrency=2, metrics=endpoint.metrics):
        for job in done:
            wait_status(app, job, JobStatus.Complete)  # type: ignore[arg-type]
        wait_status(app, failed, JobStatus.Failed)  # type: ignore[arg-type]
        body = endpoint.scrape()
    add, fail = "tests.jobs.add", "tests.jobs.fail"
    assert sample(body, "pgwerk_jobs_started_total", queue="default", function=add) == 2
    assert sample(body, "pgwerk_jobs_finished_total", queue="default", function=add,
                  outcome="complete") == 2
    assert sample(body, "pgwerk_jobs_finished_total", queue="default", function=fail,
                  outcome="queued") == 1
    assert sample(body, "pgwerk_jobs_finished_total", queue="default", function=fail,
                  outcome="failed") == 1
    assert sample(body, "pgwerk_job_retries_total", queue="default", function=fail) == 1
    assert 'outcome="success"' not in body and 'outcome="error"' not in body
    assert sample(body, "pgwerk_job_duration_seconds_bucket", queue="default", function=add,
                  le="3600.0") == 2
    assert "_created" not in body
    assert "process_cpu_seconds_total" in body and "python_info" in body


def test_worker__counts_a_snooze_as_snoozed_not_as_a_retry(app: Werk,
                                                          endpoint: Endpoint) -> None:
    job = app.enqueue(worker_jobs.snooze, 1, 0, "return")
    with running_worker(app, concurrency=1, metrics=endpoint.metrics):
        wait_status(app, job, JobStatus.Complete)  # type: ignore[arg-type]
        body = endpoint.scrape()
    name = "tests.worker_jobs.snooze"
    assert sample(body, "pgwerk_jobs_finished_total", queue="default", function=name,
                  outcome="snoozed") == 1
    assert sample(body, "pgwerk_jobs_finished_total", queue="default", function=name,
                  outcome="complete") == 1
    assert sample(body, "pgwerk_job_retries_total", queue="default", function=name) in (
        None, 0.0)


def test_worker__slots_saturation_up_and_heartbeat_age(app: Werk, endpoint: Endpoint) -> None:
    assert endpoint.value("pgwerk_worker_up") == 0  # no worker yet
    with running_worker(app, concurrency=2, metrics=endpoint.metrics):
        job = app.enqueue(jobs.sleep_for, 1.0)
        wait_status(app, job, JobStatus.Active)  # type: ignore[arg-type]
        body = eventually(lambda: (b := endpoint.scrape()) and
                          sample(b, "pgwerk_worker_busy_slots") == 1 and b)
        assert sample(body, "pgwerk_worker_up") == 1
        assert sample(body, "pgwerk_worker_slots") == 2
        assert sample(body, "pgwerk_worker_saturation") == 0.5
        age = eventually(lambda: endpoint.value("pgwerk_worker_heartbeat_age_seconds"))
        assert 0 <= age < 5
    assert endpoint.value("pgwerk_worker_up") == 0


def test_queue_gauges__every_known_queue_times_every_status_and_the_oldest_age(
        app: Werk, endpoint: Endpoint) -> None:
    waiting = make_job(app, options={"_queue": "mail"})
    set_columns(app, waiting.id, enqueued_at=ago(120), scheduled_at=ago(120))
    make_job(app, options={"_queue": "mail"}, status="failed")
    with running_worker(app, queues=["idle"], metrics=endpoint.metrics):
        body = eventually(lambda: (b := endpoint.scrape()) and "pgwerk_queue_jobs{" in b and b)
    for status in ("queued", "failed", "complete", "active", "scheduled"):
        assert sample(body, "pgwerk_queue_jobs", queue="mail", status=status) == (
            1 if status in ("queued", "failed") else 0)
        assert sample(body, "pgwerk_queue_jobs", queue="idle", status=status) == 0
    mail_age = sample(body, "pgwerk_queue_oldest_job_age_seconds", queue="mail")
    assert mail_age is not None and 110 < mail_age < 600
    assert sample(body, "pgwerk_queue_oldest_job_age_seconds", queue="idle") == 0


def test_queue_gauges__one_worker_exports_them_and_another_takes_over(app: Werk) -> None:
    first, second = Endpoint(app), Endpoint(app)
    one = WorkerThread(app, queues=["q"], metrics=first.metrics).start()
    two = WorkerThread(app, queues=["q"], metrics=second.metrics).start()
    try:
        assert "pgwerk_queue_jobs{" in first.scrape()
        assert "pgwerk_queue_jobs{" not in second.scrape()
        assert "pgwerk_worker_up 1.0" in second.scrape()
        one.stop()
        eventually(lambda: "pgwerk_queue_jobs{" in second.scrape(), timeout=10,
                   message="the second worker exporting the queue series")
    finally:
        for runner in (one, two):
            if runner.thread.is_alive():
                runner.stop()


def test_queue_gauges__a_dedicated_wsgi_collector(app: Werk) -> None:
    make_job(app, options={"_queue": "mail"})
    environ: dict[str, object] = {}
    setup_testing_defaults(environ)
    responses: list[str] = []
    body = b"".join(metrics_wsgi_app(app, queues=["spare"])(
        environ, lambda status, headers: responses.append(status))).decode()
    assert responses == ["200 OK"]
    assert sample(body, "pgwerk_queue_jobs", queue="mail", status="queued") == 1
    assert sample(body, "pgwerk_queue_jobs", queue="spare", status="queued") == 0
    workers_only = WorkerMetrics(app, queue_metrics=False)
    assert workers_only.registry.get_sample_value(
        "pgwerk_queue_jobs", {"queue": "mail", "status": "queued"}) is None


def test_rescued_and_lost_jobs_are_counted(app: Werk, endpoint: Endpoint) -> None:
    orphan = make_job(app, status="active", attempts=1, worker_id="dead.1.x",
                      started_at=ago(30), options={"_queue": "elsewhere"})
    with running_worker(app, concurrency=1, metrics=endpoint.metrics) as worker:
        eventually(lambda: endpoint.value("pgwerk_jobs_rescued_total") == 1, timeout=15,
                   message="the sweep rescuing the orphan")
        assert app.get_job(orphan.id).status is JobStatus.Queued
        job = app.enqueue(jobs.sleep_for, 0.5)
        assert job is not None
        wait_status(app, job, JobStatus.Active)
        # Taken from the worker while it runs (as a sweep would after a lapsed heartbeat).
        set_columns(app, job.id, worker_id="another.2.y")
        eventually(lambda: endpoint.value("pgwerk_jobs_lost_total") == 1, timeout=15)
        assert worker.processed >= 1


def test_buckets_and_queue_metrics_are_checked() -> None:
    with pytest.raises(ValueError, match="buckets"):
        WorkerMetrics(buckets=[0, 1])
    with pytest.raises(ValueError, match="queue_metrics"):
        WorkerMetrics(queue_metrics="sometimes")
    custom = WorkerMetrics(buckets=[1, 7200])
    custom.duration.labels("q", "f").observe(3000)
    assert custom.registry.get_sample_value(
        "pgwerk_job_duration_seconds_bucket", {"queue": "q", "function": "f", "le": "7200.0"}) == 1
