"""HTTP Basic authentication for a dashboard served on its own (``pgwerk dashboard
--auth user:password``). Behind a host app's own login, leave it off."""

from __future__ import annotations

import base64
import binascii
import hmac


def parse_credentials(value: str | tuple[str, str] | None) -> tuple[str, str] | None:
    """``"user:password"`` or ``(user, password)`` checked; None stays None."""
    if value is None:
        return None
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value):
        user, password = value
    elif isinstance(value, str) and ":" in value:
        user, _, password = value.partition(":")
    else:
        raise ValueError("auth must be 'user:password' or a (user, password) tuple")
    if not user or not password:
        raise ValueError("auth needs both a user name and a password ('user:password')")
    return user, password


def authorized(header: str, credentials: tuple[str, str]) -> bool:
    """Whether an ``Authorization`` header carries these credentials (constant time)."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    user, _, password = given.partition(":")
    # Both compared, always, so timing says nothing about which part was wrong.
    good_user = hmac.compare_digest(user.encode(), credentials[0].encode())
    good_password = hmac.compare_digest(password.encode(), credentials[1].encode())
    return good_user and good_password


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the dashboard on this machine."""
    import ipaddress

    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything
