"""``manage.py pgwerk_worker``: ``pgwerk-worker`` for the project's ``Werk``."""

from __future__ import annotations

import argparse
from typing import Any

import click
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from pgwerk._logging import LOG_FORMATS, LOG_LEVELS, configure_logging
from pgwerk.cli import DEQUEUE_STRATEGIES, POOL_KINDS


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


class Command(BaseCommand):
    help = ("Run a pgwerk worker for this project until SIGTERM/SIGINT (a second signal stops "
            "at once). Handlers run with Django set up; <app>.tasks modules are imported first.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-q", "--queues", default="default",
                            help="Queues to work on, comma-separated, in order of preference.")
        parser.add_argument("-c", "--concurrency", type=_positive(int), default=8,
                            help="Jobs run at once (default 8).")
        parser.add_argument("--pool", choices=POOL_KINDS, default="thread",
                            help="thread; fork (a child per job); process (CPU-bound work).")
        parser.add_argument("--burst", action="store_true",
                            help="Exit once the queues are empty.")
        parser.add_argument("--scheduler", action="store_true",
                            help="Also run the cron schedules the tasks modules register.")
        parser.add_argument("--metrics-port", type=_positive(int),
                            help="Serve Prometheus metrics on this port (pgwerk[metrics]).")
        parser.add_argument("--metrics-host", default="127.0.0.1")
        parser.add_argument("--poll-interval", type=_positive(float), default=1.0)
        parser.add_argument("--shutdown-timeout", type=float, default=30.0,
                            help="On SIGTERM, seconds running jobs may finish (default 30).")
        parser.add_argument("--dequeue-strategy", choices=DEQUEUE_STRATEGIES, default="priority")
        parser.add_argument("--log-level", choices=LOG_LEVELS,
                            type=str.upper, default="INFO")
        parser.add_argument("--log-format", choices=LOG_FORMATS, default="text")

    def handle(self, *args: Any, **options: Any) -> None:
        from pgwerk import Worker
        from pgwerk.cli import _check_metrics, _serve_metrics
        from pgwerk.contrib.django import get_werk
        from pgwerk.contrib.django._worker import after_job, before_job, discover_tasks

        queues = [q.strip() for q in options["queues"].split(",")]
        if not all(queues):
            raise CommandError(f"--queues: comma-separated queue names, got {options['queues']!r}")
        configure_logging(options["log_level"], options["log_format"])
        discover_tasks()
        werk = get_werk()
        metrics = None
        if options["metrics_port"] is not None:
            try:
                _check_metrics()
                metrics = _serve_metrics(werk, options["metrics_host"], options["metrics_port"],
                                         queue_metrics="leader")
            except click.ClickException as exc:
                raise CommandError(exc.format_message()) from None
        worker = Worker(werk, queues=list(dict.fromkeys(queues)),
                        concurrency=options["concurrency"], pool=options["pool"],
                        burst=options["burst"], poll_interval=options["poll_interval"],
                        shutdown_timeout=options["shutdown_timeout"],
                        dequeue_strategy=options["dequeue_strategy"], metrics=metrics,
                        before_process=before_job, after_process=after_job)
        scheduler = thread = None
        if options["scheduler"]:
            from pgwerk.cron import CronScheduler, run_in_thread

            scheduler = CronScheduler.of(werk)
            if not scheduler.names:
                self.stderr.write("--scheduler: no tasks module registers a cron schedule")
            thread = run_in_thread(scheduler)
        # No Django connection may be open when the fork and process pools fork: a child
        # would talk on the parent's socket. Handlers open their own, per thread or child.
        connections.close_all()
        try:
            worker.run()
        finally:
            if scheduler is not None and thread is not None:
                scheduler.stop()
                thread.join(timeout=10.0)
