"""The `stockstream` command: Typer options and rendering over the library. No pipeline logic here.

Outcomes and domain errors become exit codes in one place (ExitCode, exit_code_for, StockstreamGroup.invoke):
a command returns the library's Outcome, or lets its StockstreamError through. Each command module under
commands/ registers its commands and imports the heavy library code only when it runs.
"""

from __future__ import annotations

import enum
import importlib
import sys
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from . import __version__
from .commands import COMMAND_MODULES
from .errors import InputError, Interrupted, StockstreamError
from .options import light_coercion
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

MULTI_VALUE_OPTIONS = ("--symbols",)


def spread_multi_values(args: list[str]) -> list[str]:
    """Let `--symbols BHP CBA` mean `--symbols BHP --symbols CBA`, as users type it."""
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


class StockstreamGroup(TyperGroup):
    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        light_coercion(self, ctx)
        return super().parse_args(ctx, spread_multi_values(list(args)))

    def resolve_command(self, ctx: typer.Context, args: list[str]):
        name, command, rest = super().resolve_command(ctx, args)
        light_coercion(command, ctx)  # only the command that runs: no pydantic for plain options (options.py)
        return name, command, rest

    def invoke(self, ctx: typer.Context):
        try:
            result = super().invoke(ctx)
        except StockstreamError as error:
            typer.echo(f"stockstream: error: {error}", err=True)
            raise typer.Exit(exit_code_for(error)) from None
        if exit_code_for(result) != ExitCode.OK:
            raise typer.Exit(exit_code_for(result))
        return result


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
    add_completion=False,
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
) -> None:
    """The command group: only --version lives here."""


for _module in COMMAND_MODULES:
    importlib.import_module(f"{__package__}.commands.{_module}").register(app)


def main() -> None:
    app(prog_name="stockstream")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
