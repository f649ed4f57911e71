"""Every named SQL block is accepted by PostgreSQL: parsed, its tables and columns resolved
and its parameter types inferred (PREPARE), for the schema of a real app."""

from __future__ import annotations

import re

import psycopg
import pytest

from pgwerk import Werk
from pgwerk.store.statements import Queries, _blocks

PLACEHOLDER = re.compile(r"%\((\w+)\)s")
PREPARABLE = re.compile(r"^\s*(WITH|SELECT|INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


def names() -> list[str]:
    return Queries("s", "p").names()


def as_prepare(name: str, text: str) -> str:
    """``PREPARE`` text for a statement, its ``%(name)s`` placeholders turned into ``$n``."""
    numbers: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        return f"${numbers.setdefault(match.group(1), len(numbers) + 1)}"

    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return f"PREPARE {name} AS {PLACEHOLDER.sub(number, body)}"


def test_sql__the_loader_sees_every_block_of_the_file() -> None:
    parts = {"job_claim", "job_claim_limited", "claim_picked_queues", "claim_picked_one",
             "job_insert_plain", "job_insert_plain_many",  # per app: test_enqueue_plain.py
             "free_slots_part"}
    assert set(_blocks()) - parts <= set(names())


@pytest.mark.parametrize("name", names())
def test_sql__statement_is_accepted_by_postgresql(app: Werk, name: str) -> None:
    text = app._store.queries.text(name)
    with psycopg.connect(app.dsn, autocommit=True) as conn:
        if not PREPARABLE.match("\n".join(
                line for line in text.splitlines() if not line.lstrip().startswith("--"))):
            assert name in ("truncate", "sweep_vacuum")  # statements PREPARE cannot take
            conn.execute(text.encode())
            return
        conn.execute(as_prepare(name, text).encode())  # no params: sent as it is
        conn.execute(f"DEALLOCATE {name}".encode())
