"""Which functions a worker may import and run: the app's ``handlers`` allow-list.

A job row names its function (and its callbacks) by dotted path, and a worker imports and
calls whatever it names. So whoever can write to the jobs table can run code in every
worker: ``function = 'os.system'`` with a shell command as payload. ``Werk(handlers=[...])``
closes that: workers run only functions under the listed module prefixes or exact paths,
and check a row's paths before importing anything.

Without ``handlers`` every function runs (as before); the worker says so once at start.
"""

from __future__ import annotations

import json
import logging
import re
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pgwerk.exceptions import ConfigurationError

if TYPE_CHECKING:
    from pgwerk.app import Werk

logger = logging.getLogger(__name__)

_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def normalize_handlers(value: Any) -> tuple[str, ...] | None:
    """The ``handlers`` setting as a tuple of dotted prefixes (``None``: no restriction).

    Entries may be dotted strings (``"myapp.tasks"``, ``"myapp.other.func"``), modules or
    module-level functions.
    """
    if value is None:
        return None
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise ConfigurationError(
            f"handlers must be a list of module prefixes or dotted function paths (e.g. "
            f"handlers=['myapp.tasks']), got {value!r}"
        )
    entries = []
    for item in value:
        if isinstance(item, types.ModuleType):
            item = item.__name__
        elif callable(item) and not isinstance(item, str):
            module, qualname = getattr(item, "__module__", None), getattr(item, "__qualname__", "")
            if not module or "<" in qualname:
                raise ConfigurationError(
                    f"handlers: {item!r} is not a module-level function; give its dotted path")
            item = f"{module}.{qualname}"
        if not isinstance(item, str) or not _DOTTED.match(item):
            raise ConfigurationError(
                f"handlers: each entry must be a module prefix or a dotted function path "
                f"such as 'myapp.tasks' or 'myapp.tasks.send_email', got {item!r}"
            )
        entries.append(item)
    if not entries:
        raise ConfigurationError(
            "handlers is empty: no job could ever run. List your task modules "
            "(handlers=['myapp.tasks']) or leave handlers unset to allow every function"
        )
    return tuple(dict.fromkeys(entries))


def is_allowed(path: str, handlers: Sequence[str] | None) -> bool:
    """Whether ``path`` is an allowed entry or lies under one (``a.b`` allows ``a.b.c``)."""
    if handlers is None:
        return True
    return any(path == entry or path.startswith(entry + ".") for entry in handlers)


def refusal(app: Werk, path: str, what: str = "function") -> str | None:
    """Why a worker of ``app`` must not import ``path`` (``None`` when it may)."""
    handlers = app.config.handlers
    if is_allowed(path, handlers):
        return None
    assert handlers is not None
    return f"{what} {path!r} is not allowed by this app's handlers ({', '.join(handlers)})"


def check_enqueue(app: Werk, rows: Iterable[dict[str, Any]]) -> None:
    """Refuse, at enqueue, a job its own app's workers would refuse to run."""
    if app.config.handlers is None:
        return
    for row in rows:
        paths = [("function", row["function"])]
        callbacks = row.get("callbacks")
        if callbacks:
            paths += [(f"_on_{kind}", item["path"])
                      for kind, item in json.loads(callbacks).items()]
        for what, path in paths:
            reason = refusal(app, path, what)
            if reason is not None:
                raise ValueError(f"{reason}; nothing was enqueued")


def warn_if_unrestricted(app: Werk) -> None:
    """Log, once per worker start, that the worker runs any function a row names."""
    if app.config.handlers is None:
        logger.warning(
            "this worker runs any function a job row names: whoever can write to the "
            "pgwerk tables in schema %r can run code here. Restrict it with "
            "Werk(..., handlers=['myapp.tasks']).", app.config.schema)
