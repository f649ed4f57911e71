"""Handlers and callbacks the tests enqueue. Module-level, so workers can import them as
``tests.jobs.<name>``."""

from __future__ import annotations

import time
from typing import Any


def noop() -> None:
    """Does nothing."""


def add(a: int, b: int) -> int:
    return a + b


def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Returns what it was called with."""
    return {"args": list(args), "kwargs": kwargs}


def fail(message: str = "boom") -> None:
    raise ValueError(message)


def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def on_done(ctx: Any) -> None:
    """A callback; receives a ``Context``."""


def on_error(ctx: Any) -> None:
    """A callback; receives a ``Context``."""


class Tasks:
    """Methods of a class (not of an instance) are importable by their dotted path."""

    @staticmethod
    def static_noop() -> None:
        pass

    @classmethod
    def class_noop(cls) -> None:
        pass

    def method_noop(self) -> None:
        pass
