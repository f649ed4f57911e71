"""Handlers the benchmark workers run (importable as ``benchmarks.tasks.<name>``)."""

from __future__ import annotations

import time
from typing import Any


def noop(**kwargs: Any) -> None:
    """Does nothing: the cost measured is the queue's own."""


def stamp(**kwargs: Any) -> float:
    """Returns the wall-clock time at which the handler started (the latency benchmark
    compares it with the wall-clock time taken just before ``enqueue`` was called)."""
    return time.time()
