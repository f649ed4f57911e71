"""Hypothesis strategies for "any value a user might pass": the property tests feed them to
every option and expect either a clean refusal or something that works.

``Build`` stands for a value made by a constructor that may itself refuse its arguments
(``Retry(max=0)``): the test builds it inside the same ``try`` as the call it tests, so a
refusal by the constructor counts as a refusal of the option.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

#: Numbers at and beyond every edge: zero, tiny, huge, negative, not finite, past int64.
EDGE_NUMBERS: list[Any] = [
    0, 1, -1, 0.0, -0.0, 5e-324, 1e-9, 0.5, 1e300, -1e300, float("inf"), float("-inf"),
    float("nan"), 2**31 - 1, 2**31, 2**63, -(2**63), 10**30, 86400 * 365 * 1000,
]
#: Strings PostgreSQL, JSON or UTF-8 may choke on.
EDGE_STRINGS: list[Any] = [
    "", " ", "default", "\x00", "a\x00b", "\ud800", "é✓", "x" * 256, "x" * 1001, "1", "-1",
    "nan", "tests.jobs.noop", "not a path",
]
#: Durations as timedeltas, from nothing to the largest Python allows.
EDGE_TIMEDELTAS: list[Any] = [
    timedelta(0), timedelta(microseconds=1), timedelta(seconds=-1), timedelta(days=1),
    timedelta(days=10**6), timedelta.max, timedelta.min,
]

#: One of each kind, every edge included: tried for every option before the random ones.
EDGE_VALUES: list[Any] = [
    None, True, False, *EDGE_NUMBERS, *EDGE_STRINGS, *EDGE_TIMEDELTAS, [], [1], [None], (1,),
    {}, {"a": 1}, datetime(2030, 1, 1), datetime(2030, 1, 1, tzinfo=timezone.utc),
    datetime.max.replace(tzinfo=timezone.utc), datetime.min.replace(tzinfo=timezone.utc),
    b"bytes", object(),
]

NAIVE_DATETIMES = st.datetimes()
AWARE_DATETIMES = st.datetimes(
    timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=14)),
                               timezone(timedelta(hours=-12, minutes=-30))]))

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(EDGE_NUMBERS),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(EDGE_STRINGS),
)

ANY = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.tuples(SCALARS),
    st.dictionaries(st.text(max_size=4), SCALARS, max_size=3),
    NAIVE_DATETIMES,
    AWARE_DATETIMES,
    st.timedeltas(),
    st.sampled_from(EDGE_TIMEDELTAS),
    st.builds(object),
)


@dataclass(frozen=True)
class Build:
    """A value to make at call time: ``Build(Retry, max=3)`` makes ``Retry(max=3)``."""

    factory: Any
    kwargs: dict[str, Any] = field(default_factory=dict)

    def make(self) -> Any:
        return self.factory(**self.kwargs)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{getattr(self.factory, '__name__', self.factory)}({args})"


def call(factory: Any, **kwargs: Any) -> Build:
    """``call(Retry, max=3)``: a ``Build`` of ``Retry(max=3)``."""
    return Build(factory, kwargs)


def built(value: Any) -> Any:
    """The value itself, or what a ``Build`` makes (also inside lists)."""
    if isinstance(value, Build):
        return value.make()
    if isinstance(value, list):
        return [built(v) for v in value]
    return value


def builds(factory: Any, **kwargs: st.SearchStrategy[Any]) -> st.SearchStrategy[Build]:
    """A strategy of ``Build(factory, ...)`` with each keyword drawn from its strategy
    (a keyword left out sometimes, so defaults are covered too)."""
    return st.fixed_dictionaries({}, optional=kwargs).map(lambda kw: Build(factory, kw))


def magnitude(value: Any) -> float:
    """How extreme a value is, to pick the most demanding of those an option accepted."""
    if isinstance(value, Build):
        return max((magnitude(v) for v in value.kwargs.values()), default=0.0)
    if isinstance(value, timedelta):
        return abs(value.total_seconds())
    if isinstance(value, bool):
        return 0.0
    if isinstance(value, (int, float)):
        number = abs(float(value)) if abs(value) < 1e308 else float("inf")
        return number if number == number else float("inf")
    if isinstance(value, (str, list, tuple, dict)):
        return float(len(value))
    if isinstance(value, datetime):
        return abs((value.replace(tzinfo=None) - datetime(2000, 1, 1)).total_seconds())
    return 0.0
