"""Settings resolution (default < environment < command line) and the parsing of typed values."""

from __future__ import annotations

import datetime as dt

import pytest

from stockstream_cli.errors import InputError
from stockstream_cli.options import flag
from stockstream_cli.settings import MARKIT_URL, Settings, env_name
from stockstream_cli.values import check_symbol, parse_date, parse_symbols


def test_defaults_when_nothing_is_set():
    settings = Settings.resolve({})
    assert settings.store == "./stockstream-data"
    assert (settings.batch_size, settings.concurrency, settings.retries) == (100, 10, 3)
    assert (settings.delay, settings.retry_wait, settings.lookback_days) == (2.0, 2.0, 5)
    assert settings.source_url == MARKIT_URL
    assert settings.rate is None


def test_environment_beats_default_and_command_line_beats_environment():
    environ = {"STOCKSTREAM_DELAY": "0.5", "STOCKSTREAM_CONCURRENCY": "4", "STOCKSTREAM_STORE": "s3://b/p"}
    settings = Settings.resolve(environ, concurrency=7)
    assert settings.delay == 0.5
    assert settings.concurrency == 7
    assert settings.store == "s3://b/p"


def test_empty_environment_value_means_unset():
    assert Settings.resolve({"STOCKSTREAM_BATCH_SIZE": ""}).batch_size == 100


def test_env_names_follow_the_long_option():
    assert env_name("retry_wait") == "STOCKSTREAM_RETRY_WAIT"
    assert env_name("source_url") == "STOCKSTREAM_SOURCE_URL"


@pytest.mark.parametrize(
    ("environ", "typed", "message"),
    [
        ({}, {"batch_size": 0}, "--batch-size must be at least 1"),
        ({}, {"concurrency": 0}, "--concurrency must be at least 1"),
        ({}, {"delay": -1.0}, "--delay must be at least 0"),
        ({"STOCKSTREAM_RETRIES": "many"}, {}, "STOCKSTREAM_RETRIES must be a number"),
        ({}, {"rate": 0.0}, "--rate must be above 0"),
    ],
)
def test_bad_settings_are_input_errors(environ, typed, message):
    with pytest.raises(InputError) as raised:
        Settings.resolve(environ, **typed)
    assert raised.value.naming(flag).startswith(message)  # as the CLI says it


def test_parse_date():
    assert parse_date("2026-11-25") == dt.date(2026, 11, 25)
    assert parse_date(dt.date(2026, 1, 2)) == dt.date(2026, 1, 2)
    for bad in ("25/11/2026", "2026-13-01", "2026-02-30", "yesterday", ""):
        with pytest.raises(InputError, match="YYYY-MM-DD"):
            parse_date(bad)


def test_default_date_is_today_in_sydney():
    from zoneinfo import ZoneInfo

    assert parse_date(None) == dt.datetime.now(ZoneInfo("Australia/Sydney")).date()


def test_symbols_in_every_spelling_mean_the_same():
    assert parse_symbols(["CBA", "BHP"]) == ["BHP", "CBA"]
    assert parse_symbols(["BHP,CBA"]) == ["BHP", "CBA"]
    assert parse_symbols(["CBA,BHP", "14D", "BHP"]) == ["14D", "BHP", "CBA"]
    assert parse_symbols(None) is None


@pytest.mark.parametrize(
    ("code", "hint"),
    [("BHP.AX", "without the .AX suffix, e.g. BHP"), ("AB", "3-6"), ("TOOLONG1", "3-6"), ("B-P", "3-6")],
)
def test_bad_symbols_are_refused_with_the_fix(code, hint):
    with pytest.raises(InputError, match=hint.replace(".", r"\.")):
        check_symbol(code)
