"""The web dashboard, driven as a WSGI application against a real database."""

from __future__ import annotations

import io
import re
from typing import Any
from urllib.parse import urlencode
from wsgiref.util import setup_testing_defaults

from pgwerk import JobStatus, Werk
from pgwerk.dashboard import Dashboard
from tests import jobs
from tests.helpers import query


class Client:
    """Just enough of a browser: keeps the CSRF cookie between requests."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.cookie = ""

    def request(self, method: str, path: str, form: dict[str, str] | None = None
                ) -> tuple[int, dict[str, str], str]:
        path, _, query_string = path.partition("?")
        body = urlencode(form or {}).encode()
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query_string,
            "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
            "CONTENT_TYPE": "application/x-www-form-urlencoded", "HTTP_COOKIE": self.cookie,
        }
        setup_testing_defaults(environ)
        seen: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]]) -> None:
            seen["status"], seen["headers"] = int(status.split()[0]), dict(headers)

        text = b"".join(self.app(environ, start_response)).decode()
        cookie = seen["headers"].get("Set-Cookie")
        if cookie:
            self.cookie = cookie.split(";")[0]
        return seen["status"], seen["headers"], text

    def csrf(self, page: str) -> str:
        found = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert found, "no CSRF token on the page"
        return found.group(1)


def test_dashboard__overview_lists_queues_with_counts(app: Werk) -> None:
    app.enqueue(jobs.add, 1, 2, _queue="mail")
    app.enqueue(jobs.add, 1, 2, _queue="mail")
    status, headers, page = Client(Dashboard(app)).request("GET", "/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert ">mail</a>" in page and ">2</a>" in page


def test_dashboard__escapes_every_value_it_shows(app: Werk) -> None:
    evil = "<script>alert(1)</script>"
    job = app.enqueue(jobs.echo, evil, _meta={"note": evil}, _queue="q<b>")
    assert job is not None
    client = Client(Dashboard(app))
    pages = {}
    for path in ("/", f"/jobs/{job.id}", "/jobs?queue=q%3Cb%3E"):
        status, _, pages[path] = client.request("GET", path)
        assert status == 200, path
        assert "<script>" not in pages[path] and "q<b>" not in pages[path], path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[f"/jobs/{job.id}"]
    assert "q&lt;b&gt;" in pages["/"]


def test_dashboard__job_page_shows_payload_traceback_and_attempts(app: Werk) -> None:
    job = app.enqueue(jobs.add, 40, 2)
    assert job is not None
    query(app, "UPDATE {jobs} SET status = 'failed', attempts = 1, started_at = now(), "
               "completed_at = now(), error = 'Traceback: ValueError: nope' WHERE id = %s",
          (job.id,))
    status, _, page = Client(Dashboard(app)).request("GET", f"/jobs/{job.id}")
    assert status == 200
    assert "tests.jobs.add" in page and "40" in page
    assert "ValueError: nope" in page
    assert "<td>1</td>" in page  # the attempt row


def test_dashboard__retry_is_a_post_with_a_csrf_token(app: Werk) -> None:
    job = app.enqueue(jobs.add, 1, 2)
    assert job is not None
    query(app, "UPDATE {jobs} SET status = 'failed', attempts = 1, completed_at = now() "
               "WHERE id = %s", (job.id,))
    client = Client(Dashboard(app))
    _, _, page = client.request("GET", f"/jobs/{job.id}")

    status, _, _ = client.request("POST", f"/jobs/{job.id}/retry", {"csrf_token": "forged"})
    assert status == 403
    assert app.get_job(job.id).status is JobStatus.Failed

    status, headers, _ = client.request("POST", f"/jobs/{job.id}/retry",
                                        {"csrf_token": client.csrf(page)})
    assert status == 303 and headers["Location"] == f"/jobs/{job.id}"
    assert app.get_job(job.id).status is JobStatus.Queued


def test_dashboard__cancel_and_delete_act_on_the_job(app: Werk) -> None:
    first, second = app.enqueue(jobs.add, 1, 2), app.enqueue(jobs.add, 3, 4)
    assert first is not None and second is not None
    client = Client(Dashboard(app))
    _, _, page = client.request("GET", f"/jobs/{first.id}")
    token = client.csrf(page)
    assert client.request("POST", f"/jobs/{first.id}/cancel", {"csrf_token": token})[0] == 303
    assert app.get_job(first.id).status is JobStatus.Aborted
    assert client.request("POST", f"/jobs/{second.id}/delete", {"csrf_token": token})[0] == 303
    assert app.list_jobs() == [app.get_job(first.id)]


def test_dashboard__read_only_shows_no_actions_and_refuses_them(app: Werk) -> None:
    job = app.enqueue(jobs.add, 1, 2)
    assert job is not None
    client = Client(Dashboard(app, read_only=True))
    _, _, page = client.request("GET", f"/jobs/{job.id}")
    assert 'method="post"' not in page
    status, _, _ = client.request("POST", f"/jobs/{job.id}/cancel", {"csrf_token": client.cookie})
    assert status == 403
    assert app.get_job(job.id).status is JobStatus.Queued


def test_dashboard__unknown_pages_and_jobs_are_404(app: Werk) -> None:
    client = Client(Dashboard(app))
    assert client.request("GET", "/nope")[0] == 404
    assert client.request("GET", "/jobs/999999")[0] == 404
    assert client.request("GET", "/jobs/abc")[0] == 404
    assert client.request("GET", "/jobs?status=bogus")[0] == 400


def test_dashboard__jobs_list_filters_and_pages(app: Werk) -> None:
    for i in range(60):
        app.enqueue(jobs.add, i, i, _queue="bulk")
    app.enqueue(jobs.add, 0, 0, _queue="other")
    client = Client(Dashboard(app))
    _, _, first = client.request("GET", "/jobs?queue=bulk")
    assert first.count("<td>bulk</td>") == 50 and "<td>other</td>" not in first
    assert "older &rarr;" in first
    _, _, second = client.request("GET", "/jobs?queue=bulk&page=2")
    assert second.count("<td>bulk</td>") == 10


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
