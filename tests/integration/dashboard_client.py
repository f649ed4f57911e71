"""A tiny browser for the dashboard's WSGI app: keeps cookies, reads CSRF tokens."""

from __future__ import annotations

import base64
import io
import re
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode
from wsgiref.util import setup_testing_defaults


class Reply:
    def __init__(self, status: int, headers: list[tuple[str, str]], text: str) -> None:
        self.status, self.header_list, self.text = status, headers, text
        self.headers = dict(headers)

    def cookies_set(self) -> list[str]:
        return [v for k, v in self.header_list if k == "Set-Cookie"]


class Client:
    """Just enough of a browser: a cookie jar, HTTPS or not, optional basic auth."""

    def __init__(self, app: Any, *, https: bool = False,
                 auth: tuple[str, str] | None = None) -> None:
        self.app = app
        self.https = https
        self.auth = auth
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                extra: dict[str, str] | None = None) -> Reply:
        path, _, query_string = path.partition("?")
        body = urlencode(form or {}).encode()
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query_string,
            "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
            "CONTENT_TYPE": "application/x-www-form-urlencoded",
            "HTTP_COOKIE": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
            "wsgi.url_scheme": "https" if self.https else "http",
        }
        if self.auth:
            token = base64.b64encode(":".join(self.auth).encode()).decode()
            environ["HTTP_AUTHORIZATION"] = f"Basic {token}"
        environ.update(extra or {})
        setup_testing_defaults(environ)
        seen: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]]) -> None:
            seen["status"], seen["headers"] = int(status.split()[0]), headers

        text = b"".join(self.app(environ, start_response)).decode()
        reply = Reply(seen["status"], seen["headers"], text)
        for header in reply.cookies_set():
            jar: SimpleCookie = SimpleCookie(header)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return reply

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def post(self, path: str, form: dict[str, str] | None = None) -> Reply:
        return self.request("POST", path, form)

    def csrf(self, page: str) -> str:
        found = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert found, "no CSRF token on the page"
        return found.group(1)

    def submit(self, page_path: str, action: str, fields: dict[str, str] | None = None) -> Reply:
        """Open a page, then post to ``action`` with the CSRF token the server issued
        (the one in the page's forms, which is the cookie's)."""
        self.get(page_path)
        token = self.cookies.get("__Host-pgwerk_csrf" if self.https else "pgwerk_csrf", "")
        return self.post(action, {"csrf_token": token, **(fields or {})})

    def follow(self, reply: Reply) -> Reply:
        assert reply.status == 303, (reply.status, reply.text[:500])
        return self.get(reply.headers["Location"])
