"""``AsyncWerk``: the same API as ``Werk`` (checked by signature), each method a coroutine,
and ``_conn`` given as a psycopg ``AsyncConnection`` used natively in the caller's
transaction."""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import psycopg
import pytest

import pgwerk
from pgwerk import Werk, aio
from pgwerk.aio import AsyncWerk
from tests import jobs
from tests.helpers import count_rows

T = TypeVar("T")


def run(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(coro_fn())


def public_methods(cls: type) -> dict[str, Any]:
    return {name: member for name, member in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_")}


# -- one API ----------------------------------------------------------------------------------


#: Methods that return an async context manager instead of being coroutines.
CONTEXT_MANAGERS = {"batch"}


def in_async_terms(annotation: object) -> object:
    """An annotation of ``Werk`` as ``AsyncWerk`` spells it."""
    if not isinstance(annotation, str):
        return annotation
    return re.sub(r"\b(Werk|BatchBuilder)\b", r"Async\1", annotation)


@pytest.mark.parametrize("name", sorted(public_methods(Werk)))
def test_signature__every_public_werk_method_is_a_coroutine_with_the_same_parameters(
        name: str) -> None:
    blocking = public_methods(Werk)[name]
    awaited = getattr(AsyncWerk, name, None)
    assert awaited is not None, f"AsyncWerk lacks {name}"
    if name in CONTEXT_MANAGERS:
        assert not inspect.iscoroutinefunction(awaited), f"AsyncWerk.{name} is a coroutine"
    else:
        assert inspect.iscoroutinefunction(awaited), f"AsyncWerk.{name} is not a coroutine"
    want, got = inspect.signature(blocking), inspect.signature(awaited)
    assert [p.replace(annotation=in_async_terms(p.annotation)) for p in want.parameters.values()
            ] == list(got.parameters.values())
    assert got.return_annotation == in_async_terms(want.return_annotation)


def test_signature__asyncwerk_adds_no_public_method_of_its_own() -> None:
    extra = set(public_methods(AsyncWerk)) - set(public_methods(Werk))
    assert extra == set()  # ``wrap`` is a classmethod, not a plain function


def test_signature__same_constructor_and_properties() -> None:
    assert inspect.signature(AsyncWerk.__init__) == inspect.signature(Werk.__init__)
    properties = {n for n, m in inspect.getmembers(Werk) if isinstance(m, property)}
    assert properties <= {n for n, m in inspect.getmembers(AsyncWerk) if isinstance(m, property)}


def test_reexports_the_option_objects() -> None:
    for name in ("Retry", "Repeat", "Dependency", "Callback", "EnqueueParams", "Unique"):
        assert getattr(aio, name) is getattr(pgwerk, name)


# -- coroutines -------------------------------------------------------------------------------


def test_async_with__connects_enqueues_and_closes(app: Werk) -> None:
    async def main() -> None:
        async with AsyncWerk(app.dsn, schema=app.config.schema) as aapp:
            job = await aapp.enqueue(jobs.add, 1, 2, _queue="q")
            assert job is not None
            assert (await aapp.get_job(job.id)).queue == "q"
            assert await aapp.enqueue(jobs.noop, _key="k") is not None
            assert await aapp.enqueue(jobs.noop, _key="k") is None
            stats = await aapp.queue_stats()
            assert {q: c["queued"] for q, c in stats.items()} == {"default": 1, "q": 1}

    run(main)
    assert count_rows(app) == 2


def test_wrap__shares_an_existing_werk(app: Werk) -> None:
    aapp = AsyncWerk.wrap(app)
    assert aapp.sync is app and aapp.config is app.config and aapp.dsn == app.dsn
    with pytest.raises(TypeError):
        AsyncWerk.wrap("postgresql://")  # type: ignore[arg-type]


def test_errors_are_the_blocking_apis(app: Werk) -> None:
    aapp = AsyncWerk.wrap(app)
    with pytest.raises(TypeError, match="unknown enqueue option"):
        run(lambda: aapp.enqueue(jobs.noop, _colour="red"))
    with pytest.raises(pgwerk.JobNotFound):
        run(lambda: aapp.get_job(123456))


# -- _conn: an AsyncConnection, natively ------------------------------------------------------


async def _orders(conn: psycopg.AsyncConnection[Any], schema: str) -> None:
    await conn.execute(f'CREATE TABLE IF NOT EXISTS "{schema}".orders (id int PRIMARY KEY)')
    await conn.commit()


def test_async_conn__the_job_commits_with_the_callers_transaction(app: Werk) -> None:
    aapp = AsyncWerk.wrap(app)

    async def main() -> int:
        async with await psycopg.AsyncConnection.connect(app.dsn) as conn:
            await _orders(conn, app.config.schema)
            await conn.execute(f'INSERT INTO "{app.config.schema}".orders VALUES (123)')
            job = await aapp.enqueue(jobs.add, 1, 2, _conn=conn)
            assert job is not None
            assert count_rows(app) == 0  # not visible before the commit
            await conn.commit()
            return job.id

    job_id = run(main)
    assert app.get_job(job_id).function == "tests.jobs.add"


def test_async_conn__rollback_leaves_no_job(app: Werk) -> None:
    aapp = AsyncWerk.wrap(app)

    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(app.dsn) as conn:
            await _orders(conn, app.config.schema)
            await conn.execute(f'INSERT INTO "{app.config.schema}".orders VALUES (1)')
            await aapp.enqueue(jobs.noop, _conn=conn)
            await aapp.enqueue_many([pgwerk.EnqueueParams(func=jobs.noop)], _conn=conn)
            await conn.rollback()

    run(main)
    assert count_rows(app) == 0


def test_async_conn__dependencies_and_bulk_run_the_same_statements(app: Werk) -> None:
    aapp = AsyncWerk.wrap(app)

    async def main() -> list[Any]:
        async with await psycopg.AsyncConnection.connect(app.dsn) as conn:
            first = await aapp.enqueue(jobs.noop)
            assert first is not None
            many = await aapp.enqueue_many(
                [pgwerk.EnqueueParams(func=jobs.noop, depends_on=first, key="a"),
                 pgwerk.EnqueueParams(func=jobs.noop, key="a")], _conn=conn)
            await conn.commit()
            return [first, *many]

    first, dependent, collided = run(main)
    assert collided is None
    assert app.get_job(dependent.id).status is pgwerk.JobStatus.Waiting
    assert [d["id"] for d in app.get_job_dependencies(dependent.id)] == [first.id]


def test_async_conn__bad_options_write_nothing(app: Werk) -> None:
    aapp = AsyncWerk.wrap(app)

    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(app.dsn) as conn:
            with pytest.raises(ValueError, match="_delay and _at"):
                from datetime import datetime, timezone
                await aapp.enqueue(jobs.noop, _delay=1, _at=datetime.now(timezone.utc),
                                   _conn=conn)
            with pytest.raises(TypeError, match="apply cannot wait"):
                await aapp.apply(jobs.noop, _conn=conn)

    run(main)
    assert count_rows(app) == 0


def test_async_conn__the_first_use_creates_the_tables(make_app: Any) -> None:
    fresh = make_app()  # never connected: its tables do not exist yet
    aapp = AsyncWerk.wrap(fresh)

    async def main() -> Any:
        async with await psycopg.AsyncConnection.connect(fresh.dsn) as conn:
            job = await aapp.enqueue(jobs.noop, _conn=conn)
            await conn.commit()
            return job

    job = run(main)
    assert fresh.get_job(job.id).function == "tests.jobs.noop"
