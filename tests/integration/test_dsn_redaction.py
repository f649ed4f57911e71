"""No DSN secret (password, sslpassword, anything secret-like) reaches an exception or a
log line, and a DSN libpq could never use is a ``ConfigurationError`` at once, not an
outage retried for seconds."""

from __future__ import annotations

import logging
import time
import traceback

import pytest
from click.testing import CliRunner
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgwerk import ConfigurationError, DatabaseUnavailable, Werk, WerkError
from pgwerk.cli import cli
from pgwerk.store.connections import redact, redact_dsn

SECRET = "Sup3rS3cret"
SSL_SECRET = "Ke7Phrase"


def assert_no_secret(text: str) -> None:
    assert SECRET not in text and SSL_SECRET not in text, text


@pytest.mark.parametrize("dsn", [
    f"host=127.0.0.1 password={SECRET} dbname",  # libpq: missing "=" after "dbname"
    f"host=127.0.0.1 password='{SECRET}",  # unterminated quote
    f"postgresql://u:{SECRET}@[::1:5432/test",  # libpq echoes the whole URI
    f"postgresql://u:{SECRET}@127.0.0.1/test?bogus=1&sslpassword={SSL_SECRET}",
    f"host=127.0.0.1 password={SECRET} api_token={SSL_SECRET}",  # unknown option
    f"host=127.0.0.1 password={SECRET} sslmode=bogus",
    f"postgresql://u:{SECRET}@127.0.0.1/test?target_session_attrs=bogus",
    f"host=127.0.0.1 port=99999 password={SECRET} sslpassword={SSL_SECRET}",
])
def test_werk__an_unusable_dsn_is_a_configuration_error_at_once_without_secrets(
        dsn: str) -> None:
    started = time.monotonic()
    with pytest.raises(ConfigurationError) as info:
        Werk(dsn, connect_attempts=5)
    assert time.monotonic() - started < 1.0
    assert isinstance(info.value, WerkError)
    assert "DSN" in str(info.value)
    assert_no_secret(str(info.value))
    # Nor in the traceback a user or a log handler prints (no chained libpq error).
    assert_no_secret("".join(traceback.format_exception(info.value)))


def test_werk__a_bad_sslmode_names_the_option_and_what_is_allowed() -> None:
    with pytest.raises(ConfigurationError, match=r"sslmode='bogus'.*allowed: disable, allow"):
        Werk(f"postgresql://u:{SECRET}@127.0.0.1/test?sslmode=bogus")


def test_unreachable_server__error_and_logs_carry_no_secret(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    dsn = f"postgresql://postgres:{SECRET}@127.0.0.1:1/test?sslpassword={SSL_SECRET}"
    app = Werk(dsn, connect_attempts=2, connect_timeout=2)
    with pytest.raises(DatabaseUnavailable) as info:
        app.enqueue("tests.jobs.noop")
    app.close()
    assert "127.0.0.1" in str(info.value)
    assert_no_secret("".join(traceback.format_exception(info.value)))
    assert_no_secret(caplog.text)


def test_redact__masks_secrets_in_any_message() -> None:
    dsn = f"host=db password={SECRET} sslpassword='{SSL_SECRET}'"
    message = (f'invalid dsn: "postgresql://me:{SECRET}@db/x?sslpassword={SSL_SECRET}" '
               f"and password = {SECRET} and {SSL_SECRET} alone")
    assert_no_secret(redact(message, dsn))
    assert "postgresql://me:***@db" in redact(message, dsn)
    assert redact_dsn(dsn) == "host=db"


def test_redact_dsn__keeps_what_is_not_secret(pg_dsn: str) -> None:
    params = conninfo_to_dict(pg_dsn)
    secret_dsn = make_conninfo(pg_dsn, password=SECRET, sslpassword=SSL_SECRET)
    shown = conninfo_to_dict(redact_dsn(secret_dsn))
    assert_no_secret(redact_dsn(secret_dsn))
    assert {k: v for k, v in shown.items()} == {
        k: v for k, v in params.items() if k != "password"}


def test_cli_info__shows_the_database_without_secrets(app: Werk) -> None:
    dsn = make_conninfo(app.dsn, password=SECRET, sslpassword=SSL_SECRET)
    result = CliRunner().invoke(cli, ["info", "--dsn", dsn, "--schema", app.config.schema])
    assert result.exit_code == 0, result.output
    assert_no_secret(result.output)
    result = CliRunner().invoke(cli, ["info", "--dsn", f"{dsn} sslmode=bogus"])
    assert result.exit_code != 0
    assert "sslmode" in result.output
    assert_no_secret(result.output)
