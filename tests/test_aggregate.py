"""DataAggregator: the store read back, deduplicated, filtered with pruning, on both stores."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import polars as pl
import pytest

from storefactory import as_store, bar, bars, build_day, price, weekdays, write_batch
from stockstream_cli import DataAggregator, schema
from stockstream_cli.dataset.aggregate import data_files
from stockstream_cli.errors import CorruptFileError, InputError

MON, TUE, WED, THU, FRI = (dt.date(2026, 1, day) for day in (5, 6, 7, 8, 9))
SYMBOLS = ["AAA", "BHP", "CBA", "NAB", "WBC", "ZIP"]


@pytest.fixture
def two_days(tmp_path) -> Path:
    """Wednesday's run (version 0) and Thursday's (version 1), lookback 5: both hold Mon-Wed."""
    root = tmp_path / "data"
    build_day(root, WED, SYMBOLS, batch_size=2, version=0, fetch_timestamp="2026-01-07T08:00:00.000Z")
    build_day(root, THU, SYMBOLS, batch_size=2, version=1, fetch_timestamp="2026-01-08T08:00:00.000Z")
    return root


def closes(frame: pl.DataFrame) -> list[tuple[str, dt.date, float]]:
    return list(zip(frame["symbol"], frame["date"], frame["close"]))


# ------------------------------------------------------------------------------------------ dedupe and order


def test_overlapping_windows_give_one_row_per_symbol_and_date_newest_fetch_winning(two_days):
    frame = DataAggregator(str(two_days)).load()
    assert frame.schema == schema.polars_schema()
    assert frame.columns == list(schema.COLUMNS)
    assert frame.height == len(SYMBOLS) * 4  # Mon-Thu, each once
    expected = [(symbol, day, price(symbol, day, version=1)) for symbol in SYMBOLS for day in (MON, TUE, WED, THU)]
    assert closes(frame) == expected  # every row from Thursday's newer fetch, sorted by symbol then date
    assert set(frame["fetch_timestamp"]) == {"2026-01-08T08:00:00.000Z"}


def test_the_newest_timestamp_wins_not_the_newest_file(tmp_path):
    store = as_store(tmp_path)
    # Wednesday's file was rewritten later (a rerun) than Thursday's: its rows are the newer ones.
    write_batch(store, WED, 0, bars(["BHP"], [TUE, WED], version=2, fetch_timestamp="2026-01-09T01:00:00.000Z"))
    write_batch(store, THU, 0, bars(["BHP"], [TUE, WED, THU], version=1, fetch_timestamp="2026-01-08T08:00:00.000Z"))
    frame = DataAggregator(store).load_symbols(["BHP"])
    assert closes(frame) == [("BHP", TUE, price("BHP", TUE, 2)), ("BHP", WED, price("BHP", WED, 2)), ("BHP", THU, price("BHP", THU, 1))]


def test_timestamps_compare_as_instants_whatever_their_offset(tmp_path):
    store = as_store(tmp_path)
    # 19:00+11:00 is 08:00Z, earlier than 08:30Z although it sorts later as text.
    write_batch(store, WED, 0, [bar("BHP", WED, version=1, fetch_timestamp="2026-01-07T19:00:00+11:00")])
    write_batch(store, THU, 0, [bar("BHP", WED, version=2, fetch_timestamp="2026-01-07T08:30:00.000Z")])
    assert DataAggregator(store).load_date(WED)["close"].to_list() == [price("BHP", WED, 2)]


def test_duplicates_within_one_file_collapse_too(tmp_path):
    store = as_store(tmp_path)
    write_batch(store, WED, 0, [
        bar("BHP", WED, version=3, fetch_timestamp="2026-01-07T09:00:00.000Z"),
        bar("BHP", WED, version=1, fetch_timestamp="2026-01-07T08:00:00.000Z"),
    ])
    assert DataAggregator(store).load()["close"].to_list() == [price("BHP", WED, 3)]


# ------------------------------------------------------------------------------------------ the three methods


def test_load_date_takes_a_date_or_an_iso_string(two_days):
    aggregator = DataAggregator(str(two_days))
    by_date = aggregator.load_date(TUE)
    assert by_date.equals(aggregator.load_date("2026-01-06"))
    assert closes(by_date) == [(symbol, TUE, price(symbol, TUE, 1)) for symbol in SYMBOLS]


def test_load_date_range_includes_both_ends(two_days):
    frame = DataAggregator(str(two_days)).load_date_range("2026-01-06", WED)
    assert frame["date"].unique().sort().to_list() == [TUE, WED]
    assert frame.height == 2 * len(SYMBOLS)
    assert frame["symbol"].to_list() == sorted(frame["symbol"].to_list())


def test_load_symbols_with_and_without_dates(two_days):
    aggregator = DataAggregator(str(two_days))
    frame = aggregator.load_symbols(["CBA", "BHP"])
    assert closes(frame) == [(symbol, day, price(symbol, day, 1)) for symbol in ("BHP", "CBA") for day in (MON, TUE, WED, THU)]
    assert aggregator.load_symbols("BHP", start="2026-01-07")["date"].to_list() == [WED, THU]
    assert aggregator.load_symbols(["BHP,CBA"], end=MON)["symbol"].to_list() == ["BHP", "CBA"]
    assert aggregator.load_symbols(["XYZ"]).is_empty()


def test_a_day_without_data_is_an_empty_frame_in_the_schema(two_days):
    frame = DataAggregator(str(two_days)).load_date(FRI)
    assert frame.is_empty() and frame.schema == schema.polars_schema()


def test_an_empty_or_missing_store_is_an_empty_frame(tmp_path):
    frame = DataAggregator(str(tmp_path / "nothing-here")).load_symbols(["BHP"])
    assert frame.is_empty() and frame.schema == schema.polars_schema()


@pytest.mark.parametrize(
    "call",
    [
        lambda a: a.load_date("2026-13-01"),
        lambda a: a.load_date("yesterday"),
        lambda a: a.load_date(20260105),
        lambda a: a.load_date(None),
        lambda a: a.load_date_range("2026-01-08", "2026-01-05"),
        lambda a: a.load_symbols(["bhp.ax"]),
        lambda a: a.load_symbols([]),
        lambda a: a.load_symbols(None),
        lambda a: a.load(symbols=[]),
        lambda a: a.load_symbols(["BHP"], start="5/1/2026"),
    ],
    ids=["not-a-real-date", "words", "an-int", "none", "start-after-end", "bad-symbol", "no-symbols", "none-symbols", "load-no-symbols", "us-date"],
)
def test_bad_arguments_are_input_errors(two_days, call):
    with pytest.raises(InputError):
        call(DataAggregator(str(two_days)))


def test_the_store_can_be_named_several_ways(tmp_path, monkeypatch):
    assert DataAggregator(bucket="stock-stream-data").store.uri == "s3://stock-stream-data"
    assert DataAggregator(bucket="stock-stream-data", prefix="/prod/").store.uri == "s3://stock-stream-data/prod"
    assert DataAggregator("s3://stock-stream-data/prod").store.bucket == "stock-stream-data"
    assert DataAggregator(tmp_path).store.uri == str(tmp_path)
    monkeypatch.setenv("STOCKSTREAM_STORE", str(tmp_path / "from-env"))
    assert DataAggregator().store.uri == str(tmp_path / "from-env")
    with pytest.raises(InputError):
        DataAggregator("s3://a", bucket="b")
    with pytest.raises(InputError):
        DataAggregator("ftp://somewhere")


# ------------------------------------------------------------------------------------------ pruning


def test_files_are_pruned_by_the_last_date_their_key_allows():
    keys = [
        "raw-data/2026-01-05-batch-0.parquet",
        "raw-data/2026-01-07-batch-0.parquet",
        "raw-data/2026-01-07-batch-1.parquet",
        "raw-data/2026-01-08-batch-0.parquet",
        "raw-data/2020-01-01-backfill-0.parquet",  # what a backfill chunk holds is not in its key: kept
        "raw-data/notes.txt",
        "raw-data/2026-01-08-batch-x.parquet",
    ]
    assert data_files(keys) == sorted(keys[:5])
    assert data_files(keys, start=WED) == [keys[4], keys[1], keys[2], keys[3]]
    assert data_files(keys, start=FRI) == [keys[4]]
    # The start of a file's window is not in its key (lookback varies): the statistics handle `end`.
    assert data_files(keys, end=MON) == sorted(keys[:5])


@pytest.fixture
def many_files(tmp_path) -> Path:
    """Eight days of six batches of five symbols: 48 files, one row group each."""
    root = tmp_path / "many"
    universe = [f"{letter}{index:02d}" for letter in "ABCDEF" for index in range(5)]  # batch k: letter k
    universe[universe.index("B02")], universe[universe.index("C02")] = "BHP", "CBA"  # batches 1 and 2
    for offset in range(8):
        day = dt.date(2026, 2, 2) + dt.timedelta(days=offset)
        build_day(root, day, universe, batch_size=5, lookback_days=3, fetch_timestamp=f"{day}T08:00:00.000Z")
    return root


def row_groups_read(polars_log: str) -> list[int]:
    counts = re.findall(r"Predicate pushdown: reading (\d+) / \d+ row groups", polars_log)
    assert counts, "polars no longer logs its row-group pruning: update this test's probe"
    return [int(count) for count in counts]


def test_a_symbol_filter_reads_the_rows_of_only_the_files_holding_those_symbols(many_files, capfd, monkeypatch):
    from stockstream_cli.dataset import aggregate

    monkeypatch.setattr(aggregate, "INDEX_MIN_FILES", 0)  # 48 files: the index is what this test is about
    aggregator = DataAggregator(str(many_files))
    assert len(aggregator.data_files()) == 48
    capfd.readouterr()
    with pl.Config(verbose=True):
        frame = aggregator.load_symbols(["BHP", "CBA"])
    read = row_groups_read(capfd.readouterr().err)
    # Rows: BHP and CBA on every weekday the eight windows cover, each once.
    days = sorted({day for offset in range(8) for day in weekdays(dt.date(2026, 2, 2) + dt.timedelta(days=offset), 3)})
    assert closes(frame) == [(symbol, day, price(symbol, day)) for symbol in ("BHP", "CBA") for day in days]
    # Pruning: the footer index rules out the 32 files whose symbol range misses BHP and CBA, so polars
    # scans only the 2 batches x 8 days holding them, and reads the one row group of each.
    assert len(read) == 16
    assert sum(read) == 16


def test_a_date_filter_never_opens_files_from_before_the_start(many_files, capfd, monkeypatch):
    from stockstream_cli.dataset import aggregate

    monkeypatch.setattr(aggregate, "INDEX_MIN_FILES", 0)  # the index's date pruning, whatever the file count
    aggregator = DataAggregator(str(many_files))
    start = dt.date(2026, 2, 8)
    assert len(aggregator.data_files(start)) == 12  # 2026-02-08 and -09: 2 days x 6 batches
    capfd.readouterr()
    with pl.Config(verbose=True):
        frame = aggregator.load_date_range(start, "2026-02-09")
    read = row_groups_read(capfd.readouterr().err)
    # The 8th is a Sunday: its files hold Friday the 6th at the latest, so the footer index rules them out too.
    assert len(read) == 6
    assert frame["date"].unique().to_list() == [dt.date(2026, 2, 9)]  # the 8th is a Sunday
    assert frame.height == 30


def test_a_corrupt_file_before_the_start_is_never_opened(two_days):
    (two_days / "raw-data" / "2026-01-02-batch-0.parquet").write_bytes(b"not parquet")
    assert DataAggregator(str(two_days)).load_date(THU).height == len(SYMBOLS)


# ------------------------------------------------------------------------------------------ corrupt files


def _foreign(kind: str) -> bytes:
    import io

    good = pl.DataFrame([bar("BHP", WED)], schema=schema.polars_schema(), orient="row")
    frames = {
        "other-columns": pl.DataFrame({"ticker": ["BHP"], "px": [1.0]}),
        "wrong-type": good.with_columns(pl.col("volume").cast(pl.Float64)),
        "extra-column": good.with_columns(note=pl.lit("x")),
        "missing-column": good.drop("adjusted_close"),
    }
    buffer = io.BytesIO()
    frames[kind].write_parquet(buffer)
    return buffer.getvalue()


REASONS = {
    "not-parquet": "not a Parquet file",
    "empty": "not a Parquet file",
    "other-columns": "not the stockstream schema: missing columns symbol, date,",
    "wrong-type": "not the stockstream schema: volume is Float64, expected Int64",
    "extra-column": "not the stockstream schema: unexpected column note",
    "missing-column": "not the stockstream schema: missing column adjusted_close",
}


@pytest.mark.parametrize("content", list(REASONS))
@pytest.mark.parametrize("position", ["first", "last"])
def test_a_corrupt_or_foreign_file_is_named(two_days, content, position):
    day = MON if position == "first" else FRI
    key = f"raw-data/{day}-batch-0.parquet"
    raw = {"not-parquet": b"<html>Request Rejected</html>", "empty": b""}
    data = raw[content] if content in raw else _foreign(content)
    (two_days / key).write_bytes(data)
    with pytest.raises(CorruptFileError) as caught:
        DataAggregator(str(two_days)).load()
    assert caught.value.key == key
    assert key in str(caught.value) and "\n" not in str(caught.value)
    assert REASONS[content] in str(caught.value)


# ------------------------------------------------------------------------------------------ S3


def test_an_s3_store_reads_back_the_same_as_a_local_one(s3_bucket, tmp_path):
    local, remote = as_store(tmp_path), as_store(f"s3://{s3_bucket}/prod")
    for store in (local, remote):
        build_day(store, WED, SYMBOLS, batch_size=2, version=0, fetch_timestamp="2026-01-07T08:00:00.000Z")
        build_day(store, THU, SYMBOLS, batch_size=2, version=1, fetch_timestamp="2026-01-08T08:00:00.000Z")
    from_s3 = DataAggregator(f"s3://{s3_bucket}/prod")
    assert from_s3.data_files() == DataAggregator(local).data_files()
    frame = from_s3.load_symbols(["BHP", "CBA"], start=TUE)
    assert frame.equals(DataAggregator(local).load_symbols(["BHP", "CBA"], start=TUE))
    assert closes(frame) == [(symbol, day, price(symbol, day, 1)) for symbol in ("BHP", "CBA") for day in (TUE, WED, THU)]
    assert DataAggregator(bucket=s3_bucket, prefix="prod").load_date(MON).height == len(SYMBOLS)
    assert DataAggregator(bucket=s3_bucket, prefix="elsewhere").load().is_empty()


def test_a_corrupt_file_on_s3_is_named(s3_bucket):
    store = as_store(f"s3://{s3_bucket}")
    build_day(store, WED, SYMBOLS, batch_size=3)
    store.put("raw-data/2026-01-08-batch-0.parquet", b"PAR1 truncated")
    with pytest.raises(CorruptFileError, match="raw-data/2026-01-08-batch-0.parquet"):
        DataAggregator(f"s3://{s3_bucket}").load_symbols(["BHP"])
