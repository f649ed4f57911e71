"""The shared checks of durations, integers and job ids: pure, no database."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest

from pgwerk._validate import (
    BIGINT_MAX,
    MAX_SECONDS,
    integer,
    is_int,
    job_id_or_none,
    seconds,
)

TEN_YEARS = 10 * 365.25 * 86400

# -- seconds ------------------------------------------------------------------------------


def test_seconds__cap_is_ten_years() -> None:
    assert MAX_SECONDS == TEN_YEARS == 315_576_000


@pytest.mark.parametrize(("value", "expected"), [
    (0, 0.0), (1, 1.0), (2.5, 2.5), (timedelta(minutes=2), 120.0), (TEN_YEARS, TEN_YEARS),
    (int(TEN_YEARS), TEN_YEARS), (timedelta(days=3652, hours=12), TEN_YEARS),
])
def test_seconds__accepts_numbers_and_timedeltas_up_to_the_cap(value: Any,
                                                               expected: float) -> None:
    found = seconds("_delay", value)
    assert found == expected and type(found) is float


def test_seconds__none_means_not_set() -> None:
    assert seconds("_delay", None) is None


@pytest.mark.parametrize("value", [
    math.inf, -math.inf, math.nan, 1e300, TEN_YEARS + 0.001, 10**400, -1, -0.001,
    timedelta(days=3653), timedelta(seconds=-1), timedelta.max,
])
def test_seconds__out_of_range_is_a_value_error_naming_option_value_and_range(
        value: Any) -> None:
    with pytest.raises(ValueError) as info:
        seconds("_ttl", value)
    message = str(info.value)
    assert message.startswith("_ttl must be >= 0 and <= 315576000 seconds (ten years), got ")
    assert message.endswith(repr(value))


@pytest.mark.parametrize("value", [True, False, "5", b"5", [5], object()])
def test_seconds__what_is_not_a_number_is_a_type_error(value: Any) -> None:
    with pytest.raises(TypeError, match=r"^_delay must be a number of seconds \(int, float or "
                                        r"timedelta\), got "):
        seconds("_delay", value)


@pytest.mark.parametrize("value", [0, 0.0, timedelta(0), -0.0])
def test_seconds__zero_is_refused_where_positive(value: Any) -> None:
    with pytest.raises(ValueError, match=r"^_timeout must be > 0 and <= 315576000 seconds"):
        seconds("_timeout", value, positive=True)


def test_seconds__tiny_positive_value_is_accepted_where_positive() -> None:
    assert seconds("_timeout", 1e-6, positive=True) == 1e-6


# -- integers -----------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    (1, True), (0, True), (-5, True), (2**80, True), (True, False), (False, False),
    (1.0, False), ("1", False), (None, False),
])
def test_is_int__an_int_that_is_not_a_bool(value: Any, expected: bool) -> None:
    assert is_int(value) is expected


def test_integer__returns_the_value_within_range() -> None:
    assert integer("Retry.max", 3, minimum=1, maximum=10) == 3
    assert integer("max_lost", 0, minimum=0) == 0


@pytest.mark.parametrize("value", [True, 1.0, "3", None])
def test_integer__what_is_not_an_int_is_a_type_error_with_the_range(value: Any) -> None:
    with pytest.raises(TypeError) as info:
        integer("Retry.max", value, minimum=1, maximum=10, hint=" (total attempts)")
    assert str(info.value) == (
        f"Retry.max must be an int >= 1 and <= 10 (total attempts), got {value!r}")


@pytest.mark.parametrize("value", [0, -1, 11, 2**64])
def test_integer__out_of_range_is_a_value_error(value: int) -> None:
    with pytest.raises(ValueError) as info:
        integer("Retry.max", value, minimum=1, maximum=10)
    assert str(info.value) == f"Retry.max must be >= 1 and <= 10, got {value!r}"


def test_integer__without_maximum_says_only_the_minimum() -> None:
    with pytest.raises(ValueError, match=r"^concurrency must be >= 1, got 0$"):
        integer("concurrency", 0, minimum=1)


# -- job ids --------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    (1, 1), (42, 42), ("42", 42), ("0042", 42), (BIGINT_MAX, BIGINT_MAX),
    (str(BIGINT_MAX), BIGINT_MAX), ("0" * 30 + "7", 7),
])
def test_job_id__int_or_ascii_decimal_string(value: Any, expected: int) -> None:
    assert job_id_or_none(value) == expected


@pytest.mark.parametrize("value", [
    "", "abc", "²", "٣", "1.5", "1e3", " 1", "1 ", "1\n", "+1", "-1", "1_000", "0x10", "0",
    "9" * 5000, str(BIGINT_MAX + 1), 0, -1, BIGINT_MAX + 1, 2**200,
])
def test_job_id__names_no_job(value: Any) -> None:
    assert job_id_or_none(value) is None


@pytest.mark.parametrize("value", [True, False, 1.0, None, b"1", [1]])
def test_job_id__neither_int_nor_string_is_a_type_error(value: Any) -> None:
    with pytest.raises(TypeError, match="job id is an int or a string of digits"):
        job_id_or_none(value)
