"""The handlers: plain module-level functions. Workers import them by their dotted path
(``tasks.add``), so they must live in a module, not in the script you run."""

from __future__ import annotations

import logging
import time

logger = logging.getLogger(__name__)


def add(a: int, b: int) -> int:
    return a + b


def greet(name: str) -> str:
    logger.info("greeting %s", name)
    return f"Hello, {name}!"


def slow_square(n: int) -> int:
    time.sleep(0.1)  # pretend to work
    return n * n


def divide(a: float, b: float) -> float:
    return a / b  # fails for b == 0: the job ends "failed" with the traceback
