"""Template filters: readable times and durations, one-line error summaries."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from markupsafe import Markup, escape


def human_seconds(value: float | None) -> str:
    """``42s``, ``3m 5s``, ``2h 10m``, ``3d 4h``."""
    if value is None:
        return ""
    seconds = max(0.0, float(value))
    if seconds < 10:
        return f"{seconds:.1f}s" if seconds % 1 else f"{int(seconds)}s"
    whole = int(seconds)
    for unit, size, smaller, small_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60),
                                            ("m", 60, "s", 1)):
        if whole >= size:
            rest = (whole % size) // small_size
            return f"{whole // size}{unit}" + (f" {rest}{smaller}" if rest else "")
    return f"{whole}s"


def exact(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def reltime(moment: datetime | None, now: datetime | None = None) -> Markup:
    """``<time>`` saying "5m ago" (or "in 5m"), the exact UTC time on hover."""
    if moment is None:
        return Markup("")
    now = now or datetime.now(timezone.utc)
    delta = (now - moment).total_seconds()
    shown = human_seconds(round(abs(delta)))
    text = "just now" if abs(delta) < 1 else (
        f"{shown} ago" if delta > 0 else f"in {shown}")
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        moment.isoformat(), exact(moment), text)


def duration(job: Any, now: datetime | None = None) -> str:
    """How long the job's latest attempt ran (or has been running)."""
    if job.started_at is None:
        return ""
    end = job.completed_at or (now or datetime.now(timezone.utc))
    return human_seconds((end - job.started_at).total_seconds())


def error_summary(error: str | None, width: int = 120) -> str:
    """The last line of a traceback (the exception), cut to ``width`` characters."""
    if not error:
        return ""
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return last if len(last) <= width else last[:width - 1] + "…"


def breakable(name: str) -> Markup:
    """A dotted name that may wrap after its dots and underscores on narrow screens."""
    return Markup("<wbr>").join(escape(part) for part in re.split(r"(?<=[._])", name))


def percent(fraction: float | None) -> str:
    """A job's progress as a whole percentage, rounded down (99.9% is not done yet)."""
    return "" if fraction is None else f"{int(fraction * 100)}%"


def register(env: Any) -> None:
    env.filters.update(human_seconds=human_seconds, exact=exact, reltime=reltime,
                       duration=duration, error_summary=error_summary, escape=escape,
                       breakable=breakable, percent=percent)
