"""The `stockstream` command: Typer options and rendering over the library. No pipeline logic here.

Outcomes and domain errors become exit codes in one place (ExitCode, exit_code_for, StockstreamGroup.invoke):
a command returns the library's Outcome, or lets its StockstreamError through. Each command module under
commands/ registers its commands and imports the heavy library code only when it runs.
"""

from __future__ import annotations

import enum
import importlib
import re
import sys
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from . import __version__, hints
from .commands import COMMAND_MODULES
from .errors import InputError, Interrupted, StockstreamError, aws_domain_error
from .options import flag, light_coercion
from .outcome import Outcome


class ExitCode(enum.IntEnum):
    """The contract's exit codes: the only place their numbers are written."""

    OK = 0
    FAILED = 1  # nothing useful was done, or an error that is not bad input
    BAD_INPUT = 2  # a value the user can fix; nothing was sent or written
    PARTIAL = 3  # some of it failed and is recorded: rerun-failed (or the same command) finishes it
    INTERRUPTED = 130  # Ctrl-C: what finished is kept


OUTCOME_EXIT_CODES = {Outcome.COMPLETE: ExitCode.OK, Outcome.PARTIAL: ExitCode.PARTIAL, Outcome.FAILED: ExitCode.FAILED}
ERROR_EXIT_CODES = ((InputError, ExitCode.BAD_INPUT), (Interrupted, ExitCode.INTERRUPTED))


def exit_code_for(result: "Outcome | StockstreamError | None") -> ExitCode:
    """The exit code of a command that returned `result` (None: it had nothing to report) or raised it."""
    if isinstance(result, StockstreamError):
        return next((code for kind, code in ERROR_EXIT_CODES if isinstance(result, kind)), ExitCode.FAILED)
    return OUTCOME_EXIT_CODES[result] if isinstance(result, Outcome) else ExitCode.OK

MULTI_VALUE_OPTIONS = ("--symbols", "--batches")


def spread_multi_values(args: list[str]) -> list[str]:
    """Let `--symbols BHP CBA` mean `--symbols BHP --symbols CBA` (and `--batches 0 3`), as users type it."""
    spread: list[str] = []
    current: str | None = None
    for arg in args:
        if arg == "--":
            current = None
        elif arg in MULTI_VALUE_OPTIONS:
            current = arg
            spread.append(arg)
            continue
        elif current and not arg.startswith("-"):
            if spread[-1] != current:
                spread.append(current)
            spread.append(arg)
            continue
        else:
            current = None
        spread.append(arg)
    return spread


# Typer's own wording of a bad value (pydantic's, underneath) -> ours
LIBRARY_WORDING = (
    (re.compile(r"^Value error, "), ""),
    (re.compile(r"^Input should be a valid integer.*"), "must be a whole number"),
    (re.compile(r"^Input should be a valid number.*"), "must be a number"),
    (re.compile(r"^Input should be a valid boolean.*"), "must be true or false"),
)


def bad_value_line(error: typer.BadParameter) -> str:
    """A value Typer refused, as one line in the program's style, free of library prefixes."""
    message = str(error.message).strip().rstrip(".")
    for pattern, replacement in LIBRARY_WORDING:
        message = pattern.sub(replacement, message)
    hint = error.param.get_error_hint() if error.param is not None else "a value"
    command = error.ctx.command_path if error.ctx is not None else "stockstream"
    return f"stockstream: error: {hint.strip(chr(39))} {message} (see `{command} --help`)"


def readable_metavar(param) -> str | None:
    """'YYYY-MM-DD', 'CODE', 'N' instead of Typer's '<str>', '<list[str]>', '<int>'; None: keep Typer's."""
    names = {"date": "YYYY-MM-DD", "start": "YYYY-MM-DD", "end": "YYYY-MM-DD", "symbols": "CODE",
             "output": "PATH", "from_file": "PATH", "source_url": "URL", "since": "DURATION",
             "bucket": "NAME", "image_uri": "URI", "alert_email": "ADDRESS", "schedule": "EXPRESSION",
             "arch": "arm64|x86_64", "function": "updater|fetcher", "delay": "SECONDS", "retry_wait": "SECONDS",
             "rate": "PER_SECOND"}
    if param.name in names:
        return names[param.name]
    if not any(flag.startswith("-") for flag in getattr(param, "opts", ())):
        return param.name.upper()  # an argument: its name
    if param.name == "env":
        return "KEY=VALUE"
    kind = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return "|".join(member.value for member in kind)
    return {int: "N", float: "NUMBER", str: "TEXT"}.get(kind, "PATH" if getattr(kind, "__name__", "") == "Path" else None)


# The top-level help's one line per command: whole phrases that fit 80 columns (Typer cuts the docstring's
# first sentence mid-phrase).
SHORT_HELP = {
    "symbols": "Download, check and store the day's ASX list.",
    "fetch-batch": "Fetch one batch of one day from Yahoo into the store.",
    "run-local": "Run the whole day's pipeline on this machine.",
    "rerun-failed": "Fetch again exactly what failed on a day.",
    "load": "Read prices back: table, CSV, JSON or Parquet.",
    "status": "What the store holds for a day, and what is missing.",
    "deploy": "Create or update the pipeline on AWS.",
    "destroy": "Remove the pipeline from AWS (the data bucket stays).",
    "run-remote": "Start the deployed pipeline now.",
    "logs": "Print the deployed functions' logs.",
    "check": "Check the store is complete and its data plausible.",
    "backfill": "Fetch the history of symbols that lack it.",
    "chart": "Draw a symbol's prices and volume as a PNG.",
    "compact": "Merge each month's batch files into one file.",
    "actions": "Read back dividends and splits.",
    "query": "Run one SQL query over the tables prices and actions.",
}


def _plain_argument(param) -> None:
    """An argument shown as `SYMBOL`, as in gh or git, not Typer 0.29's `{SYMBOL}` and `SYMBOL <str>`."""
    name = param.name.upper()
    if hasattr(param, "_usage_display_name"):
        param._usage_display_name = lambda: name if param.required else f"[{name}]"
    if hasattr(param, "display_type_rich"):
        param.display_type_rich = lambda ctx: None


class StockstreamGroup(TyperGroup):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, command in (self.commands or {}).items():
            if getattr(command, "short_help", "x") is None and name in SHORT_HELP:
                command.short_help = SHORT_HELP[name]
            for param in command.params:
                if getattr(param, "metavar", "x") is None and not getattr(param, "is_flag", False):
                    param.metavar = readable_metavar(param)
                if not any(flag.startswith("-") for flag in getattr(param, "opts", ())):
                    _plain_argument(param)

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        light_coercion(self, ctx)
        return super().parse_args(ctx, spread_multi_values(list(args)))

    def resolve_command(self, ctx: typer.Context, args: list[str]):
        name, command, rest = super().resolve_command(ctx, args)
        light_coercion(command, ctx)  # only the command that runs: no pydantic for plain options (options.py)
        return name, command, rest

    def invoke(self, ctx: typer.Context):
        hints.forget()
        hints.set_accepted_options(lambda name: _long_options(self, ctx, name))
        try:
            return self._invoke_with_exit_codes(ctx)
        finally:
            hints.forget()

    def _invoke_with_exit_codes(self, ctx: typer.Context):
        try:
            result = super().invoke(ctx)
        except typer.BadParameter as error:
            if type(error).__name__ == "MissingParameter":  # a malformed command line: Typer's usage box
                raise
            typer.echo(bad_value_line(error), err=True)
            raise typer.Exit(ExitCode.BAD_INPUT) from None
        except StockstreamError as error:
            _report(error)
        except Exception as error:
            domain = aws_domain_error(error)  # botocore's, from a call no library code put in context
            if domain is None:
                raise
            _report(domain)
        if exit_code_for(result) != ExitCode.OK:
            raise typer.Exit(exit_code_for(result))
        return result


def _report(error: StockstreamError):
    """The one line a domain error gets, and its exit code."""
    import logging

    message = error.naming(flag)
    logging.getLogger("stockstream").error(message)
    typer.echo(f"stockstream: error: {message}", err=True)
    raise typer.Exit(exit_code_for(error)) from None


def _long_options(group: TyperGroup, ctx: typer.Context, name: str) -> set[str] | None:
    """The long options (without dashes) command `name` takes; None when there is no such command."""
    command = group.get_command(ctx, name)
    if command is None:
        return None
    return {flag[2:] for param in command.params for flag in getattr(param, "opts", ()) if flag.startswith("--")}


app = typer.Typer(
    cls=StockstreamGroup,
    name="stockstream",
    help="A dependable daily OHLCV dataset of every ASX-listed company, run locally or on AWS.",
    epilog=(
        "Start here: `stockstream run-local` fetches today's ASX into ./stockstream-data; "
        "`stockstream load --symbols BHP CBA` reads it back; `stockstream status` says what a day holds. "
        "Every option of the pipeline can also be set as STOCKSTREAM_<OPTION>."
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"stockstream {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr: no progress, notes or warnings.")] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, show_default=False,
                                         help="More on stderr: -v what is done, -vv debugging detail.")] = 0,
    log_file: Annotated[Optional[str], typer.Option("--log-file", metavar="PATH",
                                                    help="Also write a detailed log (debug level) to this file.")] = None,
) -> None:
    """The command group: --version and how much it tells (-q, -v, --log-file) live here; give them before the
    command (`stockstream -q run-local`)."""
    from .commands.output import set_verbosity

    if quiet and verbose:
        raise InputError("--quiet and --verbose contradict each other: give one")
    set_verbosity(-1 if quiet else verbose, log_file)


for _module in COMMAND_MODULES:
    importlib.import_module(f"{__package__}.commands.{_module}").register(app)


def main() -> None:
    app(prog_name="stockstream")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
