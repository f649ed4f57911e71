"""Loads the named SQL blocks and renders them for one schema and table prefix.

Identifiers reach SQL only from validated names and are always quoted; no SQL is ever
assembled from user text.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

_BLOCK = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_TOKEN = re.compile(r"\{(schema|[TNR]:\w+)\}")


def quote_ident(name: str) -> str:
    """Double-quote an identifier (names are validated before they get here)."""
    return '"' + name.replace('"', '""') + '"'


def render(text: str, schema: str, prefix: str) -> str:
    """Replace the schema/table tokens of a SQL text with quoted identifiers."""

    def sub(match: re.Match[str]) -> str:
        token = match.group(1)
        if token == "schema":
            return quote_ident(schema)
        kind, name = token.split(":", 1)
        if kind == "N":
            return quote_ident(f"{prefix}_{name}")
        qualified = f"{quote_ident(schema)}.{quote_ident(f'{prefix}_{name}')}"
        if kind == "R":
            return "'" + qualified.replace("'", "''") + "'"
        return qualified

    return _TOKEN.sub(sub, text)


@lru_cache(maxsize=1)
def _blocks() -> dict[str, str]:
    text = resources.files(__package__).joinpath("queries.sql").read_text("utf-8")
    parts = _BLOCK.split(text)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


CLAIM_ORDERS = {
    "priority": "priority DESC, id",
    "round_robin": "rank, pos, priority DESC, id",
    "random": "rank, random()",
}


def one_row_insert(bulk: str) -> str:
    """The one-job form of ``job_insert``: scalar parameters instead of arrays to unnest
    (much cheaper for the driver to send), same statement otherwise."""
    one = re.sub(r"%\((\w+)\)s::(\w+)\[\]", r"%(\1)s::\2", bulk)
    one = one.replace("FROM unnest(", "FROM (VALUES (", 1)
    one = one.replace(") WITH ORDINALITY AS s(", ", 1::bigint)) AS s(", 1)
    if one.count("(VALUES (") != 1 or "[]" in one:
        raise RuntimeError("job_insert no longer has the shape one_row_insert expects")
    return one


class Queries:
    """Every named statement rendered for one app, as bytes ready for psycopg."""

    def __init__(self, schema: str, prefix: str) -> None:
        self._sql = {name: render(body, schema, prefix) for name, body in _blocks().items()}
        claim = self._sql.pop("job_claim")
        default = "/*order*/ " + CLAIM_ORDERS["priority"]
        for strategy, order in CLAIM_ORDERS.items():
            self._sql[f"job_claim_{strategy}"] = claim.replace(default, order)
        self._sql["job_insert_one"] = one_row_insert(self._sql["job_insert"])
        self._bytes = {name: sql.encode() for name, sql in self._sql.items()}

    def __getitem__(self, name: str) -> bytes:
        return self._bytes[name]

    def text(self, name: str) -> str:
        return self._sql[name]

    def names(self) -> list[str]:
        return sorted(self._sql)


def migrations() -> list[tuple[int, str, str]]:
    """``(version, name, sql)`` for every migration file, oldest first."""
    folder = resources.files(__package__).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = re.match(r"^(\d{4})_(\w+)\.sql$", entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    return sorted(found)
