"""The dashboard's safety properties: escaping, signed CSRF tokens, cookies, headers,
read-only mode, authentication, and never unpickling a payload."""

from __future__ import annotations

import pathlib
import subprocess
import sys
from typing import Any

import pytest

from pgwerk import JobStatus, PickleSerializer, Werk
from pgwerk.dashboard import Dashboard
from pgwerk.dashboard._auth import is_loopback
from pgwerk.dashboard._csrf import Signer
from tests import jobs
from tests.conftest import MakeApp
from tests.helpers import ago, make_job, set_columns
from tests.integration.dashboard_client import Client

SECRET = b"a test secret of 32 bytes length"


def failed(app: Werk) -> int:
    return make_job(app, status="failed", attempts=1, completed_at=ago(1)).id


def test_dashboard__escapes_every_value_it_shows(app: Werk) -> None:
    evil = "<script>alert(1)</script>"
    job = app.enqueue(jobs.echo, evil, _meta={"note": evil}, _queue="q<b>", _key=evil)
    assert job is not None
    client = Client(Dashboard(app))
    pages = {}
    for path in ("/", f"/jobs/{job.id}", "/jobs?queue=q%3Cb%3E", "/jobs?search=%3Cscript",
                 f"/jobs/{job.id}/delete"):
        reply = client.get(path)
        assert reply.status == 200, path
        pages[path] = reply.text
        assert "<script>alert" not in reply.text and "q<b>" not in reply.text, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[f"/jobs/{job.id}"]
    assert "q&lt;b&gt;" in pages["/"]


def test_dashboard__every_response_has_security_headers_and_no_store(app: Werk) -> None:
    job_id = failed(app)
    client = Client(Dashboard(app))
    replies = [client.get(p) for p in ("/", "/jobs", f"/jobs/{job_id}", "/nope",
                                       "/static/pgwerk.css", "/jobs?status=x")]
    replies.append(client.post(f"/jobs/{job_id}/retry", {"csrf_token": "forged"}))
    replies.append(client.submit(f"/jobs/{job_id}", f"/jobs/{job_id}/retry"))
    replies.append(Client(Dashboard(app, auth="u:p")).get("/"))
    for reply in replies:
        assert reply.headers["Cache-Control"] == "no-store", reply.status
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        assert reply.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in reply.headers["Content-Security-Policy"]
        assert "'unsafe-inline'" not in reply.headers["Content-Security-Policy"]


def test_csrf__token_is_signed_so_a_planted_cookie_and_field_pair_fails(app: Werk) -> None:
    job_id = failed(app)
    client = Client(Dashboard(app, secret=SECRET))
    client.get(f"/jobs/{job_id}")
    # What a sibling subdomain could plant: a cookie and the same value in the form.
    client.cookies["pgwerk_csrf"] = "planted-token-of-the-right-length-000000000"
    assert client.post(f"/jobs/{job_id}/retry",
                       {"csrf_token": client.cookies["pgwerk_csrf"]}).status == 403
    # Well formed, but signed with another secret.
    other = Signer(b"another secret, also 32 bytes!!").new_csrf_token()
    client.cookies["pgwerk_csrf"] = other
    assert client.post(f"/jobs/{job_id}/retry", {"csrf_token": other}).status == 403
    # A real token of this server, but not the one in the cookie.
    real = Signer(SECRET).new_csrf_token()
    assert client.post(f"/jobs/{job_id}/retry", {"csrf_token": real}).status == 403
    assert client.post(f"/jobs/{job_id}/retry", {}).status == 403
    assert app.get_job(job_id).status is JobStatus.Failed
    assert client.submit(f"/jobs/{job_id}", f"/jobs/{job_id}/retry").status == 303
    assert app.get_job(job_id).status is JobStatus.Queued


def test_csrf__the_same_secret_works_across_processes(app: Werk) -> None:
    job_id = failed(app)
    first, second = Dashboard(app, secret=SECRET), Dashboard(app, secret=SECRET)
    client = Client(first)
    token = client.csrf(client.get(f"/jobs/{job_id}").text)
    client.app = second
    assert client.post(f"/jobs/{job_id}/retry", {"csrf_token": token}).status == 303


def test_cookies__host_prefixed_and_secure_over_https_only(app: Werk) -> None:
    https = Client(Dashboard(app), https=True).get("/")
    [cookie] = https.cookies_set()
    assert cookie.startswith("__Host-pgwerk_csrf=")
    assert "; Secure" in cookie and "Path=/" in cookie and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie and "Domain" not in cookie
    [plain] = Client(Dashboard(app)).get("/").cookies_set()
    assert plain.startswith("pgwerk_csrf=") and "Secure" not in plain


def test_https__a_whole_action_round_trip_uses_the_prefixed_cookies(app: Werk) -> None:
    job_id = failed(app)
    client = Client(Dashboard(app), https=True)
    done = client.follow(client.submit(f"/jobs/{job_id}", f"/jobs/{job_id}/retry"))
    assert set(client.cookies) == {"__Host-pgwerk_csrf"}  # the flash was shown and cleared
    assert f"job {job_id} queued again" in done.text


def test_flash__a_forged_flash_cookie_is_ignored(app: Werk) -> None:
    client = Client(Dashboard(app))
    client.cookies["pgwerk_flash"] = "b2s6YWxsIGpvYnMgZGVsZXRlZA.forged"
    assert "all jobs deleted" not in client.get("/").text


def test_read_only__shows_no_actions_and_refuses_them(app: Werk) -> None:
    job_id = failed(app)
    client = Client(Dashboard(app, read_only=True))
    page = client.get(f"/jobs/{job_id}").text
    assert 'method="post"' not in page and "read-only" in page
    assert "Retry matching" not in client.get("/jobs").text
    token = Signer(SECRET).new_csrf_token()
    for path, form in ((f"/jobs/{job_id}/retry", {}), ("/bulk", {"action": "retry"}),
                       ("/cron/x/pause", {})):
        assert client.post(path, {"csrf_token": token, **form}).status == 403
    assert client.get("/bulk?action=retry").status == 403
    assert client.get(f"/jobs/{job_id}/delete").status == 403
    assert app.get_job(job_id).status is JobStatus.Failed


class Bomb:
    """Unpickling this touches a file: proof that something was unpickled."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (self.marker,))


def test_payloads__pickled_ones_are_never_unpickled(make_app: MakeApp,
                                                    tmp_path: pathlib.Path) -> None:
    app = make_app(serializer=PickleSerializer())
    marker = tmp_path / "unpickled"
    job = app.enqueue(jobs.echo, Bomb(marker))
    assert job is not None
    marker.unlink(missing_ok=True)  # enqueue's own returned Job decodes what it just wrote
    size = len(app._store.fetch("job_get", {"id": job.id})[0]["payload"])
    client = Client(Dashboard(app))
    for path in ("/", "/jobs", f"/jobs/{job.id}", f"/jobs?search=x&job_id={job.id}",
                 f"/jobs/{job.id}/delete"):
        assert client.get(path).status == 200, path
    page = client.get(f"/jobs/{job.id}").text
    assert f"binary payload, {size} bytes" in page
    result = PickleSerializer().dumps(Bomb(marker))
    set_columns(app, job.id, status="complete", result=result, completed_at=ago(1))
    assert f"binary result, {len(result)} bytes" in client.get(f"/jobs/{job.id}").text
    assert client.get("/jobs?status=complete").status == 200
    assert not marker.exists()


def test_payloads__json_ones_are_shown(app: Werk) -> None:
    job = app.enqueue(jobs.echo, "hello", n=3)
    assert job is not None
    page = Client(Dashboard(app)).get(f"/jobs/{job.id}").text
    assert "&#34;hello&#34;" in page or "&quot;hello&quot;" in page
    assert "binary payload" not in page


def test_auth__basic_credentials_are_required_when_set(app: Werk) -> None:
    dashboard = Dashboard(app, auth="admin:s3cret")
    anonymous = Client(dashboard).get("/")
    assert anonymous.status == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert Client(dashboard, auth=("admin", "wrong")).get("/").status == 401
    assert Client(dashboard, auth=("root", "s3cret")).get("/").status == 401
    assert Client(dashboard, auth=("admin", "s3cret")).get("/").status == 200
    assert Client(dashboard, auth=("admin", "s3cret")).get("/static/pgwerk.css").status == 200
    broken = Client(dashboard).request("GET", "/", extra={"HTTP_AUTHORIZATION": "Basic %%%"})
    assert broken.status == 401


@pytest.mark.parametrize("auth", ["nocolon", ":pw", "user:", ("a",), 5])
def test_auth__bad_setting_is_a_clear_error(app: Werk, auth: Any) -> None:
    with pytest.raises(ValueError, match="auth"):
        Dashboard(app, auth=auth)


def test_secret__too_short_is_refused(app: Werk) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        Dashboard(app, secret="short")


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("::", False), ("10.1.2.3", False),
    ("example.com", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "pgwerk.cli", "dashboard", *args],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_cli__refuses_a_public_bind_without_credentials(app: Werk) -> None:
    done = run_cli("--dsn", app.dsn, "--host", "0.0.0.0", "--port", "1",
                   env={"PGWERK_DASHBOARD_AUTH": ""})
    assert done.returncode == 2
    assert "not a loopback address" in done.stderr and "--auth" in done.stderr
    bad = run_cli("--dsn", app.dsn, "--host", "0.0.0.0", "--auth", "nocolon")
    assert bad.returncode == 2 and "user:password" in bad.stderr


@pytest.mark.slow
def test_cli__a_public_bind_with_credentials_serves_behind_basic_auth(app: Werk) -> None:
    import base64
    import os
    import socket
    import urllib.error
    import urllib.request

    from tests.helpers import eventually

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "pgwerk.cli", "dashboard", "--dsn", app.dsn, "--schema",
         app.config.schema, "--host", "0.0.0.0", "--port", str(port)],
        env={**os.environ, "PGWERK_DASHBOARD_AUTH": "ops:letmein"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/"
    try:
        def refused() -> int | None:
            try:
                urllib.request.urlopen(url, timeout=2)
            except urllib.error.HTTPError as exc:
                return exc.code
            except OSError:
                assert process.poll() is None, process.communicate()[1].decode()
            return None

        assert eventually(refused, timeout=20) == 401
        request = urllib.request.Request(url, headers={
            "Authorization": "Basic " + base64.b64encode(b"ops:letmein").decode()})
        with urllib.request.urlopen(request, timeout=5) as reply:
            assert reply.status == 200
    finally:
        process.terminate()
        process.communicate(timeout=10)
