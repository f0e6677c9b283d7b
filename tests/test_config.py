"""Settings: read once, checked, and never a password in what is shown of them."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from usersvc.config import DEFAULTS, SettingError, Settings, mask_password
from usersvc.db import pool


@given(password=st.text(), user=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1))
def test_a_masked_url_never_shows_any_of_the_password(password: str, user: str):
    url = f"postgresql://{user}:{password}@db.example:5432/users"
    assert mask_password(url) == f"postgresql://{user}:***@db.example:5432/users"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://bob@db/users", "postgresql://bob@db/users"),
        ("postgresql://db/users", "postgresql://db/users"),
        ("bob:secret@db/users", "bob:***@db/users"),
        ("amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:***@127.0.0.1:5672/"),
    ],
)
def test_a_url_without_a_password_is_shown_as_it_is_and_one_with_it_masked(url: str, shown: str):
    assert mask_password(url) == shown


def test_the_defaults_are_valid_settings():
    settings = Settings.from_env({})
    assert settings.database_url is None
    assert settings.port == int(DEFAULTS["USERSVC_PORT"])
    assert settings.log_level == "INFO"
    assert settings.drain_seconds == 0  # `usersvc serve` stops at once; the image sets 5
    assert settings.relay_port == int(DEFAULTS["USERSVC_RELAY_PORT"]) == 8001


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("USERSVC_PORT", "0"),
        ("USERSVC_PORT", "-1"),
        ("USERSVC_PORT", "80.5"),
        ("USERSVC_DATABASE_URL", "postgresql://"),
        ("USERSVC_DATABASE_URL", "postgresql://db:0/users"),
        ("USERSVC_MIGRATE_DATABASE_URL", "mysql://owner:secret@db/users"),
        ("USERSVC_MIGRATE_DATABASE_URL", "postgresql://"),
        ("USERSVC_DATABASE_WAIT", "-3"),
        ("USERSVC_DATABASE_WAIT", "nan"),
        ("USERSVC_AMQP_URL", "amqp://guest:guest@host:port/"),
        ("USERSVC_HOST", " "),
        ("USERSVC_AMQP_QUEUE", ""),
        ("USERSVC_DRAIN_SECONDS", "-1"),
        ("USERSVC_DRAIN_SECONDS", "inf"),
        ("USERSVC_DRAIN_SECONDS", "soon"),
        ("USERSVC_RELAY_PORT", "0"),
        ("USERSVC_RELAY_PORT", "70000"),
        ("USERSVC_DATABASE_STATEMENT_CACHE", "-1"),
        ("USERSVC_DATABASE_STATEMENT_CACHE", "off"),
        ("USERSVC_RELAY_DATABASE_URL", "mysql://db/users"),
        ("USERSVC_RELAY", "no"),
    ],
)
def test_a_setting_that_cannot_work_is_refused_by_name(name: str, value: str):
    with pytest.raises(SettingError) as refused:
        Settings.from_env({name: value})
    assert refused.value.name == name
    assert str(refused.value).startswith(f"{name}: ")


def test_without_a_migration_url_the_one_url_migrates_too():
    assert Settings.from_env({}).migrate_database_url is None
    given = Settings.from_env({"USERSVC_MIGRATE_DATABASE_URL": " postgresql://owner@db/users "})
    assert given.migrate_database_url == "postgresql://owner@db/users"


def test_the_statement_cache_is_asyncpgs_unless_set_and_zero_turns_it_off():
    assert Settings.from_env({}).database_statement_cache == pool.STATEMENT_CACHE == 100
    assert (
        Settings.from_env({"USERSVC_DATABASE_STATEMENT_CACHE": "0"}).database_statement_cache == 0
    )


def test_the_relay_database_url_falls_back_to_none_and_needs_the_database_url():
    direct = "postgresql://usersvc:secret@db:5432/users"
    pooled = "postgresql://usersvc:secret@pgbouncer:6432/users"
    assert Settings.from_env({"USERSVC_DATABASE_URL": pooled}).relay_database_url is None
    settings = Settings.from_env(
        {"USERSVC_DATABASE_URL": pooled, "USERSVC_RELAY_DATABASE_URL": direct}
    )
    assert (settings.database_url, settings.relay_database_url) == (pooled, direct)
    with pytest.raises(SettingError) as refused:
        Settings.from_env({"USERSVC_RELAY_DATABASE_URL": direct})
    assert str(refused.value) == ("USERSVC_RELAY_DATABASE_URL: needs USERSVC_DATABASE_URL too")


def test_a_bad_relay_database_url_is_refused_without_its_password():
    with pytest.raises(SettingError) as refused:
        Settings.from_env(
            {
                "USERSVC_DATABASE_URL": "postgresql://db/users",
                "USERSVC_RELAY_DATABASE_URL": "postgresql://u:hunter2@db:99999/users",
            }
        )
    assert "hunter2" not in str(refused.value)
    assert refused.value.name == "USERSVC_RELAY_DATABASE_URL"


def test_the_relay_is_on_unless_turned_off():
    assert Settings.from_env({}).relay is True
    assert Settings.from_env({"USERSVC_RELAY": "OFF"}).relay is False
