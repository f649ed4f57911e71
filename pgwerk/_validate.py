"""The checks every constructor and option shares: durations, integers and job ids.

One place decides what a duration, an integer or a job id may be, so that ``enqueue``,
``Retry``, ``Repeat``, ``Callback``, ``WerkConfig``, ``Worker`` and ``CronScheduler`` accept
the same values and reject the others with the same words: the option's name, the value
given, and what is allowed.
"""

from __future__ import annotations

import math
import numbers
import re
from datetime import timedelta
from typing import TypeGuard

#: The longest duration any option takes: ten years (of 365.25 days), in seconds. Far
#: beyond any real delay, timeout or retention, and small enough that everything computed
#: from it stays representable: ``signal.setitimer`` and thread waits (which overflow near
#: 292 years), and PostgreSQL timestamps of ``now() + interval``.
MAX_SECONDS = 10 * 365.25 * 86400
MAX_SECONDS_TEXT = f"{MAX_SECONDS:.0f} seconds (ten years)"

#: Bounds of the PostgreSQL integer types the values end up in.
INT32_MAX = 2**31 - 1
BIGINT_MAX = 2**63 - 1

_DECIMAL = re.compile(r"[0-9]+")


def is_int(value: object) -> TypeGuard[int]:
    """True for an ``int`` that is not a ``bool`` (``True`` is an ``int`` to Python, never
    a count or an id to a user)."""
    return isinstance(value, int) and not isinstance(value, bool)


def integer(name: str, value: object, *, minimum: int, maximum: int | None = None,
            hint: str = "") -> int:
    """``value`` checked to be an int (not a bool) within ``minimum`` .. ``maximum``.

    Args:
        name: the option, as the user wrote it (``"Retry.max"``, ``"concurrency"``).
        hint: what the number means, added to the message (``" (total attempts)"``).

    Raises:
        TypeError: not an int (or a bool).
        ValueError: out of range.
    """
    allowed = f">= {minimum}" if maximum is None else f">= {minimum} and <= {maximum}"
    if not is_int(value):
        raise TypeError(f"{name} must be an int {allowed}{hint}, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {allowed}{hint}, got {value!r}")
    return value


def seconds(name: str, value: object, *, positive: bool = False) -> float | None:
    """A duration in seconds: an int, a float or a ``timedelta``, finite, at least 0
    (more than 0 with ``positive=True``) and at most ``MAX_SECONDS``. ``None`` (not set)
    is returned as is.

    Args:
        name: the option, as the user wrote it (``"_timeout"``, ``"Retry.intervals[2]"``).
        positive: zero is not allowed (a timeout or an interval of zero makes no sense).

    Raises:
        TypeError: not a number or a timedelta (a bool, a string, ...).
        ValueError: negative, zero where ``positive``, infinite, NaN or above the cap.

    Example::

        seconds("_delay", timedelta(minutes=5))      # 300.0
        seconds("_timeout", 0, positive=True)        # ValueError: _timeout must be > 0 ...
    """
    if value is None:
        return None
    number = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise TypeError(
            f"{name} must be a number of seconds (int, float or timedelta), got {value!r}")
    low = "> 0" if positive else ">= 0"
    try:
        inside = math.isfinite(number) and (0 < number if positive else 0 <= number) \
            and number <= MAX_SECONDS
    except OverflowError:  # an int too large for a float
        inside = False
    if not inside:
        raise ValueError(f"{name} must be {low} and <= {MAX_SECONDS_TEXT}, got {value!r}")
    return float(number)


def fraction(name: str, value: object) -> float:
    """A real number from 0 to 1 (an int, a float, a ``Fraction``...; not a bool), as a
    float.

    Raises:
        TypeError: not a real number (a bool, a string, ``None``, a complex number, ...).
        ValueError: below 0, above 1, or NaN.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number from 0 to 1, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float: out of range anyway
        number = math.inf
    if not 0.0 <= number <= 1.0:  # NaN fails both comparisons
        raise ValueError(f"{name} must be from 0 to 1, got {value!r}")
    return number


def text(name: str, value: object, *, max_len: int = 255) -> str:
    """A non-empty string PostgreSQL can store: no NUL character, no lone surrogate, at
    most ``max_len`` characters.

    Raises:
        ValueError: naming the option, the value and what is allowed.
    """
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise ValueError(
            f"{name} must be a non-empty string of at most {max_len} characters, got {value!r}")
    storable(name, value)
    return value


def storable(name: str, value: str) -> None:
    """Text PostgreSQL can store: no NUL character and valid Unicode (no lone surrogate)."""
    if "\x00" in value:
        raise ValueError(f"{name} must not contain a NUL character, got {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} must be valid Unicode text (it holds a lone surrogate), "
                         f"got {value!r}") from None


def job_id_or_none(value: object) -> int | None:
    """The job id ``value`` names, or ``None`` when it names none.

    An id is a positive PostgreSQL ``bigint``, given as an ``int`` or as a string of ASCII
    digits (as it comes from a URL, a form or a command line). Any other string, and any
    number out of range, names no job: ``None``.

    Raises:
        TypeError: neither an int nor a string (a bool, a float, ``None``, ...).
    """
    if isinstance(value, str):
        if not _DECIMAL.fullmatch(value):
            return None
        digits = value.lstrip("0") or "0"
        # Longer than any bigint: also keeps int() away from its limit on digit strings.
        if len(digits) > len(str(BIGINT_MAX)):
            return None
        value = int(digits)
    elif not is_int(value):
        raise TypeError(
            f"a job id is an int or a string of digits (or a Job), got {value!r}")
    return value if 1 <= value <= BIGINT_MAX else None


#: Bounds of queue limits: the most jobs a rate limit lets start per window (and a
#: concurrency limit run at once), and the length of a rate limit's window.
MAX_LIMIT = 1_000_000
MIN_RATE_PERIOD = 0.01
MAX_LIMIT_PERIOD = 7 * 86400.0
_RATE_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600.0),
    **dict.fromkeys(("d", "day", "days"), 86400.0),
}
_RATE = re.compile(r"\s*([0-9]{1,9})\s*/\s*([0-9]{0,9})\s*([a-z]+)\s*")
_RATE_FORMS = "'N/s', 'N/m', 'N/h' or 'N/d' (N per several units: 'N/15m')"
_RATE_BOUNDS = (f"N from 1 to {MAX_LIMIT} and a window from {MIN_RATE_PERIOD} seconds to "
                f"{MAX_LIMIT_PERIOD:.0f} seconds (7 days)")
_RATE_HELP = f"{_RATE_FORMS} or a tuple (N, seconds), with {_RATE_BOUNDS}"
RATE_TEXT_HELP = f"{_RATE_FORMS}, with {_RATE_BOUNDS}"


def rate(name: str, value: object) -> tuple[int, float]:
    """A rate limit: at most ``N`` starts in any window of ``seconds``, as ``(N, seconds)``.

    Accepted: ``"10/s"``, ``"100/m"``, ``"1000/h"``, ``"5000/d"``, a count of units before
    the unit (``"50/15m"``: 50 per 15 minutes), or a tuple ``(N, seconds)`` whose seconds
    may be a ``timedelta``.

    Raises:
        TypeError: neither such a string nor a pair.
        ValueError: naming the option, the value and what is allowed.

    Example::

        rate("rate_limit", "10/s")          # (10, 1.0)
        rate("rate_limit", (3, 0.5))        # (3, 0.5)
    """
    if isinstance(value, str):
        match = _RATE.fullmatch(value.lower())
        unit = _RATE_UNITS.get(match.group(3)) if match else None
        if match is None or unit is None:
            raise ValueError(f"{name} must be {_RATE_HELP}; got {value!r}")
        count = int(match.group(1))
        period = unit * int(match.group(2) or 1)
    elif isinstance(value, tuple) and len(value) == 2:
        count, period_value = value
        if not is_int(count):
            raise TypeError(f"{name} must be {_RATE_HELP}; got {value!r} (the count is not "
                            "an int)")
        try:
            found = seconds(f"{name}'s window", period_value, positive=True)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{name} must be {_RATE_HELP}; got {value!r} ({exc})") from None
        assert found is not None
        period = found
    else:
        raise TypeError(f"{name} must be {_RATE_HELP}; got {value!r}")
    if not 1 <= count <= MAX_LIMIT or not MIN_RATE_PERIOD <= period <= MAX_LIMIT_PERIOD:
        raise ValueError(f"{name} must be {_RATE_HELP}; got {value!r}")
    return count, float(period)


def rate_text(count: int, period: float) -> str:
    """A rate as it is written: ``"10/s"``, ``"50/15m"``, ``"3/0.5s"``."""
    for suffix, unit in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        units = period / unit
        if units >= 1 and units == int(units):
            return f"{count}/{'' if units == 1 else int(units)}{suffix}"
    return f"{count}/{period:g}s"
