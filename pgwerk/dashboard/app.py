"""The dashboard's WSGI application: authentication, routing, security headers, and the
friendly pages for a database that is down or not migrated."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Iterable
from http import HTTPStatus
from importlib import resources
from typing import Any

import psycopg

from pgwerk._validate import is_int
from pgwerk.app import Werk
from pgwerk.dashboard import _auth, views
from pgwerk.dashboard._csrf import Signer
from pgwerk.dashboard._http import Environ, Request, Response, redirect
from pgwerk.exceptions import DatabaseUnavailable, SchemaError

logger = logging.getLogger(__name__)

StartResponse = Callable[..., Any]

CSRF_COOKIE = "pgwerk_csrf"
FLASH_COOKIE = "pgwerk_flash"
SECRET_ENV = "PGWERK_DASHBOARD_SECRET"
JOB_ACTIONS = ("retry", "cancel", "abort", "delete")
CRON_ACTIONS = ("pause", "resume", "run")
STATIC = {"pgwerk.css": "text/css; charset=utf-8",
          "pgwerk.js": "text/javascript; charset=utf-8",
          "favicon.svg": "image/svg+xml"}
SECURITY_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
    ("Content-Security-Policy",
     "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
     "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
]


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
    from pgwerk.dashboard import _format  # needs markupsafe, which comes with Jinja2

    _format.register(env)
    return env


def _secret(secret: str | bytes | None) -> bytes:
    if secret is None:
        secret = os.environ.get(SECRET_ENV) or None
    if secret is None:
        return secrets.token_bytes(32)
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if not isinstance(secret, bytes):
        raise TypeError(f"secret must be str or bytes, got {type(secret).__name__}")
    return secret


class Dashboard:
    """WSGI application showing queues, jobs, workers and schedules of one ``Werk``.

    Args:
        app: the ``Werk`` to show.
        read_only: hide and refuse every action.
        title: shown in the page header and titles.
        auth: ``"user:password"`` or ``(user, password)`` to require HTTP Basic
            authentication; leave it None when the host app's own login protects the mount.
        secret: signs the CSRF token and flash messages (at least 16 bytes). Default:
            ``$PGWERK_DASHBOARD_SECRET``, else a random secret for this process — set one
            when several processes serve the dashboard behind one address.
        refresh: seconds between automatic refreshes of live pages (0: never).

    Example (Flask)::

        from werkzeug.middleware.dispatcher import DispatcherMiddleware
        flask_app.wsgi_app = DispatcherMiddleware(flask_app.wsgi_app,
                                                  {"/pgwerk": Dashboard(app)})
    """

    def __init__(self, app: Werk, *, read_only: bool = False, title: str = "pgwerk",
                 auth: str | tuple[str, str] | None = None, secret: str | bytes | None = None,
                 refresh: int = 5) -> None:
        if not isinstance(app, Werk):
            raise TypeError(f"Dashboard needs a Werk app, got {type(app).__name__}")
        if not is_int(refresh) or refresh < 0:
            raise ValueError(f"refresh must be an int >= 0 (seconds), got {refresh!r}")
        self.app = app
        self.read_only = bool(read_only)
        self.title = title
        self.auth = _auth.parse_credentials(auth)
        self.signer = Signer(_secret(secret))
        self.refresh = refresh
        self.templates = _environment()

    # -- WSGI -------------------------------------------------------------------------------

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        req = Request.of(environ)
        headers: list[tuple[str, str]] = []
        try:
            self._authenticate(req)
            req.csrf = self._csrf_token(req, headers)
            response = self._route(req)
        except Response as raised:
            response = raised
        except (DatabaseUnavailable, psycopg.OperationalError) as exc:
            logger.warning("dashboard: database unreachable: %s", exc)
            response = Response(HTTPStatus.SERVICE_UNAVAILABLE, self._trouble(
                req, "Database unreachable",
                "The dashboard cannot reach PostgreSQL. It retries on every page load; "
                "this page refreshes itself.", detail=str(exc).strip()))
        except (SchemaError, psycopg.errors.UndefinedTable) as exc:
            response = Response(HTTPStatus.SERVICE_UNAVAILABLE, self._trouble(
                req, "Tables missing",
                "The pgwerk tables are missing or older than this version. "
                "Run `pgwerk migrate` (or `pgwerk migrate --sql` for the DDL to give your "
                "DBA), then reload.", detail=str(exc).strip().splitlines()[0]))
        headers = [("Content-Type", response.content_type), *SECURITY_HEADERS,
                   *headers, *response.headers]
        start_response(f"{response.status.value} {response.status.phrase}", headers)
        body = response.body
        if req.method == "HEAD":
            return [b""]
        return [body.encode("utf-8") if isinstance(body, str) else body]

    # -- plumbing ---------------------------------------------------------------------------

    def _authenticate(self, req: Request) -> None:
        if self.auth is None:
            return
        if not _auth.authorized(req.environ.get("HTTP_AUTHORIZATION", ""), self.auth):
            raise Response(HTTPStatus.UNAUTHORIZED, "Authentication required.",
                           [("WWW-Authenticate", 'Basic realm="pgwerk", charset="UTF-8"')],
                           content_type="text/plain; charset=utf-8")

    def _csrf_token(self, req: Request, headers: list[tuple[str, str]]) -> str:
        token = req.cookies.get(CSRF_COOKIE)
        if token and self.signer.unsign("csrf", token) is not None:
            return token
        token = self.signer.new_csrf_token()
        headers.append(("Set-Cookie", req.cookies.set(CSRF_COOKIE, token)))
        return token

    def render(self, template: str, req: Request, **context: Any) -> str:
        flash = None
        signed = req.cookies.get(FLASH_COOKIE)
        if signed:
            text = self.signer.read_flash(signed)
            if text:
                kind, _, flash_text = text.partition(":")
                flash = {"kind": kind, "text": flash_text}
        context.setdefault("refresh", False)
        html = str(self.templates.get_template(template).render(
            title=self.title, read_only=self.read_only, base=req.base, csrf=req.csrf,
            flash=flash, refresh_seconds=self.refresh if context["refresh"] else 0,
            path=req.environ.get("PATH_INFO", "/"), **context))
        if signed:  # shown once: clear it
            req.environ["pgwerk.clear_flash"] = True
        return html

    def flash_redirect(self, req: Request, location: str, text: str,
                       kind: str = "ok") -> Response:
        """A redirect that shows ``text`` once on the next page."""
        response = redirect(location)
        signed = self.signer.flash(f"{kind}:{text}")
        response.headers.append(("Set-Cookie", req.cookies.set(FLASH_COOKIE, signed)))
        return response

    def message_page(self, req: Request, status: HTTPStatus, detail: str = "") -> str:
        return self.render("message.html", req, page_title=f"{status.value} {status.phrase}",
                           heading=f"{status.value} {status.phrase}", text=detail, detail="")

    def _trouble(self, req: Request, heading: str, text: str, detail: str) -> str:
        return self.render("message.html", req, page_title=heading, heading=heading,
                           text=text, detail=detail, refresh=True)

    def require_writable(self, req: Request) -> None:
        if self.read_only:
            raise Response(HTTPStatus.FORBIDDEN, self.message_page(
                req, HTTPStatus.FORBIDDEN, "This dashboard is read-only."))

    # -- routing ----------------------------------------------------------------------------

    def _route(self, req: Request) -> Response:
        response = self._dispatch(req)
        if req.environ.get("pgwerk.clear_flash"):
            response.headers.append(("Set-Cookie", req.cookies.set(FLASH_COOKIE, "",
                                                                   max_age=0)))
        return response

    def _dispatch(self, req: Request) -> Response:
        parts, method = req.parts, req.method
        if method == "POST":
            self.require_writable(req)
            if not self.signer.valid_csrf(req.cookies.get(CSRF_COOKIE),
                                          req.form.get("csrf_token")):
                raise Response(HTTPStatus.FORBIDDEN, self.message_page(
                    req, HTTPStatus.FORBIDDEN, "Missing or wrong CSRF token; reload the page and "
                    "try again."))
            if len(parts) == 3 and parts[0] == "jobs" and parts[2] in JOB_ACTIONS:
                return views.job_act(self, req, parts[1], parts[2])
            if len(parts) == 3 and parts[0] == "cron" and parts[2] in CRON_ACTIONS:
                return views.cron_act(self, req, parts[1], parts[2])
            if parts == ["bulk"]:
                return views.bulk_act(self, req)
            raise Response(HTTPStatus.NOT_FOUND, self.message_page(req, HTTPStatus.NOT_FOUND))
        if method not in ("GET", "HEAD"):
            raise Response(HTTPStatus.METHOD_NOT_ALLOWED, headers=[("Allow", "GET, HEAD, POST")])
        if len(parts) == 2 and parts[0] == "static":
            return _static(parts[1])
        pages: dict[tuple[str, ...], Callable[[], str]] = {
            (): lambda: views.overview(self, req),
            ("jobs",): lambda: views.jobs(self, req),
            ("workers",): lambda: views.workers(self, req),
            ("cron",): lambda: views.cron(self, req),
            ("batches",): lambda: views.batches(self, req),
            ("bulk",): lambda: views.bulk_confirm(self, req),
        }
        page = pages.get(tuple(parts))
        if page is None and len(parts) == 2 and parts[0] == "jobs":
            return Response(body=views.job(self, req, parts[1]))
        if page is None and len(parts) == 2 and parts[0] == "batches":
            return Response(body=views.batch(self, req, parts[1]))
        if page is None and len(parts) == 3 and parts[0] == "jobs" and parts[2] == "delete":
            return Response(body=views.confirm_delete(self, req, parts[1]))
        if page is None:
            raise Response(HTTPStatus.NOT_FOUND, self.message_page(
                req, HTTPStatus.NOT_FOUND, "There is no such page."))
        return Response(body=page())


def _static(name: str) -> Response:
    if name not in STATIC:
        raise Response(HTTPStatus.NOT_FOUND, "not found", content_type="text/plain")
    data = resources.files("pgwerk.dashboard").joinpath("static").joinpath(name).read_bytes()
    return Response(body=data, content_type=STATIC[name])


def serve_dashboard(app: Werk, host: str = "127.0.0.1", port: int = 8080,
                    read_only: bool = False, auth: str | tuple[str, str] | None = None,
                    secret: str | bytes | None = None) -> None:
    """Serve the dashboard with the standard library's WSGI server until interrupted.
    Binds to loopback by default; ``pgwerk dashboard`` refuses any other address unless
    it has credentials (``auth``) or is told ``--insecure``."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            logger.info("%s - %s", self.address_string(), format % args)

    dashboard = Dashboard(app, read_only=read_only, auth=auth, secret=secret)
    with make_server(host, port, dashboard, server_class=Server,
                     handler_class=Quiet) as server:
        server.serve_forever()
