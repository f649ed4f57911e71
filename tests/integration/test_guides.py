"""The guides under ``docs/`` are true: every Python code block of a page runs, in order,
against a real PostgreSQL.

Each page gets a fresh database (``$PGWERK_DSN`` and ``$DATABASE_URL`` point at it, so a
page's ``Werk()`` is as in production) and a module of its own: the blocks of one page run
in that module's namespace one after the other, so a function a block defines is importable
by its dotted path (``guide_getting_started.send_email``) and a worker can run it.

A block whose fence carries a title (```` ```python title="settings.py" ````) is a file to
copy, not code to run; a page with such blocks says why in a note with the word
"illustrative". Shell, YAML, INI and other blocks are not run.
"""

from __future__ import annotations

import re
import sys
import threading
import types
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import psycopg
import pytest
from psycopg import sql

from pgwerk import Werk

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
PAGE_TIMEOUT = 90.0


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the block's first line of code, 1-based
    code: str
    runs: bool


def python_blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        info = match.group("info").strip()
        language = info.split(None, 1)[0] if info else ""
        if language not in ("python", "py"):
            continue
        line = text.count("\n", 0, match.start("body")) + 1
        found.append(Block(page, line, match.group("body"), runs="title=" not in info))
    return found


PAGES = sorted(DOCS.glob("*.md"))
RUN_PAGES = [p for p in PAGES if any(b.runs for b in python_blocks(p))]


def as_url(dsn: str, dbname: str) -> str:
    """``dsn`` pointing at ``dbname``, as a ``postgresql://`` URL (which SQLAlchemy takes
    too, once its driver is named)."""
    params = {k: str(v) for k, v in psycopg.conninfo.conninfo_to_dict(dsn).items()}
    params.pop("dbname", None)
    user = quote(params.pop("user", ""), safe="")
    password = params.pop("password", "")
    auth = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    query = f"?{urlencode(params)}" if params else ""
    return f"postgresql://{auth}/{quote(dbname)}{query}"


@pytest.fixture
def page_dsn(pg_dsn: str) -> Iterator[str]:
    """A new, empty database for one page, as a URL."""
    name = f"guide_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield as_url(pg_dsn, name)
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def run_page(page: Path, module: types.ModuleType) -> None:
    for block in python_blocks(page):
        if block.runs:
            # Leading newlines: a traceback names the page and the line in it.
            code = compile("\n" * (block.line - 1) + block.code, str(page.relative_to(ROOT)),
                           "exec")
            exec(code, module.__dict__)


@pytest.mark.parametrize("page", RUN_PAGES, ids=[p.name for p in RUN_PAGES])
def test_guide__every_python_block_runs(page: Path, page_dsn: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGWERK_DSN", page_dsn)
    monkeypatch.setenv("DATABASE_URL", page_dsn)
    name = "guide_" + page.stem.replace("-", "_")
    module = types.ModuleType(name)
    module.__file__ = str(page)
    monkeypatch.setitem(sys.modules, name, module)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_page(page, module)
        except BaseException as exc:  # noqa: B036 - reported below
            errors.append(exc)

    # Not the main thread: a worker a page runs then uses its watcher thread for time
    # limits, leaving SIGALRM to pytest-timeout.
    thread = threading.Thread(target=run, name=f"guide-{page.stem}", daemon=True)
    try:
        thread.start()
        thread.join(PAGE_TIMEOUT)
        assert not thread.is_alive(), f"{page.name} still running after {PAGE_TIMEOUT}s"
        if errors:
            raise errors[0]
    finally:
        close_resources(module)


def close_resources(module: types.ModuleType) -> None:
    """Close what a page opened: its ``Werk`` objects, and the engines of a Flask page's
    Flask-SQLAlchemy (their connections would otherwise be collected still open)."""
    values = list(module.__dict__.values())
    for value in values:
        if isinstance(value, Werk):
            value.close()
    flask_apps = [v for v in values if type(v).__name__ == "Flask"]
    if not flask_apps:
        return
    from flask_sqlalchemy import SQLAlchemy

    for db in (v for v in values if isinstance(v, SQLAlchemy)):
        for flask_app in flask_apps:
            if "sqlalchemy" in flask_app.extensions:
                with flask_app.app_context():
                    for engine in db.engines.values():
                        engine.dispose()
    for flask_app in flask_apps:
        found = flask_app.extensions.get("pgwerk")
        if found is not None:
            found.werk.close()


def test_guides__illustrative_blocks_are_explained_on_their_page() -> None:
    for page in PAGES:
        if any(not b.runs for b in python_blocks(page)):
            assert "illustrative" in page.read_text(), (
                f"{page.name} has Python blocks that do not run (title=...) but no note "
                "saying why (with the word 'illustrative')")


def test_guides__every_page_is_in_the_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    assert PAGES, "no pages under docs/"
    for page in PAGES:
        assert f": {page.name}" in nav, f"{page.name} is not in mkdocs.yml's nav"


def test_guides__the_readme_links_every_guide() -> None:
    readme = (ROOT / "README.md").read_text()
    for page in PAGES:
        if page.name != "index.md":
            assert f"(docs/{page.name})" in readme, f"README.md does not link docs/{page.name}"
