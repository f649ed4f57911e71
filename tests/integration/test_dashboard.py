"""The web dashboard's pages, driven as a WSGI application against a real database."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from pgwerk import Werk
from pgwerk.cron import CronScheduler
from pgwerk.dashboard import Dashboard
from tests import jobs
from tests.conftest import MakeApp
from tests.helpers import ago, make_job, query
from tests.integration.dashboard_client import Client


def test_dashboard__overview_lists_queues_latency_and_throughput(app: Werk) -> None:
    make_job(app, options={"_queue": "mail"}, scheduled_at=ago(125))
    make_job(app, options={"_queue": "mail"})
    make_job(app, status="complete", attempts=1, started_at=ago(61), completed_at=ago(60))
    reply = Client(Dashboard(app)).get("/")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/html")
    assert ">mail</a>" in reply.text and ">2</a>" in reply.text
    assert ">2m 5s<" in reply.text or ">2m 6s<" in reply.text  # the oldest waiting job
    assert '<figure class="chart"><div class="y-axis"><span>1</span>' in reply.text
    assert "UTC: 1 processed, 0 failed" in reply.text
    assert "<title>Overview · pgwerk</title>" in reply.text


def test_dashboard__overview_shows_queue_limits_and_what_they_hold(app: Werk) -> None:
    app.configure_queue("mail", rate_limit="10/s", concurrency=3)
    app.configure_queue("mail", function="tests.jobs.noop", rate_limit="1/m")
    app.configure_queue("<b>", concurrency=2)  # a queue with limits and no jobs yet
    make_job(app, options={"_queue": "mail"}, status="active", worker_id="w", attempts=1)
    query(app, "UPDATE {queue_limits} SET running = 1 WHERE queue = 'mail' AND function = ''")
    text = Client(Dashboard(app)).get("/").text
    assert ">10/s</span> · <span" in text and ">1/3 running</span>" in text
    assert "tests.<wbr>jobs.<wbr>noop:</span>" in text and ">1/m</span>" in text
    assert ">&lt;b&gt;</a>" in text and ">0/2 running</span>" in text


def test_dashboard__every_page_has_a_title_viewport_favicon_and_stylesheet(app: Werk) -> None:
    job = make_job(app)
    client = Client(Dashboard(app, title="Shop jobs"))
    for path in ("/", "/jobs", f"/jobs/{job.id}", "/workers", "/cron", "/nope"):
        text = client.get(path).text
        assert re.search(r"<title>[^<]+ · Shop jobs</title>", text), path
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in text
        assert 'href="/static/favicon.svg"' in text and 'href="/static/pgwerk.css"' in text
    css = client.get("/static/pgwerk.css")
    assert css.status == 200 and css.headers["Content-Type"].startswith("text/css")
    assert "prefers-color-scheme: dark" in css.text
    assert client.get("/static/favicon.svg").headers["Content-Type"] == "image/svg+xml"
    assert client.get("/static/../app.py").status == 404


def test_dashboard__empty_states_say_what_to_do(app: Werk) -> None:
    client = Client(Dashboard(app))
    assert "No jobs yet" in client.get("/").text
    assert "No jobs yet" in client.get("/jobs").text
    assert "No jobs match these filters" in client.get("/jobs?queue=x").text
    assert "No workers registered" in client.get("/workers").text
    assert "No cron schedules" in client.get("/cron").text


def test_dashboard__job_page_shows_payload_traceback_and_attempts(app: Werk) -> None:
    job = make_job(app, "tests.jobs.add", args=(40, 2), status="failed", attempts=1,
                   started_at=ago(3), completed_at=ago(1),
                   error="Traceback (most recent call last):\n  ...\nValueError: nope")
    text = Client(Dashboard(app)).get(f"/jobs/{job.id}").text
    assert "tests.jobs.add" in text and "40" in text
    assert "ValueError: nope" in text
    assert re.search(r'<td class="num">1</td><td><span class="badge failed">', text)
    assert 'title="20' in text and " ago</time>" in text  # relative time, exact on hover
    assert re.search(r">2(\.0)?s<", text)  # duration


def test_dashboard__job_page_links_dependencies_dependents_callbacks_and_cron(
        app: Werk) -> None:
    upstream = make_job(app)
    middle = app.enqueue(jobs.noop, _depends_on=upstream, _on_failure=jobs.on_error)
    assert middle is not None
    downstream = app.enqueue(jobs.noop, _depends_on=middle)
    assert downstream is not None
    text = Client(Dashboard(app)).get(f"/jobs/{middle.id}").text
    assert f'href="/jobs/{upstream.id}"' in text and f'href="/jobs/{downstream.id}"' in text
    assert "Depends on" in text and "Dependents" in text
    assert "tests.jobs.on_error" in text

    for name in ("nightly", "Totals:EU"):
        cron_job = make_job(app, options={"_key": f"cron:{name}:2026-01-01T03:00:00+00:00"})
        text = Client(Dashboard(app)).get(f"/jobs/{cron_job.id}").text
        assert f'href="/cron#cron-{name}"' in text


def test_dashboard__aborting_job_says_why_it_has_not_stopped(app: Werk) -> None:
    job = make_job(app, status="aborting", attempts=1, worker_id="w", started_at=ago(5))
    text = Client(Dashboard(app)).get(f"/jobs/{job.id}").text
    assert "at its next check" in text and "cannot be interrupted" in text


def test_dashboard__running_job_shows_its_progress_and_snoozes(app: Werk) -> None:
    job = make_job(app, status="active", attempts=2, snoozed=1, worker_id="w",
                   started_at=ago(2), progress=0.4, progress_message="step <2> of 5")
    query(app, "INSERT INTO {executions} (job_id, attempt, worker_id, started_at, outcome) "
               "VALUES (%s, 1, 'w', now() - interval '1 minute', 'snoozed')", [job.id])
    client = Client(Dashboard(app))
    page = client.get(f"/jobs/{job.id}").text
    assert '<progress max="1" value="0.4">40%</progress> 40%' in page
    assert '<span class="muted">step &lt;2&gt; of 5</span>' in page
    assert "2 of 1 (1 snoozed, not counted)" in page
    assert '<span class="badge snoozed">snoozed</span>' in page
    listing = client.get("/jobs").text
    assert ('<progress class="compact" max="1" value="0.4" title="40% step &lt;2&gt; of 5">'
            '40%</progress>') in listing


def test_dashboard__jobs_list_filters_counts_and_pages(app: Werk) -> None:
    for i in range(60):
        app.enqueue(jobs.add, i, i, _queue="bulk")
    other = app.enqueue(jobs.echo, "needle@example.com", _queue="other", _key="k-1")
    assert other is not None
    client = Client(Dashboard(app))
    first = client.get("/jobs?queue=bulk").text
    assert first.count('<td class="wide">bulk</td>') == 50 and ">other</td>" not in first
    assert "<strong>60</strong> jobs match" in first and "page 1 of 2" in first
    assert "older &rarr;" in first
    second = client.get("/jobs?queue=bulk&page=2").text
    assert second.count('<td class="wide">bulk</td>') == 10
    for query_string in (f"job_id={other.id}", "key=k-1", "key=k-*", "search=NEEDLE",
                         "function=tests.jobs.echo"):
        text = client.get(f"/jobs?{query_string}").text
        assert "<strong>1</strong> job matches" in text, query_string
        assert f'href="/jobs/{other.id}"' in text, query_string
    choices = client.get("/jobs").text
    assert "<option>bulk</option>" in choices and "<option>tests.jobs.echo</option>" in choices


def test_dashboard__jobs_list_shows_error_summary_duration_and_schedule(app: Werk) -> None:
    make_job(app, status="failed", attempts=1, started_at=ago(70), completed_at=ago(10),
             error="Traceback (most recent call last):\nKeyError: 'sku'")
    make_job(app, options={"_delay": 3600})
    text = Client(Dashboard(app)).get("/jobs").text
    assert "KeyError: &#39;sku&#39;</td>" in text
    assert ">1m<" in text
    assert ">in 59m" in text or ">in 1h<" in text


def test_dashboard__unknown_pages_and_jobs_are_404_and_bad_filters_400(app: Werk) -> None:
    client = Client(Dashboard(app))
    assert client.get("/nope").status == 404
    assert client.get("/jobs/999999").status == 404
    assert client.get(f"/jobs/{10**30}").status == 404
    assert client.get("/jobs/abc").status == 404
    assert client.get("/jobs?status=bogus").status == 400
    assert client.get("/jobs?job_id=12a").status == 400
    assert client.get("/jobs?older_than=-1").status == 400
    assert client.get("/jobs?older_than=1e300").status == 400
    assert client.get(f"/jobs?page={10**30}").status == 200
    assert client.request("PUT", "/").status == 405


def test_dashboard__cron_page_pause_resume_and_run_now(app: Werk) -> None:
    scheduler = CronScheduler(app)
    scheduler.register(jobs.add, interval=3600, name="hourly", args=[1, 2], queue="q")
    scheduler.tick()
    now = datetime.now(timezone.utc)
    next_hour = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    [enqueued] = scheduler.tick(now=next_hour + timedelta(seconds=1))
    client = Client(Dashboard(app))
    text = client.get("/cron").text
    assert 'id="cron-hourly"' in text and "every 3600s" in text and ">UTC<" in text
    assert f'href="/jobs/{enqueued.id}"' in text  # the last tick that enqueued
    assert text.count(" ago</time>") + text.count("in ") >= 1

    paused = client.follow(client.submit("/cron", "/cron/hourly/pause"))
    assert "schedule hourly paused" in paused.text
    card = re.search(r'<section class="card" id="cron-hourly">.*?</section>', paused.text,
                     re.S)
    assert card and "badge paused" in card.group(0)
    assert "<th>next tick</th><td></td>" in card.group(0)  # blank while paused
    assert query(app, "SELECT paused FROM {cron}") == [{"paused": True}]

    resumed = client.follow(client.submit("/cron", "/cron/hourly/resume"))
    assert "schedule hourly resumed" in resumed.text
    assert query(app, "SELECT paused FROM {cron}") == [{"paused": False}]

    ran = client.follow(client.submit("/cron", "/cron/hourly/run"))
    assert "schedule hourly run now as job" in ran.text
    now_job = max(app.list_jobs(function="tests.jobs.add"), key=lambda j: j.id)
    assert now_job.id != enqueued.id and now_job.args == (1, 2) and now_job.queue == "q"
    assert now_job.meta == {"cron": "hourly", "manual": True} and now_job.key is None

    missing = client.follow(client.submit("/cron", "/cron/nope/run"))
    assert "there is no schedule named nope" in missing.text


def test_dashboard__database_unreachable_is_a_friendly_page(make_app: MakeApp) -> None:
    down = Werk("postgresql://postgres@127.0.0.1:1/test", connect_attempts=1,
                connect_timeout=1)
    reply = Client(Dashboard(down)).get("/")
    assert reply.status == 503
    assert "Database unreachable" in reply.text and "Traceback" not in reply.text
    assert reply.headers["Cache-Control"] == "no-store"


def test_dashboard__missing_tables_say_run_pgwerk_migrate(make_app: MakeApp) -> None:
    bare = make_app(auto_migrate=False)
    reply = Client(Dashboard(bare)).get("/jobs")
    assert reply.status == 503
    assert "Tables missing" in reply.text and "pgwerk migrate" in reply.text


@pytest.mark.slow
def test_dashboard__cli_serves_it_on_loopback(app: Werk) -> None:
    import socket
    import subprocess
    import sys
    import urllib.request

    from tests.helpers import eventually

    app.enqueue(jobs.add, 1, 2, _queue="served")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "pgwerk.cli", "dashboard", "--dsn", app.dsn,
         "--schema", app.config.schema, "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def page() -> str | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                    return str(resp.read().decode())
            except OSError:
                assert process.poll() is None, process.communicate()[1].decode()
                return None

        assert ">served</a>" in eventually(page, timeout=20)
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_dashboard__mounted_under_a_prefix_every_link_and_redirect_keeps_it(
        app: Werk) -> None:
    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    from werkzeug.test import Client as WerkzeugClient

    def host_app(environ: dict[str, object], start_response: Callable[..., object]
                 ) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"the host app"]

    job = make_job(app, status="failed", attempts=1, completed_at=ago(1))
    client = WerkzeugClient(DispatcherMiddleware(host_app, {"/pgwerk": Dashboard(app)}))
    page = client.get(f"/pgwerk/jobs/{job.id}").get_data(as_text=True)
    links = re.findall(r'(?:href|src|action)="([^"#]+)"', page)
    assert links and all(link.startswith("/pgwerk/") for link in links), links
    assert client.get("/pgwerk/static/pgwerk.css").status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    reply = client.post(f"/pgwerk/jobs/{job.id}/retry", data={"csrf_token": token.group(1)})
    assert reply.status_code == 303 and reply.headers["Location"] == f"/pgwerk/jobs/{job.id}"
    assert client.get("/elsewhere").get_data() == b"the host app"


def test_cron__last_enqueued_is_the_schedules_own_newest_tick_job(app: Werk) -> None:
    tick = "2026-01-01T03:00:00+00:00"
    query(app, "INSERT INTO {cron} (name, function, schedule, last_tick) VALUES "
               "('a', 'tests.jobs.noop', 'every 60s', %s), "
               "('a:b', 'tests.jobs.noop', 'every 60s', %s), "
               "('gone', 'tests.jobs.noop', 'every 60s', %s)", (tick, tick, tick))
    own = make_job(app, options={"_key": f"cron:a:{tick}"})
    other = make_job(app, options={"_key": f"cron:a:b:{tick}"})  # newer, of schedule a:b
    older = make_job(app, options={"_key": "cron:gone:2025-12-31T03:00:00+00:00"})
    text = Client(Dashboard(app)).get("/cron").text
    cards = dict(re.findall(r'<section class="card" id="cron-([^"]+)">(.*?)</section>', text,
                            re.S))
    assert f'href="/jobs/{own.id}"' in cards["a"] and f"/jobs/{other.id}" not in cards["a"]
    assert f'href="/jobs/{other.id}"' in cards["a:b"]
    assert f'href="/jobs/{older.id}"' in cards["gone"]  # its last tick's job was purged
