"""The dashboard's WSGI application: routing, CSRF, and the pages."""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlencode

from pgwerk.app import Werk
from pgwerk.exceptions import JobNotFound
from pgwerk.job import JobStatus

StartResponse = Callable[..., Any]
Environ = dict[str, Any]

CSRF_COOKIE = "pgwerk_csrf"
PAGE_SIZE = 50
ACTIONS = ("retry", "cancel", "abort", "delete")


def _environment() -> Any:
    try:
        import jinja2
    except ImportError:
        raise ImportError("the pgwerk dashboard needs Jinja2: pip install 'pgwerk[web]'") from None
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pgwerk.dashboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["pretty"] = lambda value: json.dumps(value, indent=2, default=str,
                                                     ensure_ascii=False)
    return env


class _Response(Exception):
    def __init__(self, status: HTTPStatus, body: str = "",
                 headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(status.phrase)
        self.status, self.body, self.headers = status, body, headers or []


class Dashboard:
    """WSGI application showing queues, jobs, workers and schedules of one ``Werk``.

    Args:
        app: the ``Werk`` to show.
        read_only: hide and refuse every action.
        title: shown in the page header.

    Example (Flask)::

        from werkzeug.middleware.dispatcher import DispatcherMiddleware
        flask_app.wsgi_app = DispatcherMiddleware(flask_app.wsgi_app,
                                                  {"/pgwerk": Dashboard(app)})
    """

    def __init__(self, app: Werk, *, read_only: bool = False, title: str = "pgwerk") -> None:
        if not isinstance(app, Werk):
            raise TypeError(f"Dashboard needs a Werk app, got {type(app).__name__}")
        self.app = app
        self.read_only = read_only
        self.title = title
        self.templates = _environment()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        token, new_cookie = self._csrf_token(environ)
        headers = [("Content-Type", "text/html; charset=utf-8"),
                   ("X-Content-Type-Options", "nosniff"),
                   ("X-Frame-Options", "DENY"),
                   ("Referrer-Policy", "same-origin"),
                   ("Content-Security-Policy", "default-src 'self'; style-src 'unsafe-inline'")]
        if new_cookie:
            headers.append(("Set-Cookie", f"{CSRF_COOKIE}={token}; Path=/; HttpOnly; "
                                          "SameSite=Strict"))
        try:
            body = self._route(environ, token)
            status = HTTPStatus.OK
        except _Response as response:
            status, body = response.status, response.body or self._message(response.status)
            headers.extend(response.headers)
        start_response(f"{status.value} {status.phrase}", headers)
        return [body.encode("utf-8")]

    # -- plumbing ------------------------------------------------------------------------

    def _csrf_token(self, environ: Environ) -> tuple[str, bool]:
        cookie = SimpleCookie(environ.get("HTTP_COOKIE", ""))
        morsel = cookie.get(CSRF_COOKIE)
        if morsel is not None and len(morsel.value) == 43:
            return morsel.value, False
        return secrets.token_urlsafe(32), True

    def _render(self, template: str, **context: Any) -> str:
        return str(self.templates.get_template(template).render(
            title=self.title, read_only=self.read_only, **context))

    def _message(self, status: HTTPStatus, detail: str = "") -> str:
        return self._render("message.html", status=status.value, phrase=status.phrase,
                            detail=detail, csrf=None, base="")

    def _route(self, environ: Environ, token: str) -> str:
        method = environ.get("REQUEST_METHOD", "GET")
        base = environ.get("SCRIPT_NAME", "").rstrip("/")
        parts = [p for p in environ.get("PATH_INFO", "/").split("/") if p]
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        context = {"csrf": token, "base": base}
        if method == "POST":
            if len(parts) == 3 and parts[0] == "jobs" and parts[2] in ACTIONS:
                self._act(environ, token, parts[1], parts[2], base)
            raise _Response(HTTPStatus.NOT_FOUND)
        if method not in ("GET", "HEAD"):
            raise _Response(HTTPStatus.METHOD_NOT_ALLOWED, headers=[("Allow", "GET, POST")])
        if not parts:
            return self._overview(context)
        if parts == ["jobs"]:
            return self._jobs(context, query)
        if len(parts) == 2 and parts[0] == "jobs":
            return self._job(context, parts[1])
        if parts == ["workers"]:
            return self._render("workers.html", workers=self.app.list_workers(), **context)
        raise _Response(HTTPStatus.NOT_FOUND)

    def _act(self, environ: Environ, token: str, raw_id: str, action: str, base: str) -> None:
        if self.read_only:
            raise _Response(HTTPStatus.FORBIDDEN, self._message(
                HTTPStatus.FORBIDDEN, "this dashboard is read-only"))
        form = _read_form(environ)
        if not hmac.compare_digest(form.get("csrf_token", ""), token):
            raise _Response(HTTPStatus.FORBIDDEN, self._message(
                HTTPStatus.FORBIDDEN, "missing or wrong CSRF token; reload the page"))
        job_id = _job_id(raw_id)
        try:
            if action == "retry":
                self.app.requeue_job(job_id)
            elif action == "cancel":
                self.app.cancel_job(job_id)
            elif action == "abort":
                self.app.abort_job(job_id)
            else:
                self.app.delete_job(job_id)
                raise _Response(HTTPStatus.SEE_OTHER, headers=[("Location", f"{base}/jobs")])
        except JobNotFound:
            raise _Response(HTTPStatus.NOT_FOUND) from None
        raise _Response(HTTPStatus.SEE_OTHER, headers=[("Location", f"{base}/jobs/{job_id}")])

    # -- pages ---------------------------------------------------------------------------

    def _overview(self, context: dict[str, Any]) -> str:
        stats = self.app.queue_stats()
        statuses = [s.value for s in JobStatus]
        return self._render("overview.html", stats=stats, statuses=statuses,
                            workers=self.app.list_workers(), **context)

    def _jobs(self, context: dict[str, Any], query: dict[str, str]) -> str:
        status = query.get("status") or None
        if status is not None and status not in {s.value for s in JobStatus}:
            raise _Response(HTTPStatus.BAD_REQUEST, self._message(
                HTTPStatus.BAD_REQUEST, f"unknown status {status!r}"))
        try:
            page = max(1, int(query.get("page", "1")))
        except ValueError:
            page = 1
        filters = {"queue": query.get("queue") or None, "status": status,
                   "function": query.get("function") or None}
        jobs = self.app.list_jobs(**filters, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
        kept = {k: v for k, v in filters.items() if v}
        return self._render(
            "jobs.html", jobs=jobs[:PAGE_SIZE], filters=filters, page=page,
            statuses=[s.value for s in JobStatus],
            prev_query=urlencode({**kept, "page": page - 1}) if page > 1 else None,
            next_query=urlencode({**kept, "page": page + 1}) if len(jobs) > PAGE_SIZE else None,
            **context)

    def _job(self, context: dict[str, Any], raw_id: str) -> str:
        job_id = _job_id(raw_id)
        try:
            job = self.app.get_job(job_id)
            executions = self.app.get_executions(job_id)
            dependencies = self.app.get_job_dependencies(job_id)
        except JobNotFound:
            raise _Response(HTTPStatus.NOT_FOUND, self._message(
                HTTPStatus.NOT_FOUND, f"no job {job_id}")) from None
        return self._render("job.html", job=job, executions=executions,
                            dependencies=dependencies, **context)


def _job_id(raw: str) -> int:
    if not raw.isdigit():
        raise _Response(HTTPStatus.NOT_FOUND)
    return int(raw)


def _read_form(environ: Environ) -> dict[str, str]:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(min(length, 65536)) if length > 0 else b""
    return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


def serve_dashboard(app: Werk, host: str = "127.0.0.1", port: int = 8080,
                    read_only: bool = False) -> None:
    """Serve the dashboard with the standard library's WSGI server until interrupted.
    Binds to loopback by default; put a real server and authentication in front of it
    before exposing it."""
    from wsgiref.simple_server import make_server

    with make_server(host, port, Dashboard(app, read_only=read_only)) as server:
        server.serve_forever()
