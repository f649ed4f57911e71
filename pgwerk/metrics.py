"""Prometheus metrics for workers and queues (the ``metrics`` extra: prometheus-client).

Example::

    from pgwerk.metrics import WorkerMetrics, serve_metrics

    metrics = serve_metrics(app, port=9100)          # http://127.0.0.1:9100/metrics
    Worker(app, metrics=metrics).run()
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pgwerk.app import Werk
    from pgwerk.job import Job


def _prometheus() -> Any:
    try:
        import prometheus_client
        import prometheus_client.metrics_core  # noqa: F401
    except ImportError:
        raise ImportError(
            "pgwerk metrics need prometheus-client: pip install 'pgwerk[metrics]'"
        ) from None
    return prometheus_client


class WorkerMetrics:
    """Counters and a duration histogram that a ``Worker`` updates for every job.

    Metrics: ``pgwerk_jobs_started_total{queue,function}``,
    ``pgwerk_jobs_finished_total{queue,function,outcome}`` (outcome: success, error,
    timeout, aborted, interrupted), ``pgwerk_job_duration_seconds{queue,function}``, and,
    when created with an app, ``pgwerk_queue_jobs{queue,status}`` read at scrape time.
    """

    def __init__(self, app: Werk | None = None, registry: Any = None) -> None:
        prom = _prometheus()
        self.registry = registry if registry is not None else prom.CollectorRegistry()
        self.started = prom.Counter(
            "pgwerk_jobs_started", "Jobs a worker started.", ["queue", "function"],
            registry=self.registry)
        self.finished = prom.Counter(
            "pgwerk_jobs_finished", "Attempts that ended, by outcome.",
            ["queue", "function", "outcome"], registry=self.registry)
        self.duration = prom.Histogram(
            "pgwerk_job_duration_seconds", "Time spent in the handler.", ["queue", "function"],
            registry=self.registry)
        if app is not None:
            self.registry.register(QueueDepthCollector(app))

    def job_started(self, job: Job) -> None:
        self.started.labels(job.queue, job.function).inc()

    def job_finished(self, job: Job, outcome: str, duration: float) -> None:
        self.finished.labels(job.queue, job.function, outcome).inc()
        self.duration.labels(job.queue, job.function).observe(duration)


class QueueDepthCollector:
    """Reports job counts by queue and status from the database when scraped (cached for
    a second so that several scrapers do not multiply queries)."""

    def __init__(self, app: Werk, max_age: float = 1.0) -> None:
        self.app = app
        self.max_age = max_age
        self._cached: tuple[float, dict[str, dict[str, int]]] | None = None

    def collect(self) -> Iterator[Any]:
        prom = _prometheus()
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] > self.max_age:
            self._cached = (now, self.app.queue_stats())
        family = prom.metrics_core.GaugeMetricFamily(
            "pgwerk_queue_jobs", "Jobs by queue and status.", labels=["queue", "status"])
        for queue, counts in sorted(self._cached[1].items()):
            for status, count in sorted(counts.items()):
                family.add_metric([queue, status], count)
        yield family


def serve_metrics(app: Werk, port: int, addr: str = "127.0.0.1") -> WorkerMetrics:
    """Start an HTTP endpoint for Prometheus in a background thread and return the
    ``WorkerMetrics`` to pass to a ``Worker``. Binds to loopback unless told otherwise."""
    prom = _prometheus()
    metrics = WorkerMetrics(app)
    prom.start_http_server(port, addr=addr, registry=metrics.registry)
    return metrics
