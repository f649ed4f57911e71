"""EXPLAIN a named pgwerk statement with real parameter values, as a custom plan (what a
fresh statement gets) or as the generic plan (what a prepared statement may switch to
after psycopg's ``prepare_threshold`` executions: PostgreSQL then plans once, ignoring
the values)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

_PLACEHOLDER = re.compile(rb"%\((\w+)\)s")


def positional(query: bytes) -> tuple[str, list[str]]:
    """``%(name)s`` placeholders -> ``$1..$n`` (one number per distinct name)."""
    names: list[str] = []

    def number(match: re.Match[bytes]) -> bytes:
        name = match.group(1).decode()
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}".encode()

    return _PLACEHOLDER.sub(number, query).decode(), names


@contextmanager
def prepared(conn: psycopg.Connection[Any], query: bytes,
             name: str = "bench_plan") -> Iterator[list[str]]:
    text, names = positional(query)
    conn.execute(f"PREPARE {name} AS {text}".encode())
    try:
        yield names
    finally:
        conn.execute(f"DEALLOCATE {name}".encode())


def execute_sql(conn: psycopg.Connection[Any], names: list[str], params: Mapping[str, Any],
                name: str = "bench_plan") -> str:
    args = ", ".join(sql.Literal(params[n]).as_string(conn) for n in names)
    return f"EXECUTE {name}({args})"


def explain(conn: psycopg.Connection[Any], query: bytes, params: Mapping[str, Any], *,
            generic: bool, analyze: bool = True, json: bool = False) -> tuple[Any, float]:
    """The plan of ``query`` with ``params`` and the statement's own time (ms, from a
    separate timed EXECUTE before the EXPLAIN). With ``analyze`` the statement really runs,
    inside a transaction that is rolled back."""
    options = ["FORMAT JSON" if json else "FORMAT TEXT"]
    if analyze:
        options = ["ANALYZE", "BUFFERS", *options]
    with conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL plan_cache_mode = "
                     + ("force_generic_plan" if generic else "force_custom_plan"))
        with prepared(conn, query) as names:
            call = execute_sql(conn, names, params)
            took = float("nan")
            if analyze:
                with conn.transaction(force_rollback=True):
                    started = time.perf_counter()
                    conn.execute(call.encode()).fetchall()
                    took = (time.perf_counter() - started) * 1000
            rows = conn.execute(f"EXPLAIN ({', '.join(options)}) {call}".encode()).fetchall()
    if json:
        return rows[0][0], took
    return "\n".join(r[0] for r in rows), took


def plan_nodes(plan: Any) -> Iterator[dict[str, Any]]:
    """Every node of a FORMAT JSON plan."""
    stack = [plan[0]["Plan"] if isinstance(plan, list) else plan]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.get("Plans", []))
