"""Server-rendered SVG charts: no JavaScript, no CDN. Colours come from the stylesheet
(classes), so dark mode applies to charts too."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

WIDTH, HEIGHT = 600, 150
LEFT, BOTTOM, TOP = 34, 18, 8


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

    ``points`` are ``Werk.throughput()`` records, oldest first.
    """
    if not points:
        return ""
    top = _nice_ceiling(max(1, *(p["processed"] for p in points)))
    plot_w, plot_h = WIDTH - LEFT - 4, HEIGHT - BOTTOM - TOP
    slot = plot_w / len(points)
    bar = max(slot * 0.8, 1.0)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="Jobs processed and failed per minute">',
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - 4}" '
        f'y2="{TOP + plot_h}"/>',
        f'<line class="grid" x1="{LEFT}" y1="{TOP}" x2="{WIDTH - 4}" y2="{TOP}"/>',
        f'<text class="label" x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end">{top}</text>',
        f'<text class="label" x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end">0</text>',
    ]
    for i, point in enumerate(points):
        x = LEFT + i * slot + (slot - bar) / 2
        processed, failed = point["processed"], point["failed"]
        when = point["minute"].strftime("%H:%M")
        tip = escape(f"{when} UTC: {processed} processed, {failed} failed")
        height = plot_h * processed / top
        parts.append(f'<g><title>{tip}</title>'
                     f'<rect class="bar-ok" x="{x:.1f}" y="{TOP + plot_h - height:.1f}" '
                     f'width="{bar:.1f}" height="{height:.1f}"/>')
        if failed:
            fail_h = plot_h * failed / top
            parts.append(f'<rect class="bar-failed" x="{x:.1f}" '
                         f'y="{TOP + plot_h - fail_h:.1f}" width="{bar:.1f}" '
                         f'height="{fail_h:.1f}"/>')
        parts.append("</g>")
    for index, anchor in ((0, "start"), (len(points) // 2, "middle"), (len(points) - 1, "end")):
        x = LEFT + index * slot + slot / 2
        label = points[index]["minute"].strftime("%H:%M")
        parts.append(f'<text class="label" x="{x:.1f}" y="{HEIGHT - 4}" '
                     f'text-anchor="{anchor}">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)
