"""A web dashboard as a plain WSGI application (the ``web`` extra: Jinja2).

Mount it inside an existing WSGI app, or serve it on loopback with ``serve_dashboard`` /
``pgwerk dashboard``. Every value is HTML-escaped; actions (retry, cancel, abort, delete)
are POST requests carrying a CSRF token and can be switched off with ``read_only=True``.
"""

from pgwerk.dashboard.app import Dashboard, serve_dashboard

__all__ = ["Dashboard", "serve_dashboard"]
