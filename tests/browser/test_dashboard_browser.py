"""The dashboard in a real headless Chromium: pages render, filters and forms work,
confirmations come before acting, read-only hides actions, and a database that is down
gets a page that says so."""

from __future__ import annotations

from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from pgwerk import JobStatus, Werk
from pgwerk.cron import CronScheduler
from tests import jobs
from tests.browser.conftest import Open
from tests.helpers import ago, eventually, make_job

pytestmark = pytest.mark.slow


def text(browser: Any) -> str:
    # Read in one script call: the refresh script may swap <main> between two calls.
    return str(browser.execute_script("return document.querySelector('main').innerText"))


def follow(browser: Any, element: Any) -> None:
    """Click a link or a submit button and wait until the next page has loaded (a click
    returns before the browser has navigated)."""
    page = browser.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(browser, 15).until(expected_conditions.staleness_of(page))
    WebDriverWait(browser, 15).until(
        lambda b: b.execute_script("return document.readyState") == "complete")


def test_overview__queues_latency_chart_and_refresh_toggle(
        app: Werk, browser: Any, open_dashboard: Open) -> None:
    make_job(app, options={"_queue": "mail"}, scheduled_at=ago(90))
    make_job(app, status="complete", attempts=1, started_at=ago(61), completed_at=ago(60))
    browser.get(open_dashboard(app, refresh=5))
    assert browser.title == "Overview · pgwerk"
    assert "mail" in text(browser) and "1m 30s" in text(browser)
    assert browser.find_elements(By.CSS_SELECTOR, "figure.chart svg rect.bar-ok")
    toggle = browser.find_element(By.ID, "refresh-toggle")
    assert toggle.is_displayed() and toggle.text == "Pause auto-refresh"
    toggle.click()
    assert toggle.text == "Resume auto-refresh"
    toggle.click()
    assert toggle.text == "Pause auto-refresh"
    # The stylesheet loaded (CSP allows it): the header is dark.
    header = browser.find_element(By.TAG_NAME, "header")
    assert header.value_of_css_property("background-color") != "rgba(0, 0, 0, 0)"


def test_overview__refreshes_itself(app: Werk, browser: Any, open_dashboard: Open) -> None:
    browser.get(open_dashboard(app, refresh=1))
    browser.execute_script("window.localStorage.removeItem('pgwerk-refresh-paused')")
    assert "No jobs yet" in text(browser)
    make_job(app, options={"_queue": "late-arrival"})
    eventually(lambda: "late-arrival" in text(browser), timeout=15,
               message="the new queue appears without a reload")


def test_jobs__filters_by_choices_and_text(app: Werk, browser: Any,
                                           open_dashboard: Open) -> None:
    for i in range(3):
        app.enqueue(jobs.add, i, i, _queue="math")
    wanted = app.enqueue(jobs.echo, "find-me@example.com", _queue="mail")
    assert wanted is not None
    browser.get(open_dashboard(app) + "/jobs")
    assert "4 jobs match" in text(browser)
    Select(browser.find_element(By.NAME, "queue")).select_by_visible_text("math")
    follow(browser, browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]"))
    assert "3 jobs match" in text(browser)
    follow(browser, browser.find_element(By.LINK_TEXT, "Clear"))
    browser.find_element(By.NAME, "search").send_keys("FIND-ME")
    follow(browser, browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]"))
    assert "1 job matches" in text(browser)
    follow(browser, browser.find_element(By.LINK_TEXT, str(wanted.id)))
    assert browser.title == f"Job {wanted.id} · pgwerk"
    assert "find-me@example.com" in text(browser)


def test_failed_job__shows_the_traceback_and_retries(app: Werk, browser: Any,
                                                     open_dashboard: Open) -> None:
    job = make_job(app, "tests.jobs.fail", status="failed", attempts=1, started_at=ago(3),
                   completed_at=ago(2),
                   error="Traceback (most recent call last):\nValueError: boom")
    browser.get(open_dashboard(app) + f"/jobs/{job.id}")
    assert "ValueError: boom" in browser.find_element(By.CSS_SELECTOR, "pre.error").text
    follow(browser, browser.find_element(By.XPATH, "//button[text()='Retry']"))
    assert f"job {job.id} queued again" in browser.find_element(By.CSS_SELECTOR, ".flash").text
    assert app.get_job(job.id).status is JobStatus.Queued


def test_bulk_retry__asks_with_the_count_first(app: Werk, browser: Any,
                                               open_dashboard: Open) -> None:
    ids = [make_job(app, status="failed", attempts=1, completed_at=ago(5)).id
           for _ in range(3)]
    browser.get(open_dashboard(app) + "/jobs?status=failed")
    follow(browser, browser.find_element(By.PARTIAL_LINK_TEXT, "Retry matching"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Retry 3 jobs?"
    assert all(app.get_job(i).status is JobStatus.Failed for i in ids)
    follow(browser, browser.find_element(By.XPATH, "//button[text()='Retry 3 jobs']"))
    assert "3 jobs queued again" in browser.find_element(By.CSS_SELECTOR, ".flash").text
    assert all(app.get_job(i).status is JobStatus.Queued for i in ids)


def test_delete__confirmation_then_back_to_the_list(app: Werk, browser: Any,
                                                   open_dashboard: Open) -> None:
    job = make_job(app, status="complete", completed_at=ago(1))
    browser.get(open_dashboard(app) + f"/jobs/{job.id}")
    follow(browser, browser.find_element(By.LINK_TEXT, "Delete…"))
    assert browser.find_element(By.TAG_NAME, "h1").text == f"Delete job {job.id}?"
    follow(browser, browser.find_element(By.XPATH, "//button[text()='Delete job']"))
    assert browser.current_url.endswith("/jobs")
    assert f"job {job.id} deleted" in browser.find_element(By.CSS_SELECTOR, ".flash").text


def test_cron__pause_and_resume(app: Werk, browser: Any, open_dashboard: Open) -> None:
    scheduler = CronScheduler(app)
    scheduler.register(jobs.noop, interval=600, name="tidy")
    scheduler.tick()
    browser.get(open_dashboard(app) + "/cron")
    card = browser.find_element(By.ID, "cron-tidy")
    assert "active" in card.text
    follow(browser, card.find_element(By.XPATH, ".//button[text()='Pause']"))
    assert "schedule tidy paused" in browser.find_element(By.CSS_SELECTOR, ".flash").text
    assert "paused" in browser.find_element(By.ID, "cron-tidy").text
    follow(browser, browser.find_element(By.ID, "cron-tidy").find_element(
        By.XPATH, ".//button[text()='Resume']"))
    assert "schedule tidy resumed" in browser.find_element(By.CSS_SELECTOR, ".flash").text
    assert "active" in browser.find_element(By.ID, "cron-tidy").text


def test_read_only__no_buttons_anywhere(app: Werk, browser: Any,
                                        open_dashboard: Open) -> None:
    job = make_job(app, status="failed", attempts=1, completed_at=ago(1))
    base = open_dashboard(app, read_only=True)
    for path in ("/", "/jobs", f"/jobs/{job.id}", "/cron"):
        browser.get(base + path)
        assert not browser.find_elements(By.CSS_SELECTOR, "main form[method=post]"), path
        assert "read-only" in browser.find_element(By.TAG_NAME, "header").text
    browser.get(base + "/bulk?action=retry")
    assert "read-only" in text(browser)


def test_database_down__a_page_that_says_so(browser: Any, open_dashboard: Open) -> None:
    down = Werk("postgresql://postgres@127.0.0.1:1/none", connect_attempts=1,
                connect_timeout=1)
    browser.get(open_dashboard(down))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Database unreachable"
    assert browser.title == "Database unreachable · pgwerk"


def test_narrow_screen__no_horizontal_scrolling_of_the_page(app: Werk, browser: Any,
                                                            open_dashboard: Open) -> None:
    make_job(app, status="failed", attempts=1, completed_at=ago(1), error="x" * 300)
    base = open_dashboard(app)
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 400, "height": 800, "deviceScaleFactor": 1, "mobile": True})
    try:
        for path in ("/", "/jobs", "/jobs/1", "/workers", "/cron"):
            browser.get(base + path)
            width = browser.execute_script("return document.documentElement.scrollWidth")
            assert width <= 400, (path, width)
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
