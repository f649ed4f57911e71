"""The handler the crontab line enqueues, and the app its worker runs.

    pgwerk-worker reports:app --queues reports
"""

from __future__ import annotations

import logging

from pgwerk import Werk

app = Werk(handlers=["reports"])  # $PGWERK_DSN; runs only this module's functions
logger = logging.getLogger(__name__)


def nightly_report(kind: str) -> str:
    logger.info("building the %s report", kind)
    return f"{kind} report done"
