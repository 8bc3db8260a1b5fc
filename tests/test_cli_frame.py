"""The program as a whole: version, help for every command, exit codes for what the frame decides."""

from __future__ import annotations

import pytest
import typer

from helpers import run_stockstream, runner
from stockstream_cli import __version__
from stockstream_cli.cli import app, spread_multi_values

CONTRACT_COMMANDS = [
    "symbols",
    "fetch-batch",
    "run-local",
    "rerun-failed",
    "load",
    "actions",
    "query",
    "status",
    "deploy",
    "destroy",
    "run-remote",
    "logs",
    "check",
    "backfill",
    "chart",
    "compact",
]

APP_COMMANDS = list(typer.main.get_command(app).commands)  # what the app registers, a 13th command included


def test_the_app_registers_exactly_the_contracts_commands():
    assert APP_COMMANDS == CONTRACT_COMMANDS


def test_version_in_process_and_as_a_module():
    assert runner.invoke(app, ["--version"]).output.strip() == f"stockstream {__version__}"
    result = run_stockstream("--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"stockstream {__version__}")


@pytest.mark.parametrize("command", APP_COMMANDS)
def test_every_command_has_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: stockstream {command}" in result.output
    summary = result.output.split("\n\n")[1].strip()
    assert len(summary) > 20, f"{command} --help has no real description"


def test_top_level_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in APP_COMMANDS:
        assert command in result.output


def test_symbols_given_after_one_flag_are_spread():
    assert spread_multi_values(["load", "--symbols", "BHP", "CBA", "--format", "csv"]) == [
        "load", "--symbols", "BHP", "--symbols", "CBA", "--format", "csv",
    ]
    assert spread_multi_values(["load", "--symbols", "BHP,CBA", "--symbols", "NAB"]) == [
        "load", "--symbols", "BHP,CBA", "--symbols", "NAB",
    ]


def test_unknown_command_is_a_usage_error():
    result = run_stockstream("no-such-command")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
