"""Pooled connections run without JIT: pgwerk's statements touch a few rows, and a large
estimated cost (a generic plan over a big queue) must not make them compile for seconds."""

from __future__ import annotations

from pgwerk import Werk


def test_pool__connections_have_jit_off(app: Werk) -> None:
    assert app._store.db.fetch("test", b"SHOW jit") == [{"jit": "off"}]
