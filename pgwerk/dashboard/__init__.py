"""A web dashboard as a plain WSGI application (the ``web`` extra: Jinja2).

Mount it inside an existing WSGI app (behind that app's login), or serve it with
``serve_dashboard`` / ``pgwerk dashboard`` (loopback by default; another address needs
credentials). Every value is HTML-escaped and payloads are decoded as JSON only (never
unpickled); actions (retry, cancel, abort, delete, bulk actions, cron pause/resume/run)
are POST requests carrying a signed CSRF token and can be switched off with
``read_only=True``.
"""

from pgwerk.dashboard.app import Dashboard, serve_dashboard

__all__ = ["Dashboard", "serve_dashboard"]
