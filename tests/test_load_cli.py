"""`stockstream load`: every format and filter, local and S3 stores, bad input, corrupt files, a real process."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import stat
from pathlib import Path

import polars as pl
import pytest

from helpers import run_stockstream, runner
from storefactory import as_store, build_day, price
from stockstream_cli import DataAggregator, schema
from stockstream_cli.cli import app

MON, TUE, WED, THU = (dt.date(2026, 1, day) for day in (5, 6, 7, 8))
SYMBOLS = ["AAA", "BHP", "CBA", "NAB", "WBC", "ZIP"]
FORMATS = ["table", "csv", "json", "parquet"]


def fill(store) -> None:
    """Wednesday's run and Thursday's newer one, overlapping Mon-Wed: the reader must keep Thursday's rows."""
    build_day(store, WED, SYMBOLS, batch_size=2, version=0, fetch_timestamp="2026-01-07T08:00:00.000Z")
    build_day(store, THU, SYMBOLS, batch_size=2, version=1, fetch_timestamp="2026-01-08T08:00:00.000Z")


@pytest.fixture
def local_store(tmp_path) -> str:
    root = tmp_path / "data"
    fill(as_store(root))
    return str(root)


@pytest.fixture
def s3_store(s3_bucket) -> str:
    uri = f"s3://{s3_bucket}/prod"
    fill(as_store(uri))
    return uri


def expected_rows(symbols=("BHP", "CBA"), days=(MON, TUE, WED, THU)) -> list[tuple[str, str, float]]:
    return [(symbol, day.isoformat(), price(symbol, day, version=1)) for symbol in symbols for day in days]


def load(*args: str):
    return runner.invoke(app, ["load", *args])


def rows_of(output_format: str, stdout: str, output: Path | None) -> list[tuple[str, str, float]]:
    """(symbol, ISO date, close) of every row, whatever the format."""
    if output_format == "csv":
        reader = csv.DictReader(io.StringIO(stdout))
        assert tuple(reader.fieldnames) == schema.COLUMNS
        return [(row["symbol"], row["date"], float(row["close"])) for row in reader]
    if output_format == "json":
        document = json.loads(stdout)
        assert isinstance(document, list) and all(list(row) == list(schema.COLUMNS) for row in document)
        return [(row["symbol"], row["date"], row["close"]) for row in document]
    if output_format == "parquet":
        frame = pl.read_parquet(output)
        assert frame.schema == schema.polars_schema()
        return [(s, d.isoformat(), c) for s, d, c in zip(frame["symbol"], frame["date"], frame["close"])]
    lines = [line.split() for line in stdout.splitlines() if line.strip().startswith(("BHP", "CBA", "AAA", "NAB", "WBC", "ZIP"))]
    return [(cells[0], cells[1], float(cells[5])) for cells in lines]


# ------------------------------------------------------------------------------------------ formats and stores


@pytest.mark.parametrize("output_format", FORMATS)
@pytest.mark.parametrize("which", ["local", "s3"])
def test_symbols_bhp_cba_in_every_format_from_both_stores(request, tmp_path, which, output_format):
    store = request.getfixturevalue(f"{which}_store")
    args = ["--symbols", "BHP", "CBA", "--store", store, "--format", output_format]
    output = tmp_path / "out.parquet" if output_format == "parquet" else None
    if output:
        args += ["--output", str(output)]
    result = load(*args)
    assert result.exit_code == 0, result.output
    assert rows_of(output_format, result.stdout, output) == expected_rows()
    if output_format == "table":
        assert "8 rows" in result.stdout


def test_json_rows_carry_every_column_with_iso_dates(local_store):
    result = load("--symbols", "BHP", "--date", "2026-01-06", "--store", local_store, "--format", "json")
    assert json.loads(result.stdout) == [{
        "symbol": "BHP",
        "date": "2026-01-06",
        "open": round(price("BHP", TUE, 1) - 0.1, 3),
        "high": round(price("BHP", TUE, 1) + 0.5, 3),
        "low": round(price("BHP", TUE, 1) - 0.5, 3),
        "close": price("BHP", TUE, 1),
        "volume": 7003,
        "adjusted_close": round(price("BHP", TUE, 1) * 0.9, 4),
        "fetch_timestamp": "2026-01-08T08:00:00.000Z",
        "batch_number": 0,
    }]


def test_the_environment_names_the_store(local_store, monkeypatch):
    monkeypatch.setenv("STOCKSTREAM_STORE", local_store)
    result = load("--symbols", "CBA", "--date", "2026-01-05", "--format", "csv")
    assert rows_of("csv", result.stdout, None) == expected_rows(("CBA",), (MON,))


# ------------------------------------------------------------------------------------------ filters


@pytest.mark.parametrize(
    "filters, symbols, days",
    [
        ([], SYMBOLS, (MON, TUE, WED, THU)),
        (["--date", "2026-01-07"], SYMBOLS, (WED,)),
        (["--start", "2026-01-06", "--end", "2026-01-07"], SYMBOLS, (TUE, WED)),
        (["--start", "2026-01-07"], SYMBOLS, (WED, THU)),
        (["--end", "2026-01-05"], SYMBOLS, (MON,)),
        (["--symbols", "ZIP,AAA", "--start", "2026-01-08", "--end", "2026-01-08"], ("AAA", "ZIP"), (THU,)),
        (["--symbols", "NAB", "--symbols", "BHP", "--end", "2026-01-06"], ("BHP", "NAB"), (MON, TUE)),
    ],
    ids=["everything", "date", "range", "start-only", "end-only", "comma-symbols-and-day", "repeated-flag"],
)
def test_filters(local_store, filters, symbols, days):
    result = load(*filters, "--store", local_store, "--format", "csv")
    assert result.exit_code == 0, result.output
    assert rows_of("csv", result.stdout, None) == expected_rows(symbols, days)


# ------------------------------------------------------------------------------------------ --output


@pytest.mark.parametrize("suffix, output_format", [(".csv", "csv"), (".json", "json"), (".parquet", "parquet"), (".pq", "parquet")])
def test_output_infers_the_format_from_the_suffix_and_leaves_no_temporary_file(local_store, tmp_path, suffix, output_format):
    output = tmp_path / "out" / f"prices{suffix}"
    output.parent.mkdir()
    result = load("--symbols", "BHP", "CBA", "--store", local_store, "--output", str(output))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "wrote 8 rows" in result.stderr
    text = "" if output_format == "parquet" else output.read_text()
    assert rows_of(output_format, text, output) == expected_rows()
    assert [path.name for path in output.parent.iterdir()] == [output.name]


def test_output_gets_the_mode_open_gives_a_new_file_not_the_temporary_files_private_one(local_store, tmp_path):
    output = tmp_path / "prices.csv"
    assert load("--symbols", "BHP", "--store", local_store, "--output", str(output)).exit_code == 0
    reference = tmp_path / "made-by-open"
    reference.write_text("")
    assert stat.S_IMODE(output.stat().st_mode) == stat.S_IMODE(reference.stat().st_mode) != 0o600


def test_output_replaces_an_existing_file(local_store, tmp_path):
    output = tmp_path / "prices.csv"
    output.write_text("old content\n")
    assert load("--symbols", "BHP", "--store", local_store, "-o", str(output)).exit_code == 0
    assert output.read_text().startswith(",".join(schema.COLUMNS))


def test_output_writes_into_a_fifo_and_leaves_it_a_fifo(local_store, tmp_path):
    import os
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    result = load("--symbols", "BHP", "--store", local_store, "--format", "csv", "-o", str(fifo))
    reader.join(timeout=60)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert received[0].decode().splitlines()[0] == ",".join(schema.COLUMNS)
    assert len(received[0].decode().splitlines()) == 1 + 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "pipe"]  # no temporary file beside it


def _device(path: Path, minor: int) -> Path:
    import os

    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))  # as root: the kernel's memory devices
    return path


def test_output_writes_into_a_character_device_and_never_replaces_it(local_store, tmp_path):
    null = _device(tmp_path / "null", 3)  # /dev/null's numbers
    result = load("--symbols", "BHP", "--store", local_store, "--format", "json", "-o", str(null))
    assert result.exit_code == 0, result.output
    assert stat.S_ISCHR(null.lstat().st_mode) and null.lstat().st_rdev == __import__("os").makedev(1, 3)
    # /dev/full's numbers: every write fails with ENOSPC, so the rows went into the device, not beside it
    full = _device(tmp_path / "full", 7)
    refused = load("--symbols", "BHP", "--store", local_store, "--format", "csv", "-o", str(full))
    assert refused.exit_code == 1
    assert f"cannot write {full}: No space left on device" in refused.stderr
    assert stat.S_ISCHR(full.lstat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "full", "null"]


def test_actions_output_never_replaces_a_device_either(local_store, tmp_path):
    null = _device(tmp_path / "null", 3)
    result = runner.invoke(app, ["actions", "--store", local_store, "--format", "csv", "-o", str(null)])
    assert result.exit_code == 0, result.output
    assert stat.S_ISCHR(null.lstat().st_mode)


@pytest.mark.parametrize("output_format", ["csv", "json", "table"])
def test_output_dash_is_stdout(local_store, tmp_path, output_format):
    result = load("--symbols", "BHP", "CBA", "--store", local_store, "--format", output_format, "-o", "-")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "-").exists() and not Path("-").exists()
    if output_format == "table":
        assert "BHP" in result.stdout and "8 rows" in result.stdout
    else:
        assert rows_of(output_format, result.stdout, None) == expected_rows()


def test_output_dash_takes_parquet_to_stdout(local_store):
    result = load("--symbols", "BHP", "CBA", "--store", local_store, "--format", "parquet", "-o", "-")
    assert result.exit_code == 0, result.output
    frame = pl.read_parquet(io.BytesIO(result.stdout_bytes))
    assert sorted(zip(frame["symbol"], frame["date"].cast(str))) == [(s, d) for s, d, _ in expected_rows()]


def test_output_through_a_link_replaces_its_target_and_keeps_the_link(local_store, tmp_path):
    target = tmp_path / "prices.csv"
    target.write_text("old\n")
    link = tmp_path / "latest.csv"
    link.symlink_to(target)
    assert load("--symbols", "BHP", "--store", local_store, "-o", str(link)).exit_code == 0
    assert link.is_symlink() and target.read_text().startswith(",".join(schema.COLUMNS))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "parquet"], "--format parquet writes a file"),
        (["--format", "table", "--output", "{tmp}/x.csv"], "--format table is for the screen"),
        (["--output", "{tmp}/x.txt"], "cannot tell the format"),
        (["--output", "{tmp}/no-such-folder/x.csv"], "does not exist"),
        (["--output", "{tmp}"], "is a folder"),
        (["--date", "2026-01-05", "--start", "2026-01-05"], "one or the other"),
        (["--date", "2026-01-05", "--end", "2026-01-06"], "one or the other"),
        (["--start", "2026-01-08", "--end", "2026-01-05"], "after --end"),
        (["--date", "05/01/2026"], "not a date"),
        (["--start", "2026-02-30"], "not a real date"),
        (["--symbols", "BHP.AX"], "without the .AX suffix"),
        (["--store", "ftp://x"], "unknown scheme"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(local_store, tmp_path, args, message):
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    if "--store" not in args:
        args += ["--store", local_store]
    before = sorted(tmp_path.rglob("*"))
    result = load(*args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert result.stdout == ""
    assert sorted(tmp_path.rglob("*")) == before


def test_an_unknown_format_is_a_usage_error(local_store):
    result = load("--format", "xlsx", "--store", local_store)
    assert result.exit_code == 2
    assert "xlsx" in result.stderr


# ------------------------------------------------------------------------------------------ empty results


@pytest.mark.parametrize("output_format, expected", [("csv", ",".join(schema.COLUMNS) + "\n"), ("json", "[]\n")])
def test_an_empty_result_is_a_header_or_an_empty_array_and_a_note(local_store, output_format, expected):
    result = load("--symbols", "XYZ", "--store", local_store, "--format", output_format)
    assert result.exit_code == 0
    assert result.stdout == expected
    assert "no rows for symbols XYZ" in result.stderr
    assert "daily files of 2 days (2026-01-07 to 2026-01-08)" in result.stderr


def test_an_empty_result_as_a_table_and_as_parquet(local_store, tmp_path):
    result = load("--date", "2026-01-09", "--store", local_store)
    assert result.exit_code == 0
    assert "0 rows" in result.stdout and "symbol" in result.stdout
    assert "no rows for date 2026-01-09" in result.stderr
    output = tmp_path / "empty.parquet"
    assert load("--date", "2026-01-09", "--store", local_store, "-o", str(output)).exit_code == 0
    assert pl.read_parquet(output).schema == schema.polars_schema()


def test_an_empty_store_says_so(tmp_path):
    (tmp_path / "new").mkdir()
    result = load("--store", str(tmp_path / "new"), "--format", "json")
    assert (result.exit_code, result.stdout) == (0, "[]\n")
    assert "holds no data files yet" in result.stderr


# ------------------------------------------------------------------------------------------ the table


def test_a_big_table_is_truncated_and_says_how_many_rows_are_hidden(tmp_path):
    universe = [f"A{index:02d}" for index in range(20)]
    build_day(tmp_path, WED, universe, batch_size=10)  # 20 symbols x Mon-Wed = 60 rows
    result = load("--store", str(tmp_path))
    assert result.exit_code == 0
    shown = [line.split()[0] for line in result.stdout.splitlines() if line.strip().startswith("A")]
    assert len(shown) == 30  # the first 20 and the last 10
    assert shown[0] == "A00" and shown[-1] == "A19"
    assert "60 rows, 30 of them hidden (--format csv or --output FILE gives everything)" in result.stdout


@pytest.mark.parametrize(
    "width, left_out",
    [(160, []), (115, ["batch_number"]), (95, ["batch_number", "fetch_timestamp"]),
     (40, ["open", "high", "low", "volume", "adjusted_close", "fetch_timestamp", "batch_number"])],
)
def test_a_narrow_terminal_leaves_out_columns_and_says_which(local_store, monkeypatch, width, left_out):
    import stockstream_cli.commands.output

    monkeypatch.setattr(stockstream_cli.commands.output, "stdout_width", lambda minimum: width)
    result = load("--symbols", "BHP", "--store", local_store)
    header = next(line for line in result.stdout.splitlines() if "symbol" in line).split()
    assert header == [name for name in schema.COLUMNS if name not in left_out]
    assert all(len(line) <= width for line in result.stdout.splitlines())
    if left_out:
        assert f"columns not shown: {', '.join(name for name in schema.COLUMNS if name in left_out)}" in " ".join(result.stdout.split())


# ------------------------------------------------------------------------------------------ corrupt files


def test_a_corrupt_file_exits_1_naming_it(local_store):
    key = "raw-data/2026-01-08-batch-1.parquet"
    (Path(local_store) / key).write_bytes(b"<html>Request Rejected</html>")
    result = load("--symbols", "BHP", "CBA", "--store", local_store)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert key in result.stderr and result.stderr.startswith("stockstream: error: corrupt or foreign file")


# ------------------------------------------------------------------------------------------ a real process


def test_a_real_process_from_a_local_store(local_store, tmp_path):
    result = run_stockstream("load", "--symbols", "BHP", "CBA", "--store", local_store, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert rows_of("json", result.stdout, None) == expected_rows()
    table = run_stockstream("load", "--symbols", "BHP", "CBA", "--store", local_store)
    assert rows_of("table", table.stdout, None) == expected_rows()
    corrupt = Path(local_store) / "raw-data/2026-01-07-batch-0.parquet"
    corrupt.write_bytes(b"PAR1")
    failed = run_stockstream("load", "--store", local_store, "--format", "csv")
    assert failed.returncode == 1 and failed.stdout == ""
    [line] = failed.stderr.strip().splitlines()
    ours = "stockstream: error: corrupt or foreign file in the store: raw-data/2026-01-07-batch-0.parquet (not a Parquet file: "
    assert line.startswith(ours)
    # the reason is polars' own words (polars 1.32 writes "A parquet file", later versions "A Parquet file")
    assert line[len(ours):].lower() == "parquet: file out of specification: a parquet file must contain a header and footer with at least 12 bytes)"


def test_a_real_process_from_an_s3_store(s3_store, tmp_path):
    output = tmp_path / "bhp-cba.parquet"
    result = run_stockstream("load", "--symbols", "BHP", "CBA", "--store", s3_store, "--output", str(output))
    assert result.returncode == 0, result.stderr
    assert pl.read_parquet(output).equals(DataAggregator(s3_store).load_symbols(["BHP", "CBA"]))
    assert rows_of("parquet", "", output) == expected_rows()
