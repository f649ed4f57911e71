"""The named SQL blocks, composed for one schema and table prefix with ``psycopg.sql``.

A block's placeholders name this app's objects: ``{jobs}`` a table or sequence (schema
qualified, prefixed), ``{jobs_claim_idx_name}`` an unqualified prefixed name (indexes),
``{jobs_id_seq_regclass}`` a qualified name as a string literal (regclass arguments),
``{schema}``. Identifiers are always quoted by ``psycopg.sql``; no SQL is ever assembled
from user text. A few statements take pieces composed here (the claim's order, the columns
of the batch insert).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from psycopg import sql

_BLOCK = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)

#: The columns an enqueue sends, with their SQL types (in the order of ``job_insert``).
INSERT_COLUMNS: dict[str, str] = {
    "function": "text", "queue": "text", "priority": "int", "payload": "text",
    "max_attempts": "int", "retry_intervals": "text", "delay": "float8",
    "at": "timestamptz", "key": "text", "group_key": "text", "meta": "text",
    "timeout": "float8", "heartbeat": "float8", "ttl": "float8", "result_ttl": "float8",
    "failure_ttl": "float8", "failure_mode": "text", "callbacks": "text", "repeat": "text",
    "waiting": "bool", "dep_error": "text", "batch_id": "int8",
}
#: What ``job_insert_unique`` sends on top: the key a ``_unique`` job asks for (without
#: the period's bucket), its statuses (comma-separated: arrays of arrays cannot be
#: ``unnest``ed row by row) and its period; NULL for the other jobs of the batch.
UNIQUE_COLUMNS: dict[str, str] = {
    "unique_base": "text", "unique_states": "text", "unique_period": "float8",
}

#: The defaults ``job_insert_plain`` takes as constants.
PLAIN_DEFAULTS = ("queue", "priority", "max_attempts", "retry_intervals", "ttl", "timeout",
                   "heartbeat", "result_ttl", "failure_ttl", "failure_mode")

#: The statements that free concurrency slots (``{free_slots}``, the part
#: ``free_slots_part``), with the name of their CTE of the jobs that ended or went back.
FREES_SLOTS = {
    "job_unclaim_many": "back", "job_release_many": "back", "job_fail_unrecordable": "done",
    "sweep_rescue_orphans": "upd", "queue_limits_free": "ended",
}

#: ``ORDER BY`` of the claim per dequeue strategy (the claim's ``{order}``).
CLAIM_ORDERS = {
    "priority": "priority DESC, id",
    "round_robin": "rank, pos, priority DESC, id",
    "random": "rank, random()",
}


def quote_ident(name: str) -> str:
    """Double-quote an identifier, for text shown to a person (fix commands, DDL)."""
    return '"' + name.replace('"', '""') + '"'


def compose(text: str, schema: str, prefix: str, **pieces: sql.Composable) -> sql.Composed:
    """``text`` with each placeholder replaced by the object of this app it names, or by
    one of ``pieces``."""
    names: dict[str, sql.Composable] = {}
    for _literal, field, _spec, _conversion in string.Formatter().parse(text):
        if field is None or field in names:
            continue
        if field in pieces:
            names[field] = pieces[field]
        elif field == "schema":
            names[field] = sql.Identifier(schema)
        elif field.endswith("_name"):
            names[field] = sql.Identifier(f"{prefix}_{field.removesuffix('_name')}")
        elif field.endswith("_regclass"):
            table = sql.Identifier(schema, f"{prefix}_{field.removesuffix('_regclass')}")
            names[field] = sql.Literal(table.as_string(None))
        else:
            names[field] = sql.Identifier(schema, f"{prefix}_{field}")
    return sql.SQL(text).format(**names)


def _read(filename: str) -> str:
    return resources.files(__package__).joinpath("sql").joinpath(filename).read_text("utf-8")


def blocks(filename: str) -> dict[str, str]:
    """The named blocks of one of the package's SQL files."""
    parts = _BLOCK.split(_read(filename))
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


@cache
def _blocks(filename: str = "queries.sql") -> dict[str, str]:
    return blocks(filename)


def insert_source(columns: dict[str, str] = INSERT_COLUMNS) -> sql.Composed:
    """The rows ``job_insert`` reads: one JSON array parameter (``%(rows)s``) of one array
    per job, its values in the order of ``columns``. One text parameter is far cheaper for
    the client to send than an array per column."""
    values = sql.SQL(", ").join(
        sql.SQL("(e.v->>{})::{} AS {}").format(sql.Literal(i), sql.SQL(t), sql.Identifier(c))
        for i, (c, t) in enumerate(columns.items()))
    return sql.SQL("(SELECT {}, e.ord FROM jsonb_array_elements(%(rows)s::jsonb) "
                   "WITH ORDINALITY AS e(v, ord)) AS s").format(values)


#: The clock of a maintenance statement (``{now}``): the moment passed as
#: ``%(now)s`` to act as if it were then, else the database's.
_CLOCK = sql.SQL("coalesce(%(now)s::timestamptz, now())")


class Queries:
    """Every named statement composed for one app, as bytes ready for psycopg."""

    def __init__(self, schema: str, prefix: str) -> None:
        self._schema, self._prefix = schema, prefix
        self._sql: dict[str, sql.Composed] = {}
        blocks = _blocks()
        for name, body in blocks.items():
            if name.startswith("claim_picked_") or name.startswith("job_insert_plain") \
                    or name == "free_slots_part":
                continue  # parts; composed for an app's defaults (plain_inserts)
            if name == "job_claim":
                for strategy, order in CLAIM_ORDERS.items():
                    picked = compose(blocks["claim_picked_queues"], schema, prefix,
                                     order=sql.SQL(order))
                    self._sql[f"{name}_{strategy}"] = compose(body, schema, prefix,
                                                              picked=picked)
                self._sql["job_claim_one"] = compose(
                    body, schema, prefix,
                    picked=compose(blocks["claim_picked_one"], schema, prefix))
            elif name == "deps_resolve":
                self._sql[name] = compose(body, schema, prefix, lock=sql.SQL("FOR UPDATE"))
                self._sql[f"{name}_all"] = compose(body, schema, prefix,
                                                   lock=sql.SQL("FOR UPDATE SKIP LOCKED"))
            elif name == "job_claim_limited":
                for strategy, order in CLAIM_ORDERS.items():
                    self._sql[f"{name}_{strategy}"] = compose(
                        body, schema, prefix, order=sql.SQL(order))
            elif name == "job_insert":
                self._sql[name] = compose(body, schema, prefix, source=insert_source())
            elif name == "job_insert_unique":
                self._sql[name] = compose(body, schema, prefix, source=insert_source(
                    {**INSERT_COLUMNS, **UNIQUE_COLUMNS}))
            elif name in FREES_SLOTS:
                free_slots = compose(blocks["free_slots_part"], schema, prefix,
                                     ended=sql.Identifier(FREES_SLOTS[name]))
                self._sql[name] = compose(body, schema, prefix, now=_CLOCK,
                                          free_slots=free_slots)
            else:
                self._sql[name] = compose(body, schema, prefix, now=_CLOCK)
        self._bytes = {name: q.as_bytes(None) for name, q in self._sql.items()}

    def plain_inserts(self, defaults: Mapping[str, Any], channel: str) -> tuple[bytes, bytes]:
        """``job_insert_plain`` and ``job_insert_plain_many`` for an app whose jobs without
        options have the row ``defaults`` (``options.plain_template``), waking the workers
        on ``channel``."""
        pieces = {name: sql.Literal(defaults[name]) for name in PLAIN_DEFAULTS}
        one, many = (compose(_blocks()[name], self._schema, self._prefix,
                             channel=sql.Literal(channel),
                             notice=sql.Literal(f"q:{defaults['queue']}"), **pieces)
                     for name in ("job_insert_plain", "job_insert_plain_many"))
        return one.as_bytes(None), many.as_bytes(None)

    def __getitem__(self, name: str) -> bytes:
        return self._bytes[name]

    def text(self, name: str) -> str:
        return self._bytes[name].decode()

    def names(self) -> list[str]:
        return sorted(self._sql)


def migrations() -> list[tuple[int, str, str]]:
    """``(version, name, sql)`` for every migration file, oldest first (placeholders not
    yet composed)."""
    folder = resources.files(__package__).joinpath("sql").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = re.match(r"^(\d{4})_(\w+)\.sql$", entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    return sorted(found)
