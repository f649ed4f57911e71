"""Pooled connections run without JIT: pgwerk's statements touch a few rows, and a large
estimated cost (a generic plan over a big queue) must not make them compile for seconds.
They prepare the statements of the hot path only, and run those with generic plans (no
planning at each claim); every other statement is planned for its own parameters."""

from __future__ import annotations

import pytest

from pgwerk import Werk
from tests import jobs
from tests.conftest import MakeApp
from tests.helpers import query


def test_pool__connections_have_jit_off(app: Werk) -> None:
    assert app._store.db.fetch("test", b"SHOW jit") == [{"jit": "off"}]


def test_pool__the_hot_path_is_prepared_with_generic_plans_and_nothing_else(
        make_app: MakeApp) -> None:
    app = make_app(max_pool_size=1).connect()  # one connection runs every statement
    store = app._store
    for _ in range(3):
        job = app.enqueue(jobs.noop)
        assert job is not None
        [claimed] = store.claim("priority", ["default"], 10, "w").jobs
        assert app.get_job(claimed.id) is not None
    with store.db.connection() as conn:
        rows = conn.execute("SELECT statement, generic_plans, custom_plans "
                            "FROM pg_prepared_statements").fetchall()
    # As sent: their first lines (comments) name them.
    assert sorted(r["statement"].splitlines()[0] for r in rows) == [
        "-- Claim up to $1 runnable jobs of the given queues. Per queue the claim index is",
        "-- job_insert_one for a job enqueued without options, the most common enqueue: "
        "only the"]
    assert all((r["generic_plans"], r["custom_plans"]) == (3, 0) for r in rows), rows


def test_pool__behind_pgbouncer_nothing_is_prepared(make_app: MakeApp) -> None:
    app = make_app(pgbouncer=True).connect()
    app.enqueue(jobs.noop)
    app._store.claim("priority", ["default"], 10, "w")
    with app._store.db.connection() as conn:
        rows = conn.execute("SELECT count(*) AS n FROM pg_prepared_statements").fetchall()
    assert rows == [{"n": 0}]


@pytest.mark.parametrize("limited", [False, True])
def test_pool__prepared_claims_survive_a_column_added_by_a_newer_version(
        make_app: MakeApp, limited: bool) -> None:
    """A rolling upgrade migrates the jobs table while older workers run: a prepared
    statement whose answer would change shape fails at every run ("cached plan must not
    change result type"), so the prepared statements name their columns."""
    app = make_app(max_pool_size=1).connect()
    if limited:
        app.configure_queue("default", concurrency=100)
    store = app._store
    for _ in range(2):
        app.enqueue(jobs.noop)
        assert len(store.claim("priority", ["default"], 10, "w", limited=limited).jobs) == 1
    query(app, "ALTER TABLE {jobs} ADD COLUMN added_later text")
    app.enqueue(jobs.noop)
    assert len(store.claim("priority", ["default"], 10, "w", limited=limited).jobs) == 1
