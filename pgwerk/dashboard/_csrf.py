"""Signed values for the dashboard: the CSRF token and the flash message.

Both travel in cookies, so both are signed with a server secret (HMAC-SHA256): a cookie
someone else planted (a sibling subdomain can set cookies) together with a form field of
the same value is refused unless the server signed it. The CSRF token is a random nonce
and its signature; a form must send back the token of its cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from http.cookies import SimpleCookie


class Signer:
    """Signs and checks short texts with one secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the dashboard secret must be at least 16 bytes long")
        self._secret = secret

    def _mac(self, purpose: str, value: str) -> str:
        digest = hmac.new(self._secret, f"{purpose}\0{value}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")

    def sign(self, purpose: str, value: str) -> str:
        """``value.signature``; ``value`` must not contain a dot."""
        return f"{value}.{self._mac(purpose, value)}"

    def unsign(self, purpose: str, signed: str) -> str | None:
        """The value if ``signed`` carries this server's signature for ``purpose``."""
        value, dot, mac = signed.rpartition(".")
        if not dot or not hmac.compare_digest(mac, self._mac(purpose, value)):
            return None
        return value

    def new_csrf_token(self) -> str:
        return self.sign("csrf", secrets.token_urlsafe(24))

    def valid_csrf(self, cookie_token: str | None, form_token: str | None) -> bool:
        """The form's token is the cookie's, and the server signed it."""
        if not cookie_token or not form_token:
            return False
        return (hmac.compare_digest(cookie_token, form_token)
                and self.unsign("csrf", cookie_token) is not None)

    def flash(self, message: str) -> str:
        encoded = base64.urlsafe_b64encode(message.encode("utf-8")).decode("ascii").rstrip("=")
        return self.sign("flash", encoded)

    def read_flash(self, signed: str) -> str | None:
        encoded = self.unsign("flash", signed)
        if encoded is None:
            return None
        try:
            return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None


class Cookies:
    """The dashboard's cookies for one request: ``__Host-`` prefixed and ``Secure`` over
    HTTPS (the prefix makes browsers refuse them from subdomains or other paths), plain
    names over HTTP (browsers drop ``__Host-`` cookies that are not ``Secure``)."""

    def __init__(self, header: str, https: bool) -> None:
        self.https = https
        self.prefix = "__Host-" if https else ""
        self._jar = SimpleCookie()
        try:
            self._jar.load(header)
        except Exception:  # a malformed Cookie header is the client's problem, not a 500
            self._jar = SimpleCookie()

    def get(self, name: str) -> str | None:
        morsel = self._jar.get(self.prefix + name)
        return morsel.value if morsel is not None else None

    def set(self, name: str, value: str, max_age: int | None = None) -> str:
        """A ``Set-Cookie`` header value."""
        parts = [f"{self.prefix}{name}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
        if self.https:
            parts.append("Secure")
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        return "; ".join(parts)
