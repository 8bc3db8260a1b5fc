"""Issue 24's small ones: -v prints each line once, help that reads alike everywhere, one number format, a
time-left estimate that does not flicker, backfill's error without a blank line before it."""

from __future__ import annotations

import datetime as dt
import re

import typer
from typer.testing import CliRunner

from clock import Clock
from stockstream_cli.cli import app

SATURDAY = dt.date(2026, 8, 22)
runner = CliRunner()
COMMANDS = sorted(typer.main.get_command(app).commands)


def invoke(*args):
    return runner.invoke(app, [str(arg) for arg in args])


def test_verbose_prints_each_line_once_without_a_doubled_prefix(tmp_path):
    store = tmp_path / "data"
    store.mkdir()
    result = invoke("-v", "fetch-batch", "--date", SATURDAY.isoformat(), "--batch-number", "0", "--store", store)
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert "stockstream: stockstream:" not in result.stderr
    assert len([line for line in lines if line.startswith("stockstream: error:")]) == 1
    assert len([line for line in lines if "is not an ASX session" in line]) == 1
    assert len(lines) == len(set(lines)), lines


def test_verbose_still_shows_the_librarys_log(tmp_path):
    import logging

    invoke("-v", "status", "--store", tmp_path / "none")  # sets up -v's console handler (exit 2: no store)
    handler = next(h for h in logging.getLogger("yfinance").handlers if getattr(h, "_stockstream", False))
    record = logging.LogRecord("yfinance", logging.WARNING, __file__, 1, "Cookie/crumb fetch failed", None, None)
    assert handler.filter(record)
    assert not handler.filter(logging.LogRecord("stockstream", logging.WARNING, __file__, 1, "printed", None, None))
    invoke("status", "--store", tmp_path / "none")  # and back to normal


def test_every_option_names_its_environment_variable_the_same_way_and_shows_no_bare_text_metavar():
    for command in COMMANDS:
        text = invoke(command, "--help").output
        assert "[env var:" not in text, command
        assert not re.search(r"--[a-z-]+ TEXT\b", text), (command, text)
    stage = " ".join(invoke("deploy", "--help").output.split())
    assert "[env: STOCKSTREAM_STAGE; default: none, the default names]" in stage
    deploy = invoke("deploy", "--help").output
    for shown in ("--bucket NAME", "--image-uri URI", "--alert-email ADDRESS", "--schedule EXPRESSION"):
        assert shown in deploy


def test_verbose_shows_no_default_of_zero():
    top = invoke("--help").output
    verbose = next(line for line in top.splitlines() if "--verbose" in line)
    assert "[default: 0]" not in " ".join(top.split()) and "debugging detail" in verbose


def test_checks_lookback_days_says_what_it_means_for_a_check():
    def help_of(command):
        text = " ".join(invoke(command, "--help").output.split())
        return text[text.index("--lookback-days"):][:160]

    assert "Calendar days fetched" in help_of("fetch-batch")
    assert "Calendar days fetched" not in help_of("check") and "The runs' lookback" in help_of("check")


def test_progress_counts_use_one_number_format_and_the_time_left_holds_through_a_lull():
    from rich.console import Console

    from stockstream_cli.commands.progress import LiveProgress

    clock = Clock()
    live = LiveProgress(Console(force_terminal=True, width=140, record=True), "run-local 2026-08-21")
    live._progress.get_time = clock
    batches = {n: 100 for n in range(18)} | {18: 38}
    live.started(batches)
    for number in (0, 1):
        clock.now += 20.0
        for index in range(100):
            live.symbol_done(number, f"S{number}{index}", None)
        live.batch_done(number, {"metadata": {}}, None)
    tasks = {task.description: task for task in live._progress.tasks}
    assert tasks["symbols"].fields["count"].strip() == "200/1,838"
    assert tasks["batches"].fields["count"].strip() == "2/19"
    clock.now += 45.0  # a lull: a batch retrying, nothing finished for 45 s (more than rich's default 30 s window)
    live.symbol_done(2, "X", "timeout")
    assert tasks["batches"].time_remaining is not None and tasks["symbols"].time_remaining is not None


def test_check_alert_separates_thousands():
    from stockstream_cli.quality.check import UNEXPECTED_MISSING, alert_message

    document = {"complete": False, "start": "2026-08-21", "end": "2026-08-21", "present_rows": 1833,
                "expected_rows": 1838, "missing_counts": {}, "suspicious_counts": {},
                "missing": dict.fromkeys(UNEXPECTED_MISSING, [])}
    assert "1,833 of 1,838 rows present" in alert_message(document)


def test_backfill_error_comes_without_a_blank_line_before_it(tmp_path, fake_yahoo):
    fake_yahoo.unreachable("dns")
    store = tmp_path / "data"
    store.mkdir()
    result = invoke("backfill", "--store", store, "--symbols", "BHP", "--start", "2026-01-01", "--end", "2026-01-31")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0].startswith("stockstream: error: Yahoo Finance cannot be reached")
    assert result.stderr.count("\n") == 1
