"""Issue 15, what a new user trips over: hints that work when pasted, dates that cannot be right, stores that
do not exist, true facts in messages, case-insensitive symbols."""

from __future__ import annotations

import datetime as dt
import re
import shlex

import pytest
from typer.testing import CliRunner

from asx_fake import asx_codes, write_markit_csv
from pipeline_support import store_files
from storefactory import bars, build_day, parquet_bytes
from stockstream_cli import hints
from stockstream_cli.dataset import layout
from stockstream_cli.cli import app
from stockstream_cli.dataset.store import LocalStore

DAY = dt.date(2026, 8, 21)  # a Friday, an ASX session
SATURDAY = dt.date(2026, 8, 22)
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(arg) for arg in args])


def printed_hints(text: str) -> list[list[str]]:
    """Every `stockstream ...` command a message shows in backticks or after 'again: ', as argv lists."""
    found = re.findall(r"`(stockstream [^`]+)`", text) + re.findall(r"again: (stockstream [^\n]+)", text)
    return [shlex.split(command)[1:] for command in found]


# ------------------------------------------------------------------------------------------ 1. hints


def test_statuss_hint_carries_the_store_and_works_when_pasted(tmp_path, fake_yahoo):
    store = tmp_path / "storeA"
    build_day(store, DAY, ["BHP", "CBA", "NAB"], failures={"NAB": "rate_limited"})
    status = invoke("status", "--store", store, "--date", DAY.isoformat())
    assert status.exit_code == 3
    (hint,) = printed_hints(status.stdout)
    assert hint == ["rerun-failed", "--date", DAY.isoformat(), "--store", str(store)]
    pasted = invoke(*hint)
    assert pasted.exit_code == 0, pasted.output
    assert invoke("status", "--store", store, "--date", DAY.isoformat()).exit_code == 0


def test_the_failure_tables_hint_carries_the_store_and_works_when_pasted(tmp_path, fake_yahoo):
    codes = asx_codes(30)
    listing = write_markit_csv(tmp_path / "asx.csv", codes)
    store = tmp_path / "storeA"
    fake_yahoo.fault(codes[3], "rate_limited")
    run = invoke("run-local", "--date", DAY.isoformat(), "--from-file", listing, "--store", store, "--retries", "0")
    assert run.exit_code == 3, run.output
    (hint,) = printed_hints(run.stdout)
    assert hint == ["rerun-failed", "--date", DAY.isoformat(), "--store", str(store)]
    fake_yahoo._faults.clear()
    pasted = invoke(*hint)
    assert pasted.exit_code == 0, pasted.output
    assert not (tmp_path / "stockstream-data").exists()


def test_a_missing_list_hint_names_the_store_given(tmp_path):
    store = tmp_path / "storeA"
    store.mkdir()
    result = invoke("fetch-batch", "--date", DAY.isoformat(), "--batch-number", "0", "--store", store)
    assert result.exit_code == 2
    (hint,) = printed_hints(result.stderr)
    assert hint == ["symbols", "--date", DAY.isoformat(), "--store", str(store)]


def test_hints_carry_only_options_the_hinted_command_takes(tmp_path):
    store = tmp_path / "storeA"
    build_day(store, DAY, ["BHP", "CBA"], missing_batches=[0])
    result = invoke("status", "--store", store, "--date", DAY.isoformat(), "--profile", "work", "--region",
                    "ap-southeast-2")
    (hint,) = printed_hints(result.stdout)
    assert hint[-6:] == ["--store", str(store), "--profile", "work", "--region", "ap-southeast-2"]
    hints.forget()
    hints.remember("stage", "prod")
    hints.remember("store", "./s")
    hints.set_accepted_options(lambda name: {"date", "store"} if name == "symbols" else None)
    assert hints.command("symbols", "--date", "2026-11-25") == "stockstream symbols --date 2026-11-25 --store ./s"


def test_an_invocation_leaves_no_options_behind_for_later_hints_in_the_process(tmp_path):
    """The Python API (or a test) after a CLI call in the same process: its hints are the bare commands."""
    result = invoke("status", "--store", tmp_path / "absent", "--profile", "work")
    assert result.exit_code == 2 and "--profile work` creates it" in result.stderr  # carried during the call
    assert hints.command("symbols", "--date", "2026-11-25") == "stockstream symbols --date 2026-11-25"


def test_the_interrupt_message_carries_the_store(tmp_path):
    from stockstream_cli.commands.running import interruptible
    from stockstream_cli.errors import Interrupted

    hints.forget()
    hints.set_accepted_options(lambda name: None)
    hints.remember("store", str(tmp_path / "my store"))
    with pytest.raises(Interrupted) as caught, interruptible(DAY):
        raise KeyboardInterrupt
    assert f"stockstream rerun-failed --date {DAY} --store '{tmp_path / 'my store'}'" in str(caught.value)


# ------------------------------------------------------------------------------------------ 2. dates


@pytest.mark.parametrize("command", [["run-local"], ["fetch-batch", "--batch-number", "0", "--symbols", "BHP"],
                                     ["rerun-failed"], ["symbols"]])
def test_a_date_after_today_is_bad_input_before_any_request(tmp_path, fake_yahoo, command):
    store = tmp_path / "data"
    result = invoke(*command, "--date", "2099-03-01", "--store", store)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "after today" in result.stderr
    assert not store.exists()
    assert fake_yahoo.count(kind=None) == 0


def test_a_day_that_is_no_session_warns_in_one_line_and_fetches_up_to_the_session_before(tmp_path, fake_yahoo):
    store = tmp_path / "data"
    result = invoke("fetch-batch", "--date", SATURDAY.isoformat(), "--batch-number", "0", "--symbols", "BHP",
                    "--store", store)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warnings == [f"stockstream: warning: {SATURDAY} (Saturday) is not an ASX session: its window's latest "
                        f"session is {DAY} (Friday)"]
    rows = LocalStore(store)
    import polars as pl

    frame = pl.read_parquet(rows.get(layout.batch_data_key(SATURDAY, 0)))
    assert frame["date"].max() == DAY


# ------------------------------------------------------------------------------------------ 5. missing stores


READERS = [["load"], ["actions"], ["query", "SELECT * FROM prices"], ["status"],
           ["check", "--date", DAY.isoformat(), "--symbols", "BHP"], ["chart", "BHP"], ["compact"]]


@pytest.mark.parametrize("command", READERS, ids=lambda c: c[0])
@pytest.mark.parametrize("kind", ["missing", "a-file", "s3-one-slash"])
def test_reading_a_store_that_is_not_there_is_bad_input_naming_it(tmp_path, command, kind):
    where = {"missing": str(tmp_path / "nope"), "a-file": str(tmp_path / "file"), "s3-one-slash": "s3:/nobucket"}[kind]
    (tmp_path / "file").write_text("not a store")
    result = invoke(*command, "--store", where)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and where in result.stderr
    assert ("is not a folder" if kind == "a-file" else "does not exist") in result.stderr
    if kind == "s3-one-slash":
        assert "did you mean s3://nobucket" in result.stderr
    assert not (tmp_path / "nope").exists() and not (tmp_path / "s3:").exists()


# ------------------------------------------------------------------------------------------ 6. true facts


def test_an_empty_load_counts_backfill_and_compacted_files(tmp_path):
    store = LocalStore(tmp_path / "data")
    build_day(store, DAY, ["BHP"])
    store.put(layout.backfill_data_key(DAY, 0), parquet_bytes(bars(["CBA"], [dt.date(2025, 3, 3)])))
    store.put(layout.compacted_data_key("2026-07"), parquet_bytes(bars(["NAB"], [dt.date(2026, 7, 1)])))
    result = invoke("load", "--symbols", "XYZ", "--store", tmp_path / "data")
    assert result.exit_code == 0
    assert (f"it holds daily files of 1 day ({DAY}), compacted files of 1 month (2026-07) and backfill files "
            f"recorded on 1 day ({DAY})") in result.stderr


# ------------------------------------------------------------------------------------------ 11. symbols' case


def test_symbols_are_case_insensitive_on_input(tmp_path):
    build_day(tmp_path / "data", DAY, ["BHP", "CBA"])
    lower = invoke("load", "--symbols", "bhp,Cba", "--store", tmp_path / "data", "--format", "csv")
    upper = invoke("load", "--symbols", "BHP,CBA", "--store", tmp_path / "data", "--format", "csv")
    assert lower.exit_code == 0 and lower.stdout == upper.stdout and "BHP" in lower.stdout and "CBA" in lower.stdout


# ------------------------------------------------------------------------------------------ 4. AWS unreachable


@pytest.mark.parametrize("command", [["status", "--remote"], ["rerun-failed", "--remote", "--date", DAY.isoformat()]],
                         ids=["status", "rerun-failed"])
def test_remote_views_without_network_or_credentials_say_so_in_one_line(monkeypatch, command):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: connection refused
    offline = invoke(*command)
    assert offline.exit_code == 1, offline.output
    (error,) = [line for line in offline.stderr.splitlines() if "error" in line]
    assert error.startswith("stockstream: error: ") and "cannot reach AWS" in error
    assert "Traceback" not in offline.output and offline.stderr.count("\n") <= 2  # the error and a progress note
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    anonymous = invoke(*command)
    assert anonymous.exit_code == 2, anonymous.output
    (error,) = [line for line in anonymous.stderr.splitlines() if "error" in line]
    assert error.startswith("stockstream: error: no AWS credentials") and "Traceback" not in anonymous.output


# ------------------------------------------------------------------------------------------ 3. fetch-batch --symbols


def _listed_day(tmp_path):
    store = LocalStore(tmp_path / "data")
    build_day(store, DAY, ["AAA", "BHP", "CBA", "NAB", "ZIP"], batch_size=2)  # batches: 0 AAA BHP, 1 CBA NAB, 2 ZIP
    return store


def test_fetch_batch_refuses_symbols_of_another_batch_naming_it(tmp_path, fake_yahoo):
    store = _listed_day(tmp_path)
    before = store_files(tmp_path / "data")
    result = invoke("fetch-batch", "--date", DAY, "--batch-number", "0", "--symbols", "BHP", "CBA", "--store", store.uri)
    assert result.exit_code == 2
    assert result.stderr == (f"stockstream: error: not in batch 0 of {DAY}: CBA is in batch 1; give that --batch-number, "
                             "or leave --batch-number out to file each symbol under its own batch\n")
    assert store_files(tmp_path / "data") == before and fake_yahoo.count(kind=None) == 0


def test_fetch_batch_without_a_batch_number_files_each_symbol_under_its_own(tmp_path, fake_yahoo):
    import json

    import polars as pl

    store = _listed_day(tmp_path)
    result = invoke("fetch-batch", "--date", DAY, "--symbols", "zip,bhp", "--store", store.uri, "--json")
    assert result.exit_code == 0, result.output
    documents = json.loads(result.stdout)
    assert [d["metadata"]["batch_number"] for d in documents] == [0, 2]
    for number, symbol in ((0, "BHP"), (2, "ZIP")):
        frame = pl.read_parquet(store.get(layout.batch_data_key(DAY, number)))
        assert set(frame.filter(pl.col("symbol") == symbol)["batch_number"].to_list()) == {number}
    status = invoke("status", "--store", store.uri, "--date", DAY, "--json")
    assert json.loads(status.stdout)["symbols_fetched"] == 5


def test_fetch_batch_with_its_own_batch_keeps_the_contracts_form(tmp_path, fake_yahoo):
    store = _listed_day(tmp_path)
    result = invoke("fetch-batch", "--date", DAY, "--batch-number", "1", "--symbols", "CBA", "--store", store.uri)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"batch 1 of {DAY}: 2 of 2 symbols fetched")  # the batch, CBA merged in


# ------------------------------------------------------------------------------------------ 7. warnings


def test_pandas_deprecation_warnings_from_yfinances_calls_never_leak_in_a_worker_process(tmp_path):
    import subprocess
    import sys

    # a worker process as the pool starts it (spawn), then pandas called the way yfinance calls it
    script = (
        "import warnings\n"
        "from stockstream_cli.run import workers\n"
        "workers._preload()\n"
        "import pandas as pd\n"
        "frame = pd.DataFrame({'a': [1]})\n"
        "frame.rename(columns={'a': 'b'}, inplace=True)\n"
        "frame.set_index('b', inplace=True)\n"
        "warnings.warn('ours still shows', UserWarning)\n"
    )
    result = subprocess.run([sys.executable, "-W", "default", "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Pandas4Warning" not in result.stderr and "inplace" not in result.stderr
    assert "ours still shows" in result.stderr


# ------------------------------------------------------------------------------------------ 10. one style


def test_a_bad_value_is_one_line_in_the_programs_style_without_library_prefixes(tmp_path):
    build_day(tmp_path / "data", DAY, ["BHP"])
    bad_format = invoke("load", "--format", "xlsx", "--store", tmp_path / "data")
    assert bad_format.exit_code == 2
    assert bad_format.stderr == ("stockstream: error: --format 'xlsx' is not one of 'table', 'csv', 'json', 'parquet' "
                                 "(see `stockstream load --help`)\n")
    bad_number = invoke("fetch-batch", "--batch-number", "x")
    assert bad_number.exit_code == 2
    assert bad_number.stderr == "stockstream: error: --batch-number must be a whole number (see `stockstream fetch-batch --help`)\n"
    malformed = invoke("status", "--bogus")
    assert malformed.exit_code == 2 and "Usage: stockstream status" in malformed.stderr  # Typer's box, for syntax only


def test_format_is_case_insensitive(tmp_path):
    build_day(tmp_path / "data", DAY, ["BHP"])
    upper = invoke("load", "--format", "CSV", "--store", tmp_path / "data")
    assert upper.exit_code == 0 and upper.stdout.startswith("symbol,date,")


def test_help_metavars_are_readable_and_the_top_level_help_cuts_no_description():
    import typer

    commands = list(typer.main.get_command(app).commands)
    for command in commands:
        text = invoke(command, "--help").output
        assert not re.search(r"<[a-z][\w\[\], |]*>|\{[A-Za-z_]+\}", text), (command, text)
    top = invoke("--help").output
    lines = [line for line in top.splitlines() if re.match(r"  [a-z][a-z-]+  ", line)]
    assert len(lines) == len(commands)
    assert all(line.rstrip().endswith(".") and not line.rstrip().endswith("...") for line in lines), lines


def test_counts_are_separated_and_their_nouns_agree():
    from rich.console import Console

    from stockstream_cli.commands.output import counted
    from stockstream_cli.commands.progress import render_run

    assert [counted(1, "symbol"), counted(1838, "symbol"), counted(1, "batch", "batches")] == \
        ["1 symbol", "1,838 symbols", "1 batch"]
    console = Console(record=True, width=200)
    render_run({"date": "2026-11-25", "total_symbols": 1, "num_batches": 1, "batches_succeeded": 1, "batches_failed": [],
                "symbols_fetched": 1, "symbols_failed": [], "execution_time": 1.0}, console)
    assert console.export_text().startswith("2026-11-25: 1 of 1 symbol fetched, 0 failed; 1 of 1 batch succeeded")


def test_a_rerun_with_nothing_to_do_says_so(tmp_path):
    store = tmp_path / "data"
    build_day(store, DAY, ["BHP", "CBA"], failures={"CBA": "not_found"})
    before = store_files(store)
    result = invoke("rerun-failed", "--date", DAY, "--store", store)
    assert result.exit_code == 3
    assert result.stdout.startswith(f"nothing to rerun on {DAY}: every batch has a result")
    (hint,) = printed_hints(result.stdout.replace("anyway: ", "again: "))
    assert hint == ["rerun-failed", "--date", DAY.isoformat(), "--store", str(store), "--all"]
    assert {k: v for k, v in store_files(store).items() if "run.json" not in k} == \
        {k: v for k, v in before.items() if "run.json" not in k}


# ------------------------------------------------------------------------------------------ 8. check meets backfill


def test_checks_repair_hint_backfills_exactly_what_it_found_never_fetched(tmp_path, fake_yahoo):
    import json

    store = tmp_path / "data"
    build_day(store, DAY, ["BHP", "CBA"])
    build_day(store, dt.date(2026, 8, 7), ["BHP", "CBA", "NAB"], write_run=False)
    before = invoke("check", "--start", "2026-08-03", "--end", DAY, "--store", store, "--json")
    never = json.loads(before.stdout)["missing"]["not_fetched"]
    assert never and {item["symbol"] for item in never} == {"BHP", "CBA", "NAB"}
    shown = invoke("check", "--start", "2026-08-03", "--end", DAY, "--store", store)
    assert shown.exit_code == 3
    (hint,) = [shlex.split(line.split(": ", 1)[1])[1:] for line in shown.stdout.splitlines()
               if line.startswith("To repair it: ")]
    assert hint == ["backfill", "--missing", "--start", "2026-08-03", "--end", DAY.isoformat(), "--store", str(store)]
    fake_yahoo.requests.clear()
    repaired = invoke(*hint, "--json")
    assert repaired.exit_code == 0, repaired.output
    assert json.loads(repaired.stdout)["symbols"] == ["BHP", "CBA", "NAB"]
    assert sorted({r.ticker for r in fake_yahoo.requests if r.kind == "chart"}) == ["BHP.AX", "CBA.AX", "NAB.AX"]
    after = invoke("check", "--start", "2026-08-03", "--end", DAY, "--store", store, "--json")
    assert json.loads(after.stdout)["missing"]["not_fetched"] == []


# ------------------------------------------------------------------------------------------ 11. conveniences


def test_quiet_leaves_only_errors_and_log_file_gets_the_detail(tmp_path):
    store = tmp_path / "data"
    store.mkdir()
    log = tmp_path / "run.log"
    args = ["fetch-batch", "--date", SATURDAY.isoformat(), "--batch-number", "0", "--store", str(store)]
    loud = invoke(*args)
    assert "warning" in loud.stderr and "error" in loud.stderr
    quiet = invoke("-q", "--log-file", log, *args)
    assert quiet.exit_code == 2
    assert quiet.stderr.splitlines() == [line for line in loud.stderr.splitlines() if line.startswith("stockstream: error")]
    logged = log.read_text()
    assert "WARNING stockstream: 2026-08-22 (Saturday) is not an ASX session" in logged
    assert "ERROR stockstream: no ASX list for 2026-08-22" in logged
    assert invoke("-q", "-v", "status").exit_code == 2


def test_shell_completion_works_without_click(tmp_path):
    import os
    import subprocess
    import sys

    script = "import sys; sys.modules['click'] = None; from stockstream_cli.cli import main; main()"
    env = {**os.environ, "_STOCKSTREAM_COMPLETE": "complete_bash", "COMP_WORDS": "stockstream load --fo",
           "COMP_CWORD": "2"}
    completed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert completed.stdout.split() == ["--format"], completed.stderr
    shown = subprocess.run([sys.executable, "-c", script, "--show-completion", "bash"], capture_output=True, text=True,
                           timeout=120, env={**os.environ, "SHELL": "/bin/bash"})
    assert shown.returncode == 0 and "complete -o default -F _stockstream_completion stockstream" in shown.stdout


def test_backfill_progress_labels_its_times_and_counts_failures(monkeypatch):
    from rich.console import Console

    from stockstream_cli.commands import backfill as backfill_command
    from stockstream_cli.commands import output

    console = Console(record=True, force_terminal=True, width=140)
    monkeypatch.setattr(output, "stderr_console", lambda: console)
    with backfill_command._backfill_progress(False) as observer:
        observer.started(3)
        observer.symbol_done("AAA", "not_found")
        observer.symbol_done("BHP", None)
        observer._progress.refresh()
    text = console.export_text()
    assert "2/3" in text and "1 failed" in text and "elapsed" in text and "left" in text


def test_a_resumed_backfill_does_not_name_every_skipped_symbol(tmp_path, fake_yahoo):
    codes = asx_codes(12)
    store = tmp_path / "data"
    build_day(store, DAY, codes)
    args = ["backfill", "--start", "2026-08-03", "--end", DAY.isoformat(), "--symbols", ",".join(codes),
            "--store", store]
    assert invoke(*args).exit_code == 0
    again = invoke(*args)
    assert again.exit_code == 0
    assert f"12 symbols already backfilled over 2026-08-03..{DAY}, skipped: {' '.join(codes[:10])} and 2 more" \
        in " ".join(again.stderr.split())
