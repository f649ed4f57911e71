"""Prometheus metrics: a worker counts what it runs, the endpoint reports queue depth."""

from __future__ import annotations

import socket
import urllib.request

from pgwerk import Werk, Worker
from pgwerk.metrics import WorkerMetrics, serve_metrics
from tests import jobs


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _value(metrics: WorkerMetrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_metrics__worker_counts_started_and_finished_jobs_by_outcome(app: Werk) -> None:
    metrics = WorkerMetrics()
    app.enqueue(jobs.add, 1, 2)
    app.enqueue(jobs.add, 2, 3)
    app.enqueue(jobs.fail)
    Worker(app, concurrency=2, burst=True, poll_interval=0.1, metrics=metrics).run()

    add, fail = "tests.jobs.add", "tests.jobs.fail"
    assert _value(metrics, "pgwerk_jobs_started_total", queue="default", function=add) == 2
    assert _value(metrics, "pgwerk_jobs_finished_total", queue="default", function=add,
                  outcome="success") == 2
    assert _value(metrics, "pgwerk_jobs_finished_total", queue="default", function=fail,
                  outcome="error") == 1
    assert _value(metrics, "pgwerk_job_duration_seconds_count", queue="default",
                  function=add) == 2


def test_metrics__endpoint_serves_queue_depth_from_the_database(app: Werk) -> None:
    app.enqueue(jobs.add, 1, 2, _queue="mail")
    app.enqueue(jobs.add, 1, 2, _queue="mail")
    app.enqueue(jobs.add, 1, 2, _queue="other", _delay=60)
    port = _free_port()
    serve_metrics(app, port)

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        body = response.read().decode()

    assert 'pgwerk_queue_jobs{queue="mail",status="queued"} 2.0' in body
    assert 'pgwerk_queue_jobs{queue="other",status="scheduled"} 1.0' in body
