"""Durations on the command line: ``30s``, ``15m``, ``7d``, ``1h30m`` or seconds."""

from __future__ import annotations

import pytest

from pgwerk._cli_support import fit_widths, parse_duration, show_duration


@pytest.mark.parametrize("text, seconds", [
    ("30s", 30), ("15m", 900), ("7d", 604800), ("1h30m", 5400), ("2w", 1209600),
    ("90", 90), ("0.5", 0.5), ("1.5h", 5400), (" 1H ", 3600),
])
def test_parse_duration__reads_units_and_plain_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "7 days", "1x", "h", "-5s", "-5", "inf", "1h-30m", "s1"])
def test_parse_duration__anything_else_says_what_is_allowed(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_show_duration__shortest_readable_form() -> None:
    assert [show_duration(s) for s in (0, 45, 5400, 604800, 0.25)] == [
        "0s", "45s", "1h30m", "7d", "0.25s"]


def test_fit_widths__cuts_the_widest_columns_first_down_to_a_minimum() -> None:
    assert fit_widths([5, 10, 60], 80) == [5, 10, 60]
    assert fit_widths([5, 40, 60], 80) == [5, 35, 36]
    assert sum(fit_widths([30] * 10, 80)) == 80


def test_fit_widths__fixed_columns_are_cut_last() -> None:
    assert fit_widths([30, 23, 23], 74, fixed={1, 2}) == [24, 23, 23]
    assert fit_widths([8, 23, 23], 40, fixed={1, 2}) == [8, 14, 14]
