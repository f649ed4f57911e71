"""Serializers: payloads and results to text and back."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

import pytest

from pgwerk import JSONSerializer, PickleSerializer, Serializer, WerkConfig


def test_json__round_trips_json_values() -> None:
    value = {"args": [1, "two", None, True, 2.5], "kwargs": {"nested": {"list": [1, 2]}}}
    text = JSONSerializer().dumps(value)
    assert isinstance(text, str)
    assert JSONSerializer().loads(text) == value


def test_json__is_compact() -> None:
    assert JSONSerializer().dumps({"a": [1, 2]}) == '{"a":[1,2]}'


def test_json__tuples_come_back_as_lists() -> None:
    assert JSONSerializer().loads(JSONSerializer().dumps((1, 2))) == [1, 2]


@pytest.mark.parametrize("bad", [object(), {1, 2}, math.nan, datetime.now(timezone.utc)])
def test_json__refuses_what_json_cannot_hold(bad: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        JSONSerializer().dumps(bad)


def test_pickle__round_trips_python_objects_as_ascii_text() -> None:
    value = {"when": datetime(2030, 1, 1, tzinfo=timezone.utc), "pair": (1, 2), "set": {3}}
    text = PickleSerializer().dumps(value)
    assert isinstance(text, str)
    text.encode("ascii")
    assert PickleSerializer().loads(text) == value


def test_serializers__satisfy_the_protocol() -> None:
    assert isinstance(JSONSerializer(), Serializer)
    assert isinstance(PickleSerializer(), Serializer)


def test_serializers__any_object_with_dumps_and_loads_is_accepted() -> None:
    class Upper:
        def dumps(self, obj: Any) -> str:
            return str(obj)

        def loads(self, data: str) -> Any:
            return data

    serializer = Upper()
    assert WerkConfig(serializer=serializer).serializer is serializer


def test_config__default_serializer_is_json() -> None:
    assert isinstance(WerkConfig().serializer, JSONSerializer)
