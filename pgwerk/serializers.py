"""Serializers turn job payloads and results into text stored in PostgreSQL and back."""

from __future__ import annotations

import base64
import json
import pickle
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Serializer(Protocol):
    """Anything with ``dumps(obj) -> str`` and ``loads(str) -> obj``."""

    def dumps(self, obj: Any) -> str: ...

    def loads(self, data: str) -> Any: ...


class JSONSerializer:
    """The default: JSON text. Payloads must be JSON-encodable (tuples come back as lists)."""

    # json.dumps with options builds a new encoder on every call; build it once.
    _encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode

    def dumps(self, obj: Any) -> str:
        return self._encode(obj)

    def loads(self, data: str) -> Any:
        return json.loads(data)


class PickleSerializer:
    """Pickle, base64-encoded. Opt-in and unsafe: anyone who can write job rows can run code
    in your workers. Use it only when every writer to the database is trusted."""

    def dumps(self, obj: Any) -> str:
        return base64.b64encode(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)).decode("ascii")

    def loads(self, data: str) -> Any:
        return pickle.loads(base64.b64decode(data))  # noqa: S301 - documented opt-in
