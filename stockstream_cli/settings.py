"""Every pipeline setting in one place: default < STOCKSTREAM_<OPTION> environment < command line.

The CLI passes what was typed (None for what was not); the Lambda handlers pass nothing and so read
the same environment variables. Values are checked here, once, whichever face supplied them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from .errors import InputError

ENV_PREFIX = "STOCKSTREAM_"
MARKIT_URL = "https://asx.api.markitdigital.com/asx-research/1.0/companies/directory/file"
DEFAULT_STORE = "./stockstream-data"
LAMBDA_CACHE_DIR = "/tmp/stockstream-cache"  # only /tmp is writable on Lambda
DEFAULT_LOOKBACK_DAYS = 5  # calendar days a run fetches (and check judges), ending at its date


@dataclasses.dataclass(frozen=True)
class Settings:
    store: str = DEFAULT_STORE
    batch_size: int = 100
    concurrency: int = 10
    delay: float = 2.0
    retries: int = 3
    retry_wait: float = 2.0
    lookback_days: int = DEFAULT_LOOKBACK_DAYS
    source_url: str = MARKIT_URL
    cache_dir: str | None = None
    rate: float | None = None
    workers: int = 1  # threads fetching one batch (fetch-batch, a Lambda invocation), each with its own --delay
    max_concurrency: int = 10  # deploy: the state machine's batches at once (infra/asl.json mirrors it), reserved
    processes: int | None = None  # worker processes of run-local / rerun-failed; None: as many as the rate needs
    timeout: float = 30.0
    profile: str | None = None
    region: str | None = None
    poll_interval: float = 5.0  # seconds between checks of a remote execution (rerun-failed --remote); env only
    allow_plain_requests: bool = False  # fetch even when yfinance is on plain requests, not curl_cffi

    @classmethod
    def resolve(cls, environ: Mapping[str, str] | None = None, **typed: Any) -> "Settings":
        """Build the settings from the environment and the values typed on the command line. A bad value
        from the environment is named by its variable (STOCKSTREAM_BATCH_SIZE), whichever face reports it."""
        environ = os.environ if environ is None else environ
        unknown = set(typed) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}")
        values: dict[str, Any] = {}
        from_environment = {field.name for field in dataclasses.fields(cls)
                            if typed.get(field.name) is None and environ.get(env_name(field.name), "") != ""}
        try:
            for field in dataclasses.fields(cls):
                if typed.get(field.name) is not None:
                    values[field.name] = _convert(field, typed[field.name])
                elif field.name in from_environment:
                    values[field.name] = _convert(field, environ[env_name(field.name)])
            if "rate" in values and "delay" not in values:
                values["delay"] = 0.0  # a rate budget replaces the per-worker delay unless that is given too
            settings = cls(**values)
            settings.check()
        except InputError as error:
            if error.parameter in from_environment:
                raise error.named_as(error.parameter, env_name(error.parameter)) from None
            raise
        return settings

    def check(self) -> None:
        _at_least(self.batch_size, 1, "batch_size")
        _at_least(self.concurrency, 1, "concurrency")
        _at_least(self.workers, 1, "workers")
        _at_least(self.max_concurrency, 1, "max_concurrency")
        _at_least(self.delay, 0, "delay")
        _at_least(self.retries, 0, "retries")
        _at_least(self.retry_wait, 0, "retry_wait")
        _at_least(self.lookback_days, 1, "lookback_days")
        _at_least(self.timeout, 0.001, "timeout")
        _at_least(self.poll_interval, 0, "poll_interval")
        if self.processes is not None:
            _at_least(self.processes, 1, "processes")
        if self.rate is not None and not self.rate > 0:  # `not >` also refuses nan
            raise InputError(f"must be above 0 requests per second, got {self.rate}", parameter="rate")

    @property
    def cache_folder(self) -> str:
        """The folder of stockstream's caches (yfinance's, the footer index): cache_dir, else the default."""
        return self.cache_dir or default_cache_dir()


def default_cache_dir() -> str:
    """The folder stockstream keeps its caches in (yfinance's, the footer index) when STOCKSTREAM_CACHE_DIR
    is not set: the user cache folder; on Lambda, LAMBDA_CACHE_DIR."""
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return LAMBDA_CACHE_DIR
    import platformdirs

    return platformdirs.user_cache_dir("stockstream")


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


# The variables named outside Settings' own resolution: deploy sets them on the functions, the functions read them.
STORE_ENV = env_name("store")
CACHE_DIR_ENV = env_name("cache_dir")
STAGE_ENV = ENV_PREFIX + "STAGE"  # the deployed stack's stage (--stage); not a pipeline setting


def option_name(field_name: str) -> str:
    return field_name.replace("_", "-")


def default_of(field_name: str) -> Any:
    return {f.name: f.default for f in dataclasses.fields(Settings)}[field_name]


ENV_ONLY = ("timeout", "poll_interval")  # settings no command line sets: always named by their variable


def _at_least(value: float, floor: float, parameter: str) -> None:
    if value < floor:
        error = InputError(f"must be at least {floor:g}, got {value:g}", parameter=parameter)
        raise error.named_as(parameter, env_name(parameter)) if parameter in ENV_ONLY else error


def _convert(field: dataclasses.Field, raw: Any) -> Any:
    kind = str(field.type)
    if kind.startswith("bool"):
        return _boolean(raw, field.name)
    try:
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
    except (TypeError, ValueError):
        raise InputError(f"must be a number, got {raw!r}", parameter=field.name) from None
    return str(raw)


def _boolean(raw: Any, parameter: str) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise InputError(f"must be true or false (1/0, yes/no), got {raw!r}", parameter=parameter)
