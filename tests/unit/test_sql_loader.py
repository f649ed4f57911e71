"""The named SQL blocks and their rendering for one schema and prefix."""

from __future__ import annotations

import re

import pytest

from pgwerk.store.migrate import migration_sql
from pgwerk.store.statements import (
    CLAIM_ORDERS,
    INSERT_COLUMNS,
    Queries,
    _blocks,
    blocks,
    migrations,
    quote_ident,
)

TOKEN = re.compile(r"\{\w+\}")


@pytest.fixture(scope="module")
def queries() -> Queries:
    return Queries("s_1", "pfx")


def test_sql__every_block_is_named_and_not_empty() -> None:
    blocks = _blocks()
    assert len(blocks) > 20
    for name, body in blocks.items():
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", name), name
        assert body.strip(), f"block {name} is empty"


def test_sql__every_block_renders_without_tokens_left(queries: Queries) -> None:
    for name in queries.names():
        text = queries.text(name)
        assert not TOKEN.search(text), f"{name} still has a token: {TOKEN.search(text)}"
        assert isinstance(queries[name], bytes)


def test_sql__tables_are_schema_qualified_and_quoted(queries: Queries) -> None:
    text = queries.text("job_get")
    assert 'FROM "s_1"."pfx_jobs"' in text
    assert "nextval('\"s_1\".\"pfx_jobs_id_seq\"')" in queries.text("job_insert")


def test_sql__no_block_mentions_an_unprefixed_table(queries: Queries) -> None:
    for name in queries.names():
        assert not re.search(r"\b(FROM|INTO|UPDATE|JOIN)\s+(jobs|workers|executions)\b",
                             queries.text(name)), name


def test_sql__quote_ident_doubles_quotes() -> None:
    assert quote_ident('a"b') == '"a""b"'


def test_sql__the_two_inserts_take_every_insert_column(queries: Queries) -> None:
    one, bulk = queries.text("job_insert_one"), queries.text("job_insert")
    assert set(re.findall(r"%\((\w+)\)s", one)) == {*INSERT_COLUMNS, "channel"}
    assert set(re.findall(r"%\((\w+)\)s", bulk)) == {"rows", "channel"}
    for column in INSERT_COLUMNS:  # every column read from the batch's JSON
        assert f"AS {column}" in bulk or f'AS "{column}"' in bulk, column


def test_sql__every_block_says_what_it_does() -> None:
    for filename in ("queries.sql", "doctor.sql"):
        for name, body in blocks(filename).items():
            assert body.startswith("-- "), f"{filename}: block {name} has no description"


def test_sql__a_maintenance_step_takes_the_moment_to_act_at(queries: Queries) -> None:
    for name in ("sweep_rescue_orphans", "sweep_expire", "sweep_prune",
                 "sweep_forget_workers", "job_stage_scheduled"):
        text = queries.text(name)
        assert "coalesce(%(now)s::timestamptz, now())" in text, name
        assert "now()" not in text.replace("coalesce(%(now)s::timestamptz, now())", ""), name


def test_sql__claim_has_one_variant_per_dequeue_order(queries: Queries) -> None:
    assert "job_claim" not in queries.names()
    for strategy, order in CLAIM_ORDERS.items():
        assert order in queries.text(f"job_claim_{strategy}")


def test_sql__parameters_are_placeholders_not_text(queries: Queries) -> None:
    for name in queries.names():
        text = queries.text(name)
        # every % is a psycopg placeholder: nothing is formatted into the SQL by Python
        assert re.sub(r"%\(\w+\)s", "", text).count("%") == 0, name


def test_migrations__are_numbered_from_one_without_gaps() -> None:
    versions = [v for v, _name, _sql in migrations()]
    assert versions == list(range(1, len(versions) + 1))


def test_migrations__script_renders_quoted_identifiers() -> None:
    script = migration_sql("s_1", "pfx")
    assert 'CREATE SCHEMA IF NOT EXISTS "s_1";' in script
    assert '"s_1"."pfx_jobs"' in script
    assert '"s_1"."pfx_migrations"' in script
    assert not TOKEN.search(script)
