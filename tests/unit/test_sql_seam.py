"""SQL runs in one place: the ``pgwerk.store`` package. Everything else calls the store's
methods, so that a reader finds every statement, its parameters and its connection there,
and a change of the schema touches one package."""

from __future__ import annotations

import ast
from pathlib import Path

import pgwerk
from pgwerk import Werk

PACKAGE = Path(pgwerk.__file__).parent
STORE = PACKAGE / "store"
#: Methods of a DB-API or psycopg connection/cursor that send SQL or read its answers.
EXECUTING = {"execute", "executemany", "cursor", "copy", "fetchone", "fetchall", "fetchmany",
             "stream"}


def _outside_store() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if STORE not in p.parents]


def test_seam__no_module_outside_the_store_runs_sql() -> None:
    found = []
    for path in _outside_store():
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in EXECUTING:
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: .{node.func.attr}()")
    assert found == [], "SQL executed outside pgwerk/store:\n" + "\n".join(found)


def test_seam__the_user_facing_app_carries_no_database_plumbing() -> None:
    plumbing = {"fetch", "fetch_via_pool", "enqueue_specs", "insert_specs",
                "resolve_dependents", "db", "listener", "queries", "channel"}
    assert plumbing & set(dir(Werk)) == set()
