"""Batches: jobs enqueued together, with callback jobs once every one of them has ended.

``Werk.batch`` returns a ``BatchBuilder``; the jobs enqueued on it inside its ``with``
block are written, with the batch, in one transaction when the block ends. The database
counts the members as they end (a trigger on the jobs table, in the transaction that ends
each one) and enqueues the callbacks when the last one ends; see ``docs/batches.md``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pgwerk._allowlist import check_enqueue
from pgwerk._validate import text
from pgwerk.exceptions import WerkError
from pgwerk.job import Callback, EnqueueParams, Job
from pgwerk.options import BATCH_CALLBACKS, JobSpec, batch_callback, build_spec, params_from_call

if TYPE_CHECKING:
    from pgwerk.app import Werk

#: What ``on_complete``, ``on_success`` and ``on_failure`` take.
BatchCallback = Callable[..., Any] | str | Callback | EnqueueParams


def batch_callbacks(app: Werk, **given: Any) -> str:
    """The callback jobs of a batch (``on_complete=...`` ...), checked, as the JSON the
    batch row stores (kind -> the callback job's columns)."""
    found = {}
    for kind, name in BATCH_CALLBACKS.items():
        row = batch_callback(name, given.get(name), app.config)
        if row is not None:
            try:
                check_enqueue(app, [row])
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
            found[kind] = row
    return json.dumps(found)


class BatchBuilder:
    """Collects the members of a batch inside a ``with`` block and writes them, with the
    batch, in one transaction when the block ends without an exception (an exception writes
    nothing). Made by ``Werk.batch``.

    Attributes:
        id: the batch's id, once written (``None`` inside the block).
        jobs: the members as written, in the order they were enqueued (``None`` where a
            ``_key`` collided: that job is not a member), once written.

    Example::

        with app.batch(on_complete=notify_done) as batch:
            for item in items:
                batch.enqueue(process, item)
        print(batch.id, len(batch.jobs))
    """

    def __init__(self, app: Werk, callbacks: str, description: str | None,
                 conn: Any = None) -> None:
        self._app = app
        self._callbacks = callbacks
        self._description = description
        self._conn = conn
        self._specs: list[JobSpec] = []
        self._state = "new"
        self.id: int | None = None
        self.jobs: list[Job | None] = []

    def __repr__(self) -> str:
        return f"<BatchBuilder id={self.id} {self._state} members={len(self._specs)}>"

    def __len__(self) -> int:
        """How many jobs were enqueued on it so far."""
        return len(self._specs)

    def __enter__(self) -> BatchBuilder:
        if self._state != "new":
            raise WerkError("a batch is used in one `with` block; make a new one with "
                            "app.batch(...)")
        self._state = "open"
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None:
            self._state, self._specs = "discarded", []
            return
        self.write()

    def enqueue(self, func: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> None:
        """Add ``func(*args, **kwargs)`` to the batch, with the options of ``Werk.enqueue``
        but ``_conn`` (give it to ``app.batch``). Checked now; written when the block ends."""
        self._check_open("enqueue")
        if not any(name[:1] == "_" for name in kwargs):
            self._add([self._app._plain_spec(func, args, kwargs)])
            return
        params, conn = params_from_call(func, args, kwargs)
        if conn is not None:
            raise TypeError("batch.enqueue takes no _conn: the members are written on the "
                            "batch's connection; pass it as app.batch(_conn=conn)")
        self._add([build_spec(params, self._app.config)])

    def enqueue_many(self, params: Sequence[EnqueueParams]) -> None:
        """Add many jobs to the batch (as ``Werk.enqueue_many``); written when the block
        ends."""
        self._check_open("enqueue_many")
        self._add(self._app._many_specs(params))

    def _check_open(self, what: str) -> None:
        if self._state != "open":
            state = {"new": "before its `with` block",
                     "written": "after its `with` block: it is written already",
                     "discarded": "after its `with` block ended with an exception"}[self._state]
            raise WerkError(f"batch.{what} called {state}; enqueue inside "
                            "`with app.batch(...) as batch:`")

    def _add(self, specs: list[JobSpec]) -> None:
        check_enqueue(self._app, (spec.row for spec in specs))
        self._specs.extend(specs)

    def write(self) -> None:
        """Write the batch and its members (what leaving the block does)."""
        self._check_open("write")
        self.id, self.jobs = self._app._insert_batch(
            self._specs, self._callbacks, self._description, self._conn)
        self._state, self._specs = "written", []

    def _take(self) -> tuple[list[JobSpec], str, str | None]:
        """The members, callbacks and description to write (for ``AsyncWerk``)."""
        self._check_open("write")
        return self._specs, self._callbacks, self._description

    def _written(self, batch_id: int, jobs: list[Job | None]) -> None:
        self.id, self.jobs = batch_id, jobs
        self._state, self._specs = "written", []


def description_text(value: Any) -> str | None:
    """The ``description`` of ``app.batch``: a short text, or ``None``."""
    return None if value is None else text("description", value, max_len=1000)
