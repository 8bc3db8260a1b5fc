"""Options shared across commands, so each is spelled and documented once.

Pipeline settings are declared with default None: Settings.resolve fills what was not typed from
STOCKSTREAM_<OPTION> and then the default, the one place that order is decided.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from . import hints
from .settings import STAGE_ENV, default_of, env_name, option_name
from .thresholds import DEFAULT_SOURCE_FLOOR, MIN_SHARE_OF_PREVIOUS


def flag(parameter: str) -> str:
    """The option that sets one of the library's parameters: how the CLI names it in a message
    (errors.InputError.naming). Every option is the parameter's name, dashed: batch_size is --batch-size."""
    return f"--{option_name(parameter)}"


def quoting(**facts):
    """Fill a command's docstring (its --help) with the constants it quotes, so a threshold is written once."""
    def fill(command):
        command.__doc__ = command.__doc__.format(**facts)
        return command

    return fill


def _remembered(option: str):
    """An option callback that records the typed value, so printed hints carry it (hints.command)."""

    def remember(value):
        hints.remember(option, value)
        return value

    return remember


def _setting_help(name: str, text: str) -> str:
    default = default_of(name)
    shown = "" if default is None else f"; default: {default}"
    return f"{text} [env: {env_name(name)}{shown}]"


Store = Annotated[
    Optional[str],
    typer.Option("--store", help=_setting_help("store", "Local folder or s3://bucket[/prefix]."), show_default=False,
                 metavar="URI", callback=_remembered("store")),
]
Date = Annotated[
    Optional[str],
    typer.Option("--date", help="Trading day, YYYY-MM-DD [default: today in Australia/Sydney].", show_default=False),
]
StoredDate = Annotated[  # the readers of a day's report (status, check): a day the store holds
    Optional[str],
    typer.Option("--date", help="Day to report, YYYY-MM-DD [default: the latest day in the store].", show_default=False),
]
Json = Annotated[bool, typer.Option("--json", help="Print exactly one JSON document on stdout.")]
Symbols = Annotated[
    Optional[list[str]],
    typer.Option(
        "--symbols",
        help="ASX codes without suffix: --symbols BHP CBA, --symbols BHP --symbols CBA or --symbols BHP,CBA.",
        show_default=False,
    ),
]
Batches = Annotated[
    Optional[list[str]],
    typer.Option(
        "--batches",
        help="Batch numbers of the day's list: --batches 0 3, --batches 0 --batches 3 or --batches 0,3.",
        show_default=False, metavar="N",
    ),
]
RefreshList = Annotated[
    bool,
    typer.Option("--refresh-list", help="Download the day's ASX list again even when the store already has it "
                                         "(from `stockstream symbols` or an earlier run)."),
]
BatchSize = Annotated[
    Optional[int],
    typer.Option("--batch-size", help=_setting_help("batch_size", "Symbols per batch."), show_default=False),
]
Concurrency = Annotated[
    Optional[int],
    typer.Option("--concurrency", help=_setting_help("concurrency", "Batches fetched at once."), show_default=False),
]
SymbolsAtOnce = Annotated[  # backfill: its unit of work is a symbol, not a batch
    Optional[int],
    typer.Option("--concurrency", help=_setting_help("concurrency", "Symbols fetched at once, each worker with its "
                                                     "own --delay (as run-local's batches)."), show_default=False),
]
Delay = Annotated[
    Optional[float],
    typer.Option("--delay", help=_setting_help("delay", "Seconds between requests of one worker."), show_default=False),
]
Rate = Annotated[
    Optional[float],
    typer.Option(
        "--rate",
        help=_setting_help(
            "rate",
            "Requests per second shared by all workers; replaces --delay unless that is given too. On a 429 the "
            "budget backs off and recovers gradually [default: adaptive: no cap until Yahoo answers 429].",
        ),
        show_default=False,
    ),
]
Processes = Annotated[
    Optional[int],
    typer.Option(
        "--processes",
        help=_setting_help(
            "processes",
            "Worker processes the batches are spread over (yfinance's parsing needs about one core per 30 "
            "requests/s) [default: as many as --rate or --concurrency/--delay need, at most the cores and 4].",
        ),
        show_default=False,
    ),
]
MaxConcurrency = Annotated[
    Optional[int],
    typer.Option("--max-concurrency", help=_setting_help(
        "max_concurrency", "Batches the deployed state machine fetches at once (its Map's MaxConcurrency); the "
        "fetcher function reserves as many concurrent executions."), show_default=False, metavar="N"),
]
Workers = Annotated[
    Optional[int],
    typer.Option("--workers", help=_setting_help(
        "workers", "Threads fetching one batch, each with its own --delay: with --max-concurrency, the deployed "
        "pipeline's requests/s toward Yahoo are N x workers / delay."), show_default=False, metavar="N"),
]
Retries = Annotated[
    Optional[int],
    typer.Option("--retries", help=_setting_help("retries", "Retries of a symbol after a transient failure."), show_default=False),
]
RetryWait = Annotated[
    Optional[float],
    typer.Option(
        "--retry-wait",
        help=_setting_help("retry_wait", "First retry wait in seconds; doubles each retry, with jitter."),
        show_default=False,
    ),
]
LookbackDays = Annotated[
    Optional[int],
    typer.Option(
        "--lookback-days",
        help=_setting_help("lookback_days", "Calendar days fetched, ending at --date (included)."),
        show_default=False,
    ),
]
CheckLookbackDays = Annotated[  # check: not what to fetch, but how far a run's window reached back
    Optional[int],
    typer.Option(
        "--lookback-days",
        help=_setting_help("lookback_days", "The runs' lookback: a session's row may come from any run up to this "
                           "many calendar days after it, whose record then says why it is missing."),
        show_default=False,
    ),
]
SourceUrl = Annotated[
    Optional[str],
    typer.Option("--source-url", help=_setting_help("source_url", "Where the ASX list is downloaded from."), show_default=False),
]
Profile = Annotated[
    Optional[str], typer.Option("--profile", help=_setting_help("profile", "AWS profile."), show_default=False,
                                 metavar="NAME", callback=_remembered("profile"))
]
Region = Annotated[
    Optional[str], typer.Option("--region", help=_setting_help("region", "AWS region."), show_default=False,
                                 metavar="REGION", callback=_remembered("region"))
]
FromFile = Annotated[
    Optional[str],
    typer.Option("--from-file", help="Read the ASX list from this file (either ASX format) instead of downloading it.",
                 show_default=False),
]
Force = Annotated[
    bool,
    typer.Option("--force", help=f"Accept an ASX list that shrank below {MIN_SHARE_OF_PREVIOUS}% of the previous one "
                 f"(or below {DEFAULT_SOURCE_FLOOR:,} symbols)."),
]
Remote = Annotated[bool, typer.Option("--remote", help="Act on the deployed pipeline (see `stockstream deploy`).")]
Stage = Annotated[
    Optional[str],
    typer.Option("--stage", envvar=STAGE_ENV, show_envvar=False,  # shown as every other option's: [env: ...]
                 help="The deployed stack: a stack of its own (e.g. prod, test): its name on every resource "
                 f"[env: {STAGE_ENV}; default: none, the default names].", show_default=False, metavar="NAME",
                 callback=_remembered("stage")),
]
NoWait = Annotated[
    bool, typer.Option("--no-wait", help="With --remote: start the execution and return at once, without waiting.")
]
Start = Annotated[Optional[str], typer.Option("--start", help="First trading day, YYYY-MM-DD.", show_default=False)]
AllowPlainRequests = Annotated[
    Optional[bool],
    typer.Option(
        "--allow-plain-requests",
        help=_setting_help(
            "allow_plain_requests",
            "Fetch even when yfinance runs on plain requests instead of curl_cffi (Yahoo rate-limits that).",
        ),
        show_default=False,
    ),
]

Wait = Annotated[
    bool,
    typer.Option("--wait", help="When another process is writing the same day (or batch), wait for it to finish "
                                "instead of exiting 2 (see README, \"One writer per day\")."),
]

# ---------------------------------------------------------------------------------------------- value coercion
# Typer 0.2x coerces every option value through a pydantic TypeAdapter, and importing pydantic to turn "BHP"
# into "BHP" costs more start-up than `load` spends reading a year of two symbols. Options typed as plain
# strings, Enums (choices) or unrestricted Paths, or lists of those, get the same conversion here instead;
# anything else (numbers, ranges, parsers) keeps Typer's own. An older or newer Typer without these internals
# is left as it is (tests/test_startup_imports.py checks which modules `load` imports).

def light_coercion(command, ctx) -> None:
    """Give the command's plainly typed parameters (its help option too) a coercion that needs no pydantic,
    before it parses."""
    try:
        from typer._coercion import RuntimeParam
        from typer._param_types import coerce_cli_choice
    except ImportError:
        return
    for param in command.get_params(ctx) if command is not None else ():
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or getattr(param, "_runtime_param", False) is not None:
            continue
        convert = _plain_conversion(descriptor, coerce_cli_choice)
        if convert is not None:
            param._runtime_param = _plain_runtime_param(RuntimeParam)(descriptor.parameter_info,
                                                                     descriptor.annotation, convert)


def _plain_conversion(descriptor, coerce_cli_choice):
    """A function from a command-line string to the annotation's value; None when Typer's own is needed."""
    import enum
    from pathlib import Path
    from typing import get_args

    info = descriptor.parameter_info
    if info.parser is not None or descriptor.is_file or descriptor.is_tuple:
        return None
    annotation = descriptor.annotation
    if descriptor.is_list:
        (annotation,) = get_args(annotation) or (None,)
    if annotation is str:
        return str
    if annotation is bool:
        return _flag_value
    if annotation is int and getattr(info, "min", None) is None and getattr(info, "max", None) is None:
        return _whole_number  # a plain whole number (the root's -v count, --batch-number): no range to check
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        choices = tuple(annotation)
        return lambda value: coerce_cli_choice(value, choices=choices, case_sensitive=info.case_sensitive)
    if annotation is Path and not (info.exists or info.resolve_path or info.allow_dash or info.writable
                                   or info.path_type or not info.file_okay or not info.dir_okay):
        return Path
    return None


_TRUE, _FALSE = {"1", "true", "t", "yes", "y", "on"}, {"0", "false", "f", "no", "n", "off", ""}


def _whole_number(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError("must be a whole number") from None


def _flag_value(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError(f"{value!r} is not a valid boolean")


def _plain_runtime_param(base):
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class PlainRuntimeParam(base):
        convert: Any = None

        def _coerce_value(self, value, param, ctx):
            from typer._click.exceptions import BadParameter

            if isinstance(value, (list, tuple)):
                return [self._coerce_value(item, param, ctx) for item in value]
            try:
                return self.convert(value)
            except ValueError as error:
                raise BadParameter(str(error), ctx=ctx, param=param) from None

    return PlainRuntimeParam
