"""The pgwerk dashboard (a WSGI application) served from a Django view, for staff only.

    # urls.py
    urlpatterns = [..., path("jobs/", include("pgwerk.contrib.django.urls"))]

or, for other options, ``re_path(r"^jobs/(?P<path>.*)$", dashboard_view(read_only=True))``.
The page needs the ``web`` extra (Jinja2).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from pgwerk.app import Werk

View = Callable[..., HttpResponse]


def dashboard_view(*, werk: Werk | None = None, read_only: bool = False,
                   title: str = "pgwerk", require: Callable[[View], View] | None = None) -> View:
    """A Django view serving ``pgwerk.dashboard.Dashboard``.

    Args:
        werk: the ``Werk`` to show; default the project's (``get_werk()``).
        read_only: hide and refuse retry, cancel, abort and delete.
        title: shown in the page header.
        require: the access check wrapped around the view; default
            ``staff_member_required`` (others are redirected to the admin's login page).

    The URL pattern must capture the rest of the path as ``path``.
    """
    dashboards: list[Any] = []

    def dashboard() -> Any:
        if not dashboards:  # built on first request: it needs Jinja2 and the settings
            from pgwerk.contrib.django import get_werk
            from pgwerk.dashboard import Dashboard

            dashboards.append(Dashboard(werk or get_werk(), read_only=read_only, title=title))
        return dashboards[0]

    # The dashboard checks its own CSRF token (a cookie and a form field, compared in
    # constant time); Django's middleware would reject its forms, which carry no Django token.
    @csrf_exempt
    def view(request: HttpRequest, path: str = "") -> HttpResponse:
        return call_wsgi(dashboard(), request, path)

    return (require or staff_member_required)(view)


def call_wsgi(wsgi_app: Callable[..., Any], request: HttpRequest, path: str) -> HttpResponse:
    """Run a WSGI application for ``request``, mounted where the URL pattern matched:
    ``SCRIPT_NAME`` is the URL up to ``path``, ``PATH_INFO`` is ``path``."""
    full = request.path
    mount = full[: len(full) - len(path)] if path and full.endswith(path) else full
    body = request.body
    environ = dict(request.META)
    environ.update({
        "SCRIPT_NAME": mount.rstrip("/"),
        "PATH_INFO": "/" + path.lstrip("/"),
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
    })
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        seen["status"], seen["headers"] = status, headers
        return lambda data: None

    chunks = wsgi_app(environ, start_response)
    try:
        content = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    response = HttpResponse(content, status=int(seen["status"].split()[0]))
    for name, value in seen["headers"]:
        if name.lower() == "set-cookie":
            response.cookies.load(value)
        else:
            response[name] = value
    return response


#: The default view: the project's Werk, actions allowed, staff only.
default_dashboard_view = dashboard_view()
