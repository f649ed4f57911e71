"""A process that forks after the pool was opened (gunicorn --preload, multiprocessing):
the child opens its own connections and the parent's stay intact."""

from __future__ import annotations

import json
import os
import sys
import traceback
import warnings
from typing import Any

import pytest

from pgwerk import Werk
from tests import jobs
from tests.helpers import backend_pid

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def fork_and_run(child: Any) -> tuple[int, dict[str, Any]]:
    """Run ``child()`` in a forked process; return its exit status and the dict it returned
    (sent back through a pipe)."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a multi-threaded process (the pool's threads) may
        # deadlock the child: that situation is exactly what this test is about.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            os.close(read_end)
            report = child()
            os.write(write_end, json.dumps(report).encode())
            code = 0
        except BaseException:
            traceback.print_exc(file=sys.stderr)
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    report = json.loads(b"".join(chunks)) if chunks else {}
    return os.waitstatus_to_exitcode(status), report


def test_fork__child_enqueues_on_its_own_connections_and_parent_keeps_working(
    make_app: Any,
) -> None:
    app: Werk = make_app(min_pool_size=1, max_pool_size=1)
    before = app.enqueue(jobs.add, 1, 1)
    assert before is not None
    parent_pid = backend_pid(app)

    def child() -> dict[str, Any]:
        job = app.enqueue(jobs.add, 2, 2)
        assert job is not None
        again = app.enqueue(jobs.add, 3, 3)
        assert again is not None
        return {"ids": [job.id, again.id], "backend": backend_pid(app)}

    code, report = fork_and_run(child)
    assert code == 0, "the child failed; see its traceback on stderr"
    assert report["backend"] != parent_pid

    after = app.enqueue(jobs.add, 4, 4)
    assert after is not None
    assert backend_pid(app) == parent_pid  # the same connection, unbroken
    assert [j.args for j in reversed(app.list_jobs())] == [(1, 1), (2, 2), (3, 3), (4, 4)]
    assert sorted(report["ids"]) == [j.id for j in reversed(app.list_jobs())][1:3]


def test_fork__child_of_a_closed_app_connects_lazily(make_app: Any) -> None:
    app: Werk = make_app()
    app.connect()
    app.close()

    def child() -> dict[str, Any]:
        job = app.enqueue(jobs.noop)
        assert job is not None
        return {"id": job.id}

    code, report = fork_and_run(child)
    assert code == 0
    assert app.get_job(report["id"]).function == "tests.jobs.noop"


def test_fork__parent_listener_is_not_shared_with_the_child(make_app: Any) -> None:
    app: Werk = make_app()
    job = app.enqueue(jobs.noop)
    assert job is not None
    assert app._store.listener.wait_ready(timeout=10)  # the LISTEN connection exists in the parent

    def child() -> dict[str, Any]:
        # The child's own listener and pool: cancel_job notifies, wait_for listens.
        assert app.cancel_job(job.id)
        return {"status": app.wait_for(job.id, timeout=10).status.value}

    code, report = fork_and_run(child)
    assert code == 0
    assert report["status"] == "aborted"
    assert app.get_job(job.id).status.value == "aborted"
    assert app._store.listener.wait_ready(timeout=10)
