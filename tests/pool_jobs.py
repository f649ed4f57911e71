"""Handlers that misbehave towards the execution pools: they log in a tight loop while a
time limit may strike, or catch the interruptions pgwerk raises into them. Module-level, so
workers import them as ``tests.pool_jobs.<name>``."""

from __future__ import annotations

import logging
import os
import time

from pgwerk import Context
from tests.worker_jobs import record_event

#: A logger of its own with a handler whose lock an interruption may land in; it does not
#: propagate, so that tight loops do not fill the test's log capture.
spin_logger = logging.getLogger("tests.pool_jobs.spin")
spin_logger.propagate = False
spin_logger.setLevel(logging.INFO)
spin_handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the process
spin_logger.addHandler(spin_handler)


def log_in_a_loop(seconds: float = 5.0) -> int:
    """Logs as fast as it can (through ``spin_handler``) for ``seconds``."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        spin_logger.info("spinning %d", n)
        n += 1
    return n


def log_once(message: str) -> str:
    spin_logger.info("%s", message)
    logging.getLogger("tests.pool_jobs").warning("%s", message)
    return message


def swallow_interruptions(ctx: Context, seconds: float) -> str:
    """Catches everything raised into it (``except BaseException: pass``) and goes on for
    ``seconds``, then returns a value as if nothing happened."""
    record_event(ctx.app, ctx.job.id, "swallow-start")
    end = time.monotonic() + seconds
    swallowed = 0
    while True:
        try:
            if time.monotonic() >= end:
                break
            time.sleep(0.005)
        except BaseException:  # noqa: B036 - the point: swallow JobTimeout / JobAborted
            swallowed += 1
    return f"survived {swallowed} interruption(s)"


def log_in_a_loop_callback(ctx: Context) -> None:
    """A callback that logs as fast as it can until its timeout stops it."""
    log_in_a_loop(seconds=2.0)
