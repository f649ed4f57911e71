"""Prometheus metrics for workers and queues (the ``metrics`` extra: prometheus-client).

Two kinds of series, exported by different processes:

* **Per worker** (every worker exports its own): jobs started and finished, durations,
  retries, jobs lost and rescued, busy and total slots, saturation, up, heartbeat age, plus
  the standard ``process_*`` and ``python_*`` series of the process.
* **Per queue** (job counts by queue and status, zero-filled; the age of the oldest queued
  job): read from the database, so every worker would report the same numbers and a
  ``sum()`` over workers would multiply them. They are exported by **one process only**:

  - with ``queue_metrics="leader"`` (the default of ``serve_metrics``) only by the longest
    running live worker (the worker registered first among those whose heartbeat is
    fresh); when it stops, the next one takes over at the following scrape. Other workers
    leave the series out.
  - or by a dedicated collector: ``metrics_wsgi_app(app)`` is a WSGI application to mount in
    a web app (at ``/metrics``, say) that exports the queue series; run the workers with
    ``queue_metrics=False`` then.

No ``*_created`` series are exported (``disable_created_metrics``).

Example::

    from pgwerk.metrics import serve_metrics

    metrics = serve_metrics(app, port=9100)          # http://127.0.0.1:9100/metrics
    Worker(app, metrics=metrics).run()

    # or, queue series from a web app, worker series from each worker:
    from pgwerk.metrics import metrics_wsgi_app
    urls = {"/metrics": metrics_wsgi_app(app)}       # mount it in your WSGI app
    metrics = serve_metrics(app, port=9100, queue_metrics=False)
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pgwerk.job import JobStatus

if TYPE_CHECKING:
    from pgwerk.app import Werk
    from pgwerk.job import Job
    from pgwerk.worker import Worker

#: Upper bounds (seconds) of the job duration histogram: 5 ms to one hour.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    600.0, 1800.0, 3600.0, math.inf,
)
#: What ``outcome`` of ``pgwerk_jobs_finished_total`` says: the status the attempt left the
#: job in (a retry leaves it ``queued`` or ``scheduled``), or ``snoozed`` for an attempt
#: that ended with ``Snooze`` (its job waits to run again, no retry spent).
OUTCOMES = ("complete", "failed", "aborted", "queued", "scheduled", "snoozed")
QUEUE_METRICS = ("leader", True, False)
_STATUSES = tuple(s.value for s in JobStatus)
_SETTLED = {"deleted": "failed", "released": "queued"}


def _prometheus() -> Any:
    try:
        import prometheus_client
        import prometheus_client.metrics_core  # noqa: F401
    except ImportError:
        raise ImportError(
            "pgwerk metrics need prometheus-client: pip install 'pgwerk[metrics]'"
        ) from None
    # A `_created` sample per series doubles what is stored and says nothing useful here.
    prometheus_client.disable_created_metrics()
    return prometheus_client


class WorkerMetrics:
    """The series a ``Worker`` updates, in a registry of their own.

    Args:
        app: the ``Werk`` whose queues to report (needed for ``queue_metrics``).
        registry: a prometheus ``CollectorRegistry`` (default: a new one).
        buckets: upper bounds of ``pgwerk_job_duration_seconds`` (default 5 ms to 1 h).
        queue_metrics: ``"leader"``: queue series only while this worker is the longest
            running live worker; ``True``: always; ``False``: never (a dedicated
            collector exports them).
        process_metrics: also export the ``process_*`` and ``python_*`` series.

    Series: ``pgwerk_jobs_started_total{queue,function}``,
    ``pgwerk_jobs_finished_total{queue,function,outcome}`` (outcome: complete, failed,
    aborted, queued/scheduled when a retry follows, or snoozed),
    ``pgwerk_job_duration_seconds{queue,function}``,
    ``pgwerk_job_retries_total{queue,function}``, ``pgwerk_jobs_lost_total`` (outcomes this
    worker could not record: the job was taken back from it), ``pgwerk_jobs_rescued_total``
    (jobs of dead workers this process's sweep put back or failed),
    ``pgwerk_worker_up``, ``pgwerk_worker_slots``, ``pgwerk_worker_busy_slots``,
    ``pgwerk_worker_saturation`` (busy / slots), ``pgwerk_worker_heartbeat_age_seconds``;
    and the queue series of ``QueueCollector``.
    """

    def __init__(self, app: Werk | None = None, registry: Any = None, *,
                 buckets: Sequence[float] = DEFAULT_BUCKETS,
                 queue_metrics: bool | str = "leader", process_metrics: bool = True) -> None:
        prom = _prometheus()
        if queue_metrics not in QUEUE_METRICS:
            raise ValueError(f"queue_metrics must be 'leader', True or False, got "
                             f"{queue_metrics!r}")
        bounds = sorted(float(b) for b in buckets)
        if not bounds or any(math.isnan(b) or b <= 0 for b in bounds):
            raise ValueError(f"buckets must be positive numbers, got {list(buckets)!r}")
        self.app = app
        self.registry = registry if registry is not None else prom.CollectorRegistry()
        self.worker: Worker | None = None
        self._last_heartbeat: float | None = None
        labels = ["queue", "function"]
        self.started = prom.Counter(
            "pgwerk_jobs_started", "Jobs a worker started.", labels, registry=self.registry)
        self.finished = prom.Counter(
            "pgwerk_jobs_finished", "Attempts that ended, by the status they left the job in.",
            [*labels, "outcome"], registry=self.registry)
        self.duration = prom.Histogram(
            "pgwerk_job_duration_seconds", "Time spent in the handler.", labels,
            buckets=bounds, registry=self.registry)
        self.retries = prom.Counter(
            "pgwerk_job_retries", "Failed attempts followed by another attempt.", labels,
            registry=self.registry)
        self.lost = prom.Counter(
            "pgwerk_jobs_lost", "Outcomes this worker could not record: the job was no "
            "longer its own (taken back by the sweep).", registry=self.registry)
        self.rescued = prom.Counter(
            "pgwerk_jobs_rescued", "Jobs of dead or silent workers this process's sweep put "
            "back (or failed, past max_lost).", registry=self.registry)
        self.registry.register(_WorkerCollector(self))
        if process_metrics:
            prom.ProcessCollector(registry=self.registry)
            prom.PlatformCollector(registry=self.registry)
            prom.GCCollector(registry=self.registry)
        if app is not None and queue_metrics is not False:
            leader = None if queue_metrics is True else self._is_queue_leader
            self.registry.register(QueueCollector(app, only_if=leader))

    # -- called by the worker ------------------------------------------------------------

    def attach(self, worker: Worker) -> None:
        """Report ``worker``'s slots, state and heartbeat (``Worker`` calls this)."""
        self.worker = worker

    def job_started(self, job: Job) -> None:
        self.started.labels(job.queue, job.function).inc()

    def job_finished(self, job: Job, status: str, duration: float) -> None:
        """An attempt ended and left the job in ``status`` (a job status, or the worker's
        ``deleted`` / ``released`` / ``snoozed``)."""
        outcome = _SETTLED.get(status, status)
        self.finished.labels(job.queue, job.function, outcome).inc()
        self.duration.labels(job.queue, job.function).observe(duration)
        if outcome == "scheduled" or (outcome == "queued" and status != "released"):
            self.retries.labels(job.queue, job.function).inc()

    def heartbeat(self) -> None:
        """The worker's heartbeat reached the database."""
        self._last_heartbeat = time.monotonic()

    def jobs_lost(self, count: int) -> None:
        self.lost.inc(count)

    def swept(self, counts: dict[str, int]) -> None:
        """What one sweep pass did (``Werk.sweep()``'s counts)."""
        if counts.get("rescued"):
            self.rescued.inc(counts["rescued"])

    # -- leadership of the queue series ---------------------------------------------------

    def _is_queue_leader(self) -> bool:
        worker, app = self.worker, self.app
        if worker is None or app is None or not _running(worker):
            return False
        fresh = 3 * worker.heartbeat_interval + 1
        live = [w for w in app.list_workers() if not w.stopping and w.heartbeat_age < fresh]
        first = min(live, key=lambda w: (w.started_at, w.id), default=None)
        return first is not None and first.id == worker.id


def _running(worker: Worker) -> bool:
    return worker._pool is not None and not worker._stopping.is_set()


class _WorkerCollector:
    """Reads the worker's state when scraped."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        core = _prometheus().metrics_core
        worker = self.metrics.worker
        up = worker is not None and _running(worker)
        yield core.GaugeMetricFamily("pgwerk_worker_up",
                                     "1 while the worker runs (0 once it is stopping).",
                                     value=1 if up else 0)
        if worker is None:
            return
        pool = worker._pool
        slots = worker.concurrency
        busy = slots - pool.free_slots() if pool is not None else 0
        yield core.GaugeMetricFamily("pgwerk_worker_slots", "Jobs the worker runs at once.",
                                     value=slots)
        yield core.GaugeMetricFamily("pgwerk_worker_busy_slots", "Slots running a job now.",
                                     value=busy)
        yield core.GaugeMetricFamily("pgwerk_worker_saturation",
                                     "Busy slots / slots (1: no room for another job).",
                                     value=busy / slots)
        beat = self.metrics._last_heartbeat
        if beat is not None:
            yield core.GaugeMetricFamily(
                "pgwerk_worker_heartbeat_age_seconds",
                "Seconds since the worker's last heartbeat reached the database.",
                value=time.monotonic() - beat)


class QueueCollector:
    """Job counts by queue and status (every known queue × every status, 0 when empty)
    and the age of each queue's oldest runnable job, read from the database when scraped
    (cached for ``max_age`` seconds so that several scrapers do not multiply queries).

    Args:
        app: the ``Werk`` whose queues to report.
        max_age: seconds a reading is reused.
        only_if: called at each scrape; the series are left out when it returns False.
        queues: queues to report even when no job and no worker names them yet.
    """

    def __init__(self, app: Werk, max_age: float = 1.0,
                 only_if: Callable[[], bool] | None = None,
                 queues: Iterable[str] = ()) -> None:
        self.app = app
        self.max_age = max_age
        self.only_if = only_if
        self.queues = set(queues)
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, dict[str, Any]]] | None = None

    def _stats(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] > self.max_age:
                stats = self.app.queue_stats()
                for worker in self.app.list_workers():
                    for queue in worker.queues:
                        stats.setdefault(queue, {})
                for queue in self.queues:
                    stats.setdefault(queue, {})
                self._cached = (now, stats)
            return self._cached[1]

    def collect(self) -> Iterator[Any]:
        if self.only_if is not None and not self.only_if():
            return
        core = _prometheus().metrics_core
        stats = self._stats()
        counts = core.GaugeMetricFamily(
            "pgwerk_queue_jobs", "Jobs by queue and status.", labels=["queue", "status"])
        oldest = core.GaugeMetricFamily(
            "pgwerk_queue_oldest_job_age_seconds",
            "Age of the queue's oldest runnable job (0 when none waits).", labels=["queue"])
        for queue, found in sorted(stats.items()):
            for status in _STATUSES:
                counts.add_metric([queue, status], int(found.get(status, 0)))
            oldest.add_metric([queue], float(found.get("oldest_queued_age") or 0.0))
        yield counts
        yield oldest


def queue_registry(app: Werk, queues: Iterable[str] = ()) -> Any:
    """A registry holding only the queue series of ``app`` (for a dedicated collector)."""
    prom = _prometheus()
    registry = prom.CollectorRegistry()
    registry.register(QueueCollector(app, queues=queues))
    return registry


def metrics_wsgi_app(app: Werk, queues: Iterable[str] = ()) -> Any:
    """A WSGI application serving the queue series of ``app`` in the Prometheus format:
    the dedicated collector to mount in a web app (then run the workers with
    ``queue_metrics=False``)."""
    return _prometheus().make_wsgi_app(queue_registry(app, queues))


def serve_metrics(app: Werk, port: int, addr: str = "127.0.0.1", *,
                  queue_metrics: bool | str = "leader",
                  buckets: Sequence[float] = DEFAULT_BUCKETS) -> WorkerMetrics:
    """Start an HTTP endpoint for Prometheus in a background thread and return the
    ``WorkerMetrics`` to pass to a ``Worker``. Binds to loopback unless told otherwise."""
    prom = _prometheus()
    metrics = WorkerMetrics(app, queue_metrics=queue_metrics, buckets=buckets)
    prom.start_http_server(port, addr=addr, registry=metrics.registry)
    return metrics
