"""Server-rendered SVG charts: no JavaScript, no CDN. Colours come from the stylesheet
(classes), so dark mode applies to charts too. The bars are an SVG stretched to the
width of the page; the axis labels are HTML around it, so they stay readable at any
width."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

WIDTH, HEIGHT = 1000, 100


def _nice_ceiling(value: int) -> int:
    """A round axis maximum at or above ``value`` (1, 2, 5, 10, 20, 50, ...)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def throughput_chart(points: Sequence[dict[str, Any]]) -> str:
    """Bars of processed attempts per minute, the failed part drawn over them in red.

    ``points`` are ``Werk.throughput()`` records, oldest first. Each bar has a tooltip
    with its minute and counts.
    """
    if not points:
        return ""
    top = _nice_ceiling(max(1, *(p["processed"] for p in points)))
    slot = WIDTH / len(points)
    bar = slot * 0.78
    bars = []
    for i, point in enumerate(points):
        x = i * slot + (slot - bar) / 2
        processed, failed = point["processed"], point["failed"]
        tip = escape(f"{point['minute']:%H:%M} UTC: {processed} processed, {failed} failed")
        height = HEIGHT * processed / top
        fail_h = HEIGHT * failed / top
        bars.append(
            f'<g><title>{tip}</title>'
            f'<rect class="bar-slot" x="{i * slot:.2f}" y="0" width="{slot:.2f}" '
            f'height="{HEIGHT}"/>'
            f'<rect class="bar-ok" x="{x:.2f}" y="{HEIGHT - height:.2f}" width="{bar:.2f}" '
            f'height="{height:.2f}"/>'
            + (f'<rect class="bar-failed" x="{x:.2f}" y="{HEIGHT - fail_h:.2f}" '
               f'width="{bar:.2f}" height="{fail_h:.2f}"/>' if failed else "")
            + "</g>")
    first, middle, last = points[0], points[len(points) // 2], points[-1]
    return (
        '<figure class="chart">'
        f'<div class="y-axis"><span>{top}</span><span>{top // 2 if top > 1 else ""}</span>'
        '<span>0</span></div>'
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" preserveAspectRatio="none" role="img" '
        'aria-label="Jobs processed and failed per minute">'
        f'<line class="grid" x1="0" y1="{HEIGHT / 2}" x2="{WIDTH}" y2="{HEIGHT / 2}" '
        'vector-effect="non-scaling-stroke"/>'
        + "".join(bars)
        + f'<line class="axis" x1="0" y1="{HEIGHT}" x2="{WIDTH}" y2="{HEIGHT}" '
        'vector-effect="non-scaling-stroke"/></svg>'
        f'<div class="x-axis"><span>{first["minute"]:%H:%M}</span>'
        f'<span>{middle["minute"]:%H:%M}</span><span>{last["minute"]:%H:%M} UTC</span></div>'
        "</figure>")
