"""The small amount of HTTP the dashboard needs: a request, a response, form reading."""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, quote

from pgwerk.dashboard._csrf import Cookies

Environ = dict[str, Any]
MAX_FORM_BYTES = 65536


@dataclass
class Request:
    environ: Environ
    method: str
    base: str  # where the dashboard is mounted ("" or "/pgwerk")
    parts: list[str]
    query: dict[str, str]
    cookies: Cookies
    csrf: str = ""
    _form: dict[str, str] | None = None

    @classmethod
    def of(cls, environ: Environ) -> Request:
        # WSGI hands the path over as latin-1 decoded bytes; names may be UTF-8.
        path = (environ.get("PATH_INFO", "/") or "/").encode("latin-1", "replace").decode(
            "utf-8", "replace")
        return cls(
            environ=environ,
            method=environ.get("REQUEST_METHOD", "GET").upper(),
            base=environ.get("SCRIPT_NAME", "").rstrip("/"),
            parts=[p for p in path.split("/") if p],
            query={k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()},
            cookies=Cookies(environ.get("HTTP_COOKIE", ""),
                            https=environ.get("wsgi.url_scheme") == "https"),
        )

    @property
    def form(self) -> dict[str, str]:
        if self._form is None:
            try:
                length = int(self.environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            body = (self.environ["wsgi.input"].read(min(length, MAX_FORM_BYTES))
                    if length > 0 else b"")
            self._form = {k: v[-1] for k, v in
                          parse_qs(body.decode("utf-8", "replace")).items()}
        return self._form

    def url(self, *segments: str | int) -> str:
        """A path under the dashboard's mount point, each segment quoted."""
        return self.base + "/" + "/".join(quote(str(s), safe="") for s in segments)


@dataclass
class Response(Exception):
    """A finished response; raised to leave a page early (redirects, errors)."""

    status: HTTPStatus = HTTPStatus.OK
    body: str | bytes = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "text/html; charset=utf-8"


def redirect(location: str) -> Response:
    return Response(HTTPStatus.SEE_OTHER, headers=[("Location", location)])
