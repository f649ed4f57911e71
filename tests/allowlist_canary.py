"""A module only the allow-list tests name in job rows: whether it is in ``sys.modules``
tells whether a worker imported it."""

from __future__ import annotations

from typing import Any


def run() -> str:
    return "ran"


def callback(ctx: Any) -> None:
    raise AssertionError("this callback must never be called")
