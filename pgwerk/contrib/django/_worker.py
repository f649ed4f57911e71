"""What a worker started by ``manage.py pgwerk_worker`` does around each job.

Django opens a connection per thread and never closes it outside a request; a worker is one
long request. As Django's request handler does, drop connections that are broken or past
``CONN_MAX_AGE`` before and after each job, so a database restart costs one failed job at
most, not every job of that thread from then on.
"""

from __future__ import annotations

from django.db import close_old_connections
from django.utils.module_loading import autodiscover_modules

from pgwerk._logging import bind_job, unbind_job
from pgwerk.job import Context

#: The module every installed app may have for its handlers and cron schedules.
TASKS_MODULE = "tasks"


def before_job(ctx: Context) -> None:
    bind_job(ctx)
    close_old_connections()


def after_job(ctx: Context) -> None:
    close_old_connections()
    unbind_job(ctx)


def discover_tasks() -> None:
    """Import ``<app>.tasks`` of every installed app that has one, so that the schedules
    they register exist before the scheduler starts."""
    autodiscover_modules(TASKS_MODULE)
