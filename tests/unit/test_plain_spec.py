"""The fast path of ``enqueue`` for calls without options builds the same row as
``build_spec``."""

from __future__ import annotations

from pgwerk import EnqueueParams, PickleSerializer, WerkConfig
from pgwerk.options import build_spec, plain_spec, plain_template


def test_plain_spec__same_row_as_build_spec() -> None:
    for config in (WerkConfig(), WerkConfig(result_ttl=5, failure_ttl=None),
                   WerkConfig(serializer=PickleSerializer())):
        fast = plain_spec(plain_template(config), "tests.jobs.add", (1,), {"b": 2}, config)
        slow = build_spec(EnqueueParams("tests.jobs.add", args=(1,), kwargs={"b": 2}), config)
        assert fast.row == slow.row
        assert fast.depends_on == slow.depends_on == []
