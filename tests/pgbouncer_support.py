"""A real PgBouncer in transaction mode in front of the test PostgreSQL.

``run_pgbouncer(dsn)`` writes a config file and an auth file in a temporary directory,
starts ``pgbouncer`` on a free loopback port and yields the DSN that goes through it.
PgBouncer refuses to run as root: as root it is started with ``-u``, as the owner of the
server's Unix socket directory (the embedded server's socket is private to its user) or
as ``nobody`` for a TCP server.
"""

from __future__ import annotations

import getpass
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.helpers import eventually

#: Set by CI: a missing pgbouncer binary is then a failure, not a skip.
REQUIRE_ENV = "PGWERK_REQUIRE_PGBOUNCER"


def pgbouncer_binary() -> str:
    """The pgbouncer executable; skips (or fails in CI) when it is not installed."""
    found = shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer") if os.path.exists(p)),
        None)
    if found:
        return found
    message = "pgbouncer is not installed (Debian: apt-get install -y pgbouncer)"
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{message}; {REQUIRE_ENV} is set", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


@contextmanager
def run_pgbouncer(dsn: str) -> Iterator[str]:
    """Start pgbouncer (transaction pooling) in front of ``dsn``; yield its DSN."""
    binary = pgbouncer_binary()
    params = conninfo_to_dict(dsn)
    host = str(params.get("host") or "/var/run/postgresql")
    port = str(params.get("port") or "5432")
    user = str(params.get("user") or getpass.getuser())
    dbname = str(params.get("dbname") or user)
    password = str(params.get("password") or "")
    base = Path(tempfile.mkdtemp(prefix="pgwerk-bouncer-"))
    base.chmod(0o755)  # readable by the user pgbouncer runs as
    listen = free_port()
    (base / "users.txt").write_text(f"{_quote(user)} {_quote(password)}\n")
    (base / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={host} port={port}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {listen}\n"
        "unix_socket_dir =\n"
        "pool_mode = transaction\n"
        "auth_type = trust\n"
        f"auth_file = {base / 'users.txt'}\n"
        "max_client_conn = 500\n"
        "default_pool_size = 20\n"
        "server_login_retry = 1\n"
    )
    for name in ("users.txt", "pgbouncer.ini"):
        (base / name).chmod(0o644)
    command = [binary, str(base / "pgbouncer.ini")]
    if os.geteuid() == 0:
        owner = pwd.getpwuid(os.stat(host).st_uid).pw_name if host.startswith("/") else "nobody"
        command[1:1] = ["-u", owner]
    log_path = base / "pgbouncer.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    bouncer = make_conninfo(host="127.0.0.1", port=listen, dbname=dbname, user=user,
                            **({"password": password} if password else {}))

    def reachable() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"pgbouncer exited with {proc.returncode}: "
                               f"{log_path.read_text(errors='replace')}")
        try:
            with psycopg.connect(bouncer, connect_timeout=2, prepare_threshold=None) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError as exc:
            raise AssertionError(str(exc)) from exc
        return True

    try:
        eventually(reachable, timeout=15, interval=0.05, message="pgbouncer accepts connections")
        yield bouncer
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(base, ignore_errors=True)
