"""Screenshots of every dashboard page at 1400 and 400 pixels wide, for the README.

    PGWERK_TEST_DSN=postgresql://localhost/test python -m tests.browser.screenshots [OUT]

Seeds demo data in a throwaway schema of that database, serves the dashboard on
127.0.0.1 and saves ``<page>-<width>.png`` in OUT (default ``docs/screenshots``). When
``pngquant`` is installed the PNGs are reduced to 64 colours (a quarter of the size).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid

import psycopg
from psycopg import sql

from pgwerk import Werk
from pgwerk.dashboard import Dashboard
from tests.browser.support import chrome, full_page_screenshot, seed_demo, serve

WIDTHS = (1400, 400)


def pages(ids: dict[str, int]) -> list[tuple[str, str]]:
    return [
        ("overview", "/"),
        ("jobs", "/jobs"),
        ("job-failed", f"/jobs/{ids['failed']}"),
        ("job-active", f"/jobs/{ids['active']}"),
        ("bulk-retry", "/bulk?action=retry&queue=payments"),
        ("cron", "/cron"),
        ("workers", "/workers"),
    ]


def main(out: str) -> None:
    dsn = os.environ.get("PGWERK_TEST_DSN") or os.environ.get("PGWERK_DSN")
    if not dsn:
        sys.exit("set PGWERK_TEST_DSN to a PostgreSQL where a throwaway schema may be made")
    os.makedirs(out, exist_ok=True)
    schema = f"screens_{uuid.uuid4().hex[:8]}"
    app = Werk(dsn, schema=schema)
    try:
        ids = seed_demo(app)
        with serve(Dashboard(app, title="shop jobs")) as base:
            driver = chrome()
            try:
                for width in WIDTHS:
                    for name, path in pages(ids):
                        driver.set_window_size(width, 900)
                        driver.get(base + path)
                        full_page_screenshot(driver, os.path.join(out, f"{name}-{width}.png"),
                                             width)
                down = Werk("postgresql://postgres@127.0.0.1:1/none", connect_attempts=1,
                            connect_timeout=1)
                with serve(Dashboard(down, title="shop jobs")) as down_base:
                    for width in WIDTHS:
                        driver.set_window_size(width, 900)
                        driver.get(down_base + "/")
                        full_page_screenshot(
                            driver, os.path.join(out, f"database-down-{width}.png"), width)
            finally:
                driver.quit()
    finally:
        app.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(schema)))
    shrink(out)
    print(f"screenshots in {out}")


def shrink(folder: str) -> None:
    """Quantise the PNGs with pngquant, when it is installed."""
    pngquant = shutil.which("pngquant")
    if pngquant is None:
        return
    files = [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".png")]
    subprocess.run([pngquant, "--force", "--ext", ".png", "--skip-if-larger", "--strip",
                    "64", *files], check=False)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join("docs", "screenshots"))
