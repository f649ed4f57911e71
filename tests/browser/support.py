"""Driving a real headless Chromium at the dashboard: the browser, a WSGI server in a
thread, and demo data for screenshots.

The browser is the system's Chromium and its chromedriver (Debian packages ``chromium``
and ``chromium-driver``); their paths are given explicitly, so Selenium never downloads
anything (selenium-manager is not used).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from pgwerk import Werk
from pgwerk.cron import CronScheduler
from tests import jobs
from tests.helpers import ago, make_job, query

CHROMIUM = os.environ.get("PGWERK_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PGWERK_CHROMEDRIVER", "/usr/bin/chromedriver")


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return (f"{path} is missing: apt-get install chromium chromium-driver "
                    "(.ci/run does it)")
    return None


def chrome(width: int = 1400, height: int = 900, dark: bool = False) -> Any:
    """A headless Chromium driven through the system's chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1",
                     f"--window-size={width},{height}", "--lang=en-US",
                     "--disable-extensions", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync"):
        options.add_argument(argument)
    if dark:
        options.add_argument("--force-dark-mode")
        options.add_argument("--blink-settings=preferredColorScheme=0")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@contextmanager
def serve(wsgi_app: Any) -> Iterator[str]:
    """Serve a WSGI app on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, wsgi_app, server_class=_Server, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, name="dashboard-server",
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def full_page_screenshot(driver: Any, path: str, width: int) -> None:
    """A PNG of the whole page laid out ``width`` CSS pixels wide (a phone-like
    viewport below 500 px)."""
    metrics = {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": width < 500}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    driver.refresh()
    height = driver.execute_script(
        "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)")
    metrics["height"] = min(max(int(height), 300), 6000)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    driver.save_screenshot(path)
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def artefact_dir(default: str) -> str:
    """Where screenshots of a test run go: ``$PGWERK_ARTEFACTS`` or ``default``."""
    path = os.environ.get("PGWERK_ARTEFACTS") or default
    os.makedirs(path, exist_ok=True)
    return path


def seed_demo(app: Werk) -> dict[str, int]:
    """Jobs, attempts, a worker and schedules that make every page show something."""
    ids: dict[str, int] = {}
    app.connect()  # creates the tables
    now = datetime.now(timezone.utc)
    # An hour of traffic for the chart, written in one statement.
    query(app, "INSERT INTO {jobs} (function, queue, status, payload, attempts, started_at, "
               "completed_at, enqueued_at, scheduled_at, error) "
               "SELECT f.function, f.queue, f.status, %s, 1, t - interval '2 seconds', t, "
               "t - interval '3 seconds', t - interval '3 seconds', f.error "
               "FROM generate_series(1, 60) AS m, "
               "LATERAL generate_series(1, 3 + (m * 7) %% 11) AS n, "
               "LATERAL (SELECT now() - make_interval(mins => 60 - m, secs => n) AS t) AS at, "
               "LATERAL (SELECT CASE WHEN n = 1 AND m %% 9 = 4 THEN 'shop.tasks.charge_card' "
               "ELSE 'shop.tasks.send_receipt' END AS function, "
               "CASE WHEN n = 1 AND m %% 9 = 4 THEN 'payments' ELSE 'mail' END AS queue, "
               "CASE WHEN n = 1 AND m %% 9 = 4 THEN 'failed' ELSE 'complete' END AS status, "
               "CASE WHEN n = 1 AND m %% 9 = 4 THEN %s END AS error) AS f",
          ('{"args":[],"kwargs":{"order":1000}}', _traceback(1000)))
    ids["failed"] = make_job(
        app, "shop.tasks.charge_card", options={"_queue": "payments", "_retry": 3},
        kwargs={"order": 4711, "amount": "49.90", "currency": "EUR"}, status="failed",
        attempts=3, enqueued_at=ago(400), scheduled_at=ago(400), started_at=ago(42),
        completed_at=ago(40), worker_id="web-1:4242",
        error=_traceback(4711)).id
    query(app, "INSERT INTO {executions} (job_id, attempt, worker_id, started_at, "
               "finished_at, outcome, error) VALUES "
               "(%s, 1, 'web-1:4242', now() - interval '5 min', "
               "now() - interval '299 seconds', 'failed', %s), "
               "(%s, 2, 'web-2:977', now() - interval '3 min', "
               "now() - interval '179 seconds', 'failed', %s)",
          (ids["failed"], _traceback(4711), ids["failed"], _traceback(4711)))
    for i in range(6):
        make_job(app, "shop.tasks.build_report", options={"_queue": "reports"},
                 kwargs={"month": f"2026-{i + 1:02d}"}, scheduled_at=ago(95 - i * 10))
    ids["active"] = make_job(app, "shop.tasks.build_report", options={"_queue": "reports"},
                             kwargs={"month": "2025-12"}, status="active", attempts=1,
                             worker_id="web-1:4242", enqueued_at=ago(90),
                             scheduled_at=ago(90), started_at=ago(37)).id
    make_job(app, "shop.tasks.send_receipt", options={"_queue": "mail", "_delay": 1800},
             kwargs={"order": 4712})
    upstream = app.enqueue("shop.tasks.export_orders", _queue="reports")
    assert upstream is not None
    app.enqueue("shop.tasks.upload_export", _depends_on=upstream, _queue="reports")
    query(app, "INSERT INTO {workers} (id, hostname, pid, queues, concurrency, pool) VALUES "
               "('web-1:4242', 'web-1', 4242, %s, 8, 'thread'), "
               "('web-2:977', 'web-2', 977, %s, 4, 'fork')",
          (["mail", "payments", "reports"], ["default"]))
    scheduler = CronScheduler(app)
    scheduler.register(jobs.noop, interval=900, name="sync-stock", queue="default")
    scheduler.register(jobs.add, cron="0 3 * * *", tz="Europe/Berlin", name="nightly-report",
                       args=[1, 2], queue="reports")
    scheduler.tick()
    first = (now + timedelta(minutes=15)).replace(second=1, microsecond=0)
    first = first.replace(minute=first.minute - first.minute % 15)
    scheduler.tick(now=first)
    scheduler.pause("nightly-report")
    return ids


def _traceback(order: int) -> str:
    return ("Traceback (most recent call last):\n"
            '  File "/srv/shop/tasks.py", line 88, in charge_card\n'
            "    receipt = gateway.charge(order.total, token=order.card_token)\n"
            '  File "/srv/shop/gateway.py", line 41, in charge\n'
            "    raise PaymentDeclined(response.reason)\n"
            f"shop.gateway.PaymentDeclined: card declined for order {order} "
            "(insufficient funds)")

