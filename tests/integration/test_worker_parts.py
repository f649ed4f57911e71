"""A background part of the worker that dies stops the worker with an error, so that a
supervisor restarts it, instead of leaving it claiming and heartbeating half-dead."""

from __future__ import annotations

import threading

import pytest

from pgwerk import Werk, Worker, WorkerFailed
from tests.worker_support import FAST


def _dies() -> None:
    raise RuntimeError("a bug in a background loop")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("part", ["_completions", "_heartbeat"])
def test_worker__stops_with_an_error_when_a_part_dies(app: Werk, part: str) -> None:
    worker = Worker(app, **FAST)
    getattr(worker, part)._thread = threading.Thread(target=_dies, daemon=True)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as exc:  # noqa: B036 - asserted below
            failure.append(exc)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(30)

    assert not runner.is_alive()
    assert len(failure) == 1 and isinstance(failure[0], WorkerFailed)
    assert "thread died" in str(failure[0])
    assert app.list_workers() == []
