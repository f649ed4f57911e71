"""WerkConfig validation and DSN resolution: no database (a Werk connects lazily)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest

from pgwerk import ConfigurationError, PickleSerializer, Werk, WerkConfig, WerkError


@pytest.mark.parametrize(
    "bad", ["bad;name", "has space", "1starts_with_digit", "quote\"d", "", "x" * 64, "a-b", None])
def test_config__schema_that_is_not_a_plain_identifier_is_rejected(bad: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        WerkConfig(schema=bad)
    message = str(info.value)
    assert message.startswith("schema must be a plain identifier")
    assert repr(bad) in message


@pytest.mark.parametrize("bad", ["bad;name", "p.q", "x" * 41, "DROP TABLE x"])
def test_config__prefix_that_is_not_a_plain_identifier_is_rejected(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="prefix must be a plain identifier"):
        WerkConfig(prefix=bad)


def test_config__plain_identifiers_are_accepted() -> None:
    config = WerkConfig(schema="Jobs_2", prefix="_q")
    assert (config.schema, config.prefix) == ("Jobs_2", "_q")


def test_config__configuration_error_is_a_werk_error_and_a_value_error() -> None:
    with pytest.raises(WerkError):
        WerkConfig(schema="a;b")
    with pytest.raises(ValueError):
        WerkConfig(schema="a;b")


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"min_pool_size": 0}, "min_pool_size must be >= 1"),
        ({"max_pool_size": 0}, "max_pool_size must be >= 1"),
        ({"max_pool_size": 2.5}, "max_pool_size"),
        ({"min_pool_size": 5, "max_pool_size": 2}, r"max_pool_size \(2\) must be >= min_pool_size"),
        ({"connect_attempts": 0}, "connect_attempts"),
        ({"connect_attempts": True}, "connect_attempts"),
        ({"max_lost": -1}, "max_lost"),
        ({"result_ttl": -1}, "result_ttl"),
        ({"failure_ttl": "1d"}, "failure_ttl"),
        ({"max_active_secs": -5}, "max_active_secs"),
        ({"connect_timeout": None}, "connect_timeout"),
        ({"serializer": object()}, "serializer must have dumps"),
    ],
)
def test_config__bad_setting_is_rejected_with_its_name(options: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        WerkConfig(**options)


DURATION_SETTINGS = ["result_ttl", "failure_ttl", "max_active_secs", "connect_timeout"]


@pytest.mark.parametrize("name", DURATION_SETTINGS)
@pytest.mark.parametrize("bad", [math.inf, math.nan, 1e300, -1, timedelta(days=3653)])
def test_config__duration_out_of_range_names_setting_value_and_range(name: str,
                                                                      bad: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        WerkConfig(**{name: bad})
    assert str(info.value).startswith(f"{name} must be ")
    assert "<= 315576000 seconds (ten years)" in str(info.value)
    assert str(info.value).endswith(f"got {bad!r}")


@pytest.mark.parametrize("name", DURATION_SETTINGS)
@pytest.mark.parametrize("bad", [True, "60"])
def test_config__duration_that_is_not_a_number_is_a_configuration_error(name: str,
                                                                        bad: Any) -> None:
    with pytest.raises(ConfigurationError, match=f"^{name} must be a number of seconds"):
        WerkConfig(**{name: bad})


@pytest.mark.parametrize("name", ["max_active_secs", "connect_timeout"])
def test_config__zero_is_refused_where_it_makes_no_sense(name: str) -> None:
    with pytest.raises(ConfigurationError, match=f"^{name} must be > 0"):
        WerkConfig(**{name: 0})


def test_config__zero_ttls_mean_delete_at_once() -> None:
    assert (WerkConfig(result_ttl=0, failure_ttl=0).result_ttl, 0.0) == (0.0, 0.0)


def test_config__durations_at_the_cap_are_accepted() -> None:
    cap = timedelta(days=3652, hours=12)
    config = WerkConfig(result_ttl=cap, failure_ttl=cap, max_active_secs=cap,
                        connect_timeout=cap)
    assert {config.result_ttl, config.failure_ttl, config.max_active_secs,
            config.connect_timeout} == {315_576_000.0}


@pytest.mark.parametrize("name", ["min_pool_size", "max_pool_size", "connect_attempts",
                                  "max_lost"])
def test_config__counts_beyond_int32_are_rejected(name: str) -> None:
    with pytest.raises(ConfigurationError, match=f"^{name} must be >= [01] and <= 2147483647"):
        WerkConfig(**{name: 2**31, **({"min_pool_size": 1} if name == "max_pool_size" else {})})


def test_config__durations_accept_timedelta() -> None:
    config = WerkConfig(result_ttl=timedelta(hours=1), failure_ttl=timedelta(days=1))
    assert (config.result_ttl, config.failure_ttl) == (3600.0, 86400.0)


def test_config__ttls_may_be_none_for_forever() -> None:
    config = WerkConfig(result_ttl=None, failure_ttl=None, max_active_secs=None)
    assert config.result_ttl is None


def test_config__merged_overrides_and_rejects_unknown_names() -> None:
    base = WerkConfig(schema="a")
    assert base.merged(prefix="p").schema == "a"
    assert base.merged(prefix="p").prefix == "p"
    with pytest.raises(TypeError) as info:
        base.merged(schemaa="b")
    assert "schemaa" in str(info.value) and "schema" in str(info.value)


def test_config__merged_validates_again() -> None:
    with pytest.raises(ConfigurationError):
        WerkConfig().merged(schema="x;y")


# -- the app object, without connecting ------------------------------------------------------


def test_werk__keyword_options_win_over_config() -> None:
    app = Werk("postgresql://localhost/x", config=WerkConfig(schema="a", prefix="p"), schema="b")
    assert (app.config.schema, app.config.prefix) == ("b", "p")


def test_werk__config_must_be_a_werk_config() -> None:
    with pytest.raises(ConfigurationError, match="config must be a WerkConfig"):
        Werk("postgresql://localhost/x", config={"schema": "a"})  # type: ignore[arg-type]


def test_werk__unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="unknown Werk option"):
        Werk("postgresql://localhost/x", shema="a")


def test_werk__bad_schema_is_rejected_before_any_connection() -> None:
    with pytest.raises(ConfigurationError, match="schema"):
        Werk("postgresql://localhost/x", schema="bad;name")


def test_werk__serializer_option_is_used() -> None:
    serializer = PickleSerializer()
    assert Werk("postgresql://localhost/x", serializer=serializer).serializer is serializer


def test_werk__channel_is_per_schema_and_prefix() -> None:
    a = Werk("postgresql://localhost/x", schema="s1")
    b = Werk("postgresql://localhost/x", schema="s2")
    c = Werk("postgresql://localhost/x", schema="s1", prefix="other")
    assert len({a._store.channel, b._store.channel, c._store.channel}) == 3
    assert all(len(x._store.channel) <= 63 for x in (a, b, c))


# -- DSN resolution ----------------------------------------------------------------------------


@pytest.fixture
def no_dsn_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("PGWERK_DSN", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return monkeypatch


def test_dsn__argument_wins_over_environment(no_dsn_env: pytest.MonkeyPatch) -> None:
    no_dsn_env.setenv("PGWERK_DSN", "postgresql://env/pgwerk")
    assert Werk("postgresql://arg/db").dsn == "postgresql://arg/db"


def test_dsn__pgwerk_dsn_from_environment(no_dsn_env: pytest.MonkeyPatch) -> None:
    no_dsn_env.setenv("PGWERK_DSN", "postgresql://env/pgwerk")
    assert Werk().dsn == "postgresql://env/pgwerk"


def test_dsn__pgwerk_dsn_wins_over_database_url(no_dsn_env: pytest.MonkeyPatch) -> None:
    no_dsn_env.setenv("PGWERK_DSN", "postgresql://env/pgwerk")
    no_dsn_env.setenv("DATABASE_URL", "postgresql://env/app")
    assert Werk().dsn == "postgresql://env/pgwerk"


def test_dsn__database_url_is_the_fallback(no_dsn_env: pytest.MonkeyPatch) -> None:
    no_dsn_env.setenv("DATABASE_URL", "postgresql://env/app")
    assert Werk().dsn == "postgresql://env/app"


def test_dsn__missing_everywhere_is_an_error_naming_pgwerk_dsn(
    no_dsn_env: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigurationError, match="PGWERK_DSN"):
        Werk()


def test_dsn__empty_environment_value_counts_as_missing(no_dsn_env: pytest.MonkeyPatch) -> None:
    no_dsn_env.setenv("PGWERK_DSN", "")
    with pytest.raises(ConfigurationError, match="PGWERK_DSN"):
        Werk()
