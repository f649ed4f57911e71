"""``manage.py pgwerk_cron``: ``pgwerk cron run`` for the project's ``Werk``."""

from __future__ import annotations

import argparse
from typing import Any

import click
from django.core.management.base import BaseCommand, CommandError

from pgwerk._logging import LOG_FORMATS, LOG_LEVELS


class Command(BaseCommand):
    help = ("Run the cron schedules that the installed apps' tasks modules register (no "
            "worker) until SIGTERM/SIGINT. One scheduler is active at a time across all "
            "processes; start one per machine for failover.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--retry-interval", type=float, default=5.0,
                            help="Seconds between attempts to become the leader (default 5).")
        parser.add_argument("--log-level", choices=LOG_LEVELS,
                            type=str.upper, default="INFO")
        parser.add_argument("--log-format", choices=LOG_FORMATS, default="text")

    def handle(self, *args: Any, **options: Any) -> None:
        from pgwerk.cli import cron_run
        from pgwerk.contrib.django import get_werk
        from pgwerk.contrib.django._worker import discover_tasks

        discover_tasks()
        get_werk()  # a settings error is reported here, as Django reports it
        try:
            cron_run.main(["pgwerk.contrib.django:werk", "--retry-interval",
                           str(options["retry_interval"]), "--log-level", options["log_level"],
                           "--log-format", options["log_format"]],
                          prog_name="manage.py pgwerk_cron", standalone_mode=False)
        except click.ClickException as exc:
            raise CommandError(exc.format_message()) from None
