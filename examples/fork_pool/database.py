"""Where the example's PostgreSQL is: ``$PGWERK_DSN`` when set, otherwise a throwaway
server from the ``embedded`` extra (pgserver) in a temporary directory, so the example runs
on a machine with nothing but Python."""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def database_url() -> Iterator[str]:
    """Yield a DSN; an embedded server started here is stopped and deleted afterwards."""
    dsn = os.environ.get("PGWERK_DSN")
    if dsn:
        yield dsn
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError:
        sys.exit("Set PGWERK_DSN=postgresql://user@host/db, or install an embedded "
                 "PostgreSQL with: pip install 'pgwerk[binary,embedded]'")
    with tempfile.TemporaryDirectory(prefix="pgwerk-example-") as base:
        print("PGWERK_DSN is not set: starting an embedded PostgreSQL…", file=sys.stderr)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = pgserver.get_server(os.path.join(base, "pgdata"), cleanup_mode="delete")
        try:
            yield server.get_uri()
        finally:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                server.cleanup()
