"""The dashboard's pure helpers: time and duration text, error summaries, the chart, the
signer and the credentials parser."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pgwerk.dashboard._auth import authorized, parse_credentials
from pgwerk.dashboard._csrf import Signer
from pgwerk.dashboard._format import breakable, error_summary, human_seconds, reltime
from pgwerk.dashboard._svg import throughput_chart

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (2.5, "2.5s"), (42, "42s"), (60, "1m"), (185, "3m 5s"), (7800, "2h 10m"),
    (3 * 86400 + 4 * 3600, "3d 4h"), (-5, "0s"), (None, ""),
])
def test_human_seconds(seconds: float | None, text: str) -> None:
    assert human_seconds(seconds) == text


def test_reltime__past_future_and_exact_time_on_hover() -> None:
    past = reltime(NOW - timedelta(minutes=5, seconds=3), now=NOW)
    assert ">5m 3s ago</time>" in past and 'title="2026-03-01 11:54:57 UTC"' in past
    assert ">in 2h</time>" in reltime(NOW + timedelta(hours=2), now=NOW)
    assert ">just now<" in reltime(NOW, now=NOW)
    assert reltime(None) == ""


def test_error_summary__last_line_cut_to_width() -> None:
    trace = "Traceback (most recent call last):\n  File x\nValueError: " + "v" * 200 + "\n\n"
    summary = error_summary(trace, width=40)
    assert summary.startswith("ValueError: vvv") and summary.endswith("…") and len(summary) == 40
    assert error_summary(None) == "" and error_summary("") == ""


def test_throughput_chart__bars_tooltips_and_a_round_axis() -> None:
    points = [{"minute": NOW + timedelta(minutes=i), "processed": p, "failed": f}
              for i, (p, f) in enumerate([(0, 0), (7, 2), (13, 0)])]
    svg = throughput_chart(points)
    assert '<div class="y-axis"><span>20</span><span>10</span><span>0</span>' in svg
    assert svg.count('class="bar-ok"') == 3 and svg.count('class="bar-failed"') == 1
    assert "<title>12:01 UTC: 7 processed, 2 failed</title>" in svg
    assert ">12:00<" in svg and ">12:02 UTC<" in svg
    assert throughput_chart([]) == ""


def test_signer__round_trip_and_tampering() -> None:
    signer = Signer(b"0123456789abcdef")
    token = signer.new_csrf_token()
    assert signer.valid_csrf(token, token)
    assert not signer.valid_csrf(token, token + "x")
    assert not Signer(b"fedcba9876543210").valid_csrf(token, token)
    assert not signer.valid_csrf(None, token) and not signer.valid_csrf(token, None)
    assert signer.read_flash(signer.flash("ok:job 1 queued again ✓")) == "ok:job 1 queued again ✓"
    assert signer.read_flash(signer.flash("x") + "tampered") is None
    assert signer.unsign("flash", signer.sign("csrf", "v")) is None  # purposes do not mix


def test_credentials__parsed_and_compared() -> None:
    assert parse_credentials("admin:a:b") == ("admin", "a:b")
    assert parse_credentials(None) is None
    header = "Basic YWRtaW46YTpi"  # admin:a:b
    assert authorized(header, ("admin", "a:b"))
    assert not authorized(header, ("admin", "a"))
    assert not authorized("Bearer YWRtaW46YTpi", ("admin", "a:b"))


def test_breakable__wraps_after_dots_and_underscores_and_escapes() -> None:
    assert breakable("shop.tasks.send_receipt") == "shop.<wbr>tasks.<wbr>send_<wbr>receipt"
    assert breakable("a<b>.c") == "a&lt;b&gt;.<wbr>c"
