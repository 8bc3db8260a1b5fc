"""The footer index: filtered loads scan only the files whose statistics can match, with answers unchanged,
and the index is reused, never stale, and never in the way (corrupt, missing or unwritable)."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import polars as pl
import pytest

from storefactory import as_store, bar, bars, build_day, parquet_bytes, price, write_batch
from stockstream_cli import DataAggregator, schema
from stockstream_cli.dataset import layout
from stockstream_cli.dataset import file_index
from stockstream_cli.dataset.aggregate import _predicate, data_files
from stockstream_cli.dataset.compact import compact
from stockstream_cli.errors import CorruptFileError
from stockstream_cli.dataset.file_index import UNKNOWN, FileIndex, may_match

UNIVERSE = [f"{letter}{index:02d}" for letter in "ABCD" for index in range(4)] + ["BHP", "CBA"]
FIRST = dt.date(2026, 1, 26)
DAYS = [FIRST + dt.timedelta(days=offset) for offset in range(12)]  # into February: a compactable January



@pytest.fixture(autouse=True)
def index_every_store(monkeypatch):
    """These stores are small; the index is what is tested, so it is consulted whatever the file count."""
    from stockstream_cli.dataset import aggregate

    monkeypatch.setattr(aggregate, "INDEX_MIN_FILES", 0)


def build_store(store) -> None:
    """Twelve days of 5-symbol batches (lookback 3), a rerun of one day with newer prices, a backfill."""
    for day in DAYS:
        build_day(store, day, UNIVERSE, batch_size=5, lookback_days=3, fetch_timestamp=f"{day}T08:00:00.000Z")
    rerun = dt.date(2026, 1, 28)
    write_batch(store, rerun, 1, bars(["BHP", "C00"], [rerun - dt.timedelta(days=1), rerun], version=2,
                                     fetch_timestamp="2026-02-10T01:00:00.000Z"))
    store.put(layout.backfill_data_key(dt.date(2026, 2, 6), 0),
              parquet_bytes(bars(["BHP", "ZZZ"], [dt.date(2025, 12, 1), dt.date(2025, 12, 2)], version=3,
                                 fetch_timestamp="2026-02-06T09:00:00.000Z")))


QUERIES = [
    dict(symbols=["BHP", "CBA"]),
    dict(symbols=["BHP"], start="2026-01-28", end="2026-01-30"),
    dict(symbols=["A00", "D03", "ZZZ"]),
    dict(symbols=["CBA"], end="2026-01-27"),
    dict(symbols=["QQQ"]),
    dict(start="2026-02-02"),
    dict(start="2025-12-01", end="2025-12-31"),
    dict(start="2026-01-29", end="2026-01-29"),
    dict(end="2026-01-26"),
    dict(start="2027-01-01"),
]


def unpruned(aggregator: DataAggregator, *, newest: bool, symbols=None, start=None, end=None) -> pl.DataFrame:
    """The query over every data file of the store, nothing pruned: what a load returned before the index."""
    every_file = data_files(aggregator.store.list(layout.RAW_DATA_PREFIX))
    start = None if start is None else dt.date.fromisoformat(start)
    end = None if end is None else dt.date.fromisoformat(end)
    return aggregator._collect(every_file, _predicate(symbols, start, end), newest=newest)


@pytest.fixture
def store(store):
    build_store(store)
    return store


@pytest.fixture
def footer_reads(monkeypatch) -> list[str]:
    """The keys whose footers are read, in order."""
    keys: list[str] = []
    real = file_index.read_footer

    def counting(store, key):
        keys.append(key)
        return real(store, key)

    monkeypatch.setattr(file_index, "read_footer", counting)
    return keys


def index_path(store) -> Path:
    return FileIndex(store).path


def stored_entries(store) -> dict[str, list]:
    return json.loads(index_path(store).read_bytes())["files"]


def loaded(aggregator: DataAggregator, query: dict, *, newest: bool = True) -> pl.DataFrame:
    method = aggregator.load if newest else aggregator.load_fetches
    return method(query.get("symbols"), start=query.get("start"), end=query.get("end"))


# ------------------------------------------------------------------------------------------ same answers


@pytest.mark.parametrize("newest", [True, False], ids=["load", "load_fetches"])
def test_every_query_returns_what_a_scan_of_every_file_returns(store, newest):
    aggregator = DataAggregator(store)
    for query in QUERIES:
        expected = unpruned(aggregator, newest=newest, **query)
        assert loaded(aggregator, query, newest=newest).equals(expected), query
        assert loaded(DataAggregator(store), query, newest=newest).equals(expected), query  # index from disk


def test_the_newest_fetch_still_wins_across_files_and_the_pruning_is_real(store, footer_reads):
    aggregator = DataAggregator(store)
    frame = aggregator.load_symbols(["BHP"], start="2026-01-27", end="2026-01-28")
    assert list(zip(frame["date"], frame["close"])) == [(dt.date(2026, 1, 27), price("BHP", dt.date(2026, 1, 27), 2)),
                                                        (dt.date(2026, 1, 28), price("BHP", dt.date(2026, 1, 28), 2))]
    kept = aggregator._matching_files(["BHP"], dt.date(2026, 1, 27), dt.date(2026, 1, 28))
    # BHP is in batch 1 (B01-C00); the days whose 3-day window reaches the 27th or 28th: the 27th to the 30th.
    assert kept == [f"raw-data/2026-01-{day}-batch-1.parquet" for day in (27, 28, 29, 30)]


def test_load_date_and_load_date_range_use_the_index_too(store, footer_reads):
    aggregator = DataAggregator(store)
    assert aggregator.load_date("2026-01-29").equals(unpruned(aggregator, newest=True, start="2026-01-29",
                                                              end="2026-01-29"))
    assert len(footer_reads) == len(aggregator.data_files(dt.date(2026, 1, 29)))
    frame = aggregator.load_date_range("2026-01-29", "2026-01-30")
    assert sorted(set(frame["date"])) == [dt.date(2026, 1, 29), dt.date(2026, 1, 30)]
    assert len(footer_reads) == len(aggregator.data_files(dt.date(2026, 1, 29)))  # nothing new to read


def test_a_query_without_filters_needs_no_index(store, footer_reads):
    aggregator = DataAggregator(store)
    assert aggregator.load().equals(unpruned(aggregator, newest=True))
    assert footer_reads == []
    assert not (Path(os.environ["STOCKSTREAM_CACHE_DIR"]) / "file-index").exists()


# ------------------------------------------------------------------------------------------ never stale


def test_the_index_is_read_once_then_reused_and_a_rewritten_file_is_read_again(store, footer_reads):
    everything = data_files(store.list(layout.RAW_DATA_PREFIX))
    DataAggregator(store).load_symbols(["BHP", "CBA"])
    assert sorted(footer_reads) == everything
    footer_reads.clear()
    DataAggregator(store).load_symbols(["BHP", "CBA"])  # a new process, as far as the index is concerned
    assert footer_reads == []

    rewritten = layout.batch_data_key(dt.date(2026, 2, 2), 0)
    store.put(rewritten, parquet_bytes(bars(["CBA"], [dt.date(2026, 2, 2)], version=7,
                                            fetch_timestamp="2026-02-09T08:00:00.000Z")))
    frame = DataAggregator(store).load_symbols(["CBA"], start="2026-02-02", end="2026-02-02")
    assert footer_reads == [rewritten]
    assert frame["close"].to_list() == [price("CBA", dt.date(2026, 2, 2), 7)]


def test_a_file_rewritten_with_the_same_size_is_read_again(store, footer_reads):
    key = layout.batch_data_key(dt.date(2026, 2, 3), 0)
    days = [dt.date(2026, 2, 2), dt.date(2026, 2, 3)]
    newer = bars(["BHP"], days, version=5, fetch_timestamp="2026-02-09T08:00:00.000Z")
    with_bhp = parquet_bytes(newer)
    with_cba = parquet_bytes([{**row, "symbol": "CBA"} for row in newer])
    assert len(with_bhp) == len(with_cba)  # the premise: only the inode and mtime tell the versions apart
    store.put(key, with_bhp)
    aggregator = DataAggregator(store)
    assert aggregator.load_symbols(["CBA"], start="2026-02-03").filter(pl.col("close") > 5000).is_empty()
    footer_reads.clear()
    store.put(key, with_cba)
    frame = aggregator.load_symbols(["CBA"], start="2026-02-03")
    assert footer_reads == [key]
    assert frame.filter(pl.col("close") > 5000)["close"].to_list() == [price("BHP", dt.date(2026, 2, 3), 5)]
    assert stored_entries(store)[key][1:3] == ["CBA", "CBA"]


def test_a_deleted_file_leaves_the_index(store, footer_reads):
    aggregator = DataAggregator(store)
    aggregator.load_symbols(["BHP"])
    gone = layout.batch_data_key(dt.date(2026, 1, 28), 1)
    assert gone in stored_entries(store)
    store.delete(gone)
    frame = aggregator.load_symbols(["BHP"])
    assert gone not in stored_entries(store)
    assert frame.equals(unpruned(aggregator, newest=True, symbols=["BHP"]))
    assert frame.filter(pl.col("date") == dt.date(2026, 1, 28))["close"].to_list() == [
        price("BHP", dt.date(2026, 1, 28))]  # the rerun's newer row went with its file


# ------------------------------------------------------------------------------------------ never in the way


def test_a_corrupt_index_file_is_ignored_and_rebuilt(store, footer_reads):
    aggregator = DataAggregator(store)
    expected = aggregator.load_symbols(["BHP", "CBA"])
    every = len(footer_reads)
    for garbage in (b"{not json", b'{"format": 1, "store": 3, "files": []}', b"[]", b'{"format": 1}', b""):
        index_path(store).write_bytes(garbage)
        footer_reads.clear()
        assert DataAggregator(store).load_symbols(["BHP", "CBA"]).equals(expected)
        assert len(footer_reads) == every
        assert len(stored_entries(store)) == every


def test_broken_entries_are_read_again(store, footer_reads):
    DataAggregator(store).load_symbols(["BHP"])
    document = json.loads(index_path(store).read_bytes())
    key = layout.batch_data_key(dt.date(2026, 1, 30), 3)
    document["files"][key] = ["token", 5]
    index_path(store).write_text(json.dumps(document))
    footer_reads.clear()
    DataAggregator(store).load_symbols(["BHP"])
    assert footer_reads == [key]


def test_an_unwritable_cache_folder_still_gives_right_answers(store, footer_reads, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("STOCKSTREAM_CACHE_DIR", str(blocker))
    for _ in range(2):
        footer_reads.clear()
        frame = DataAggregator(store).load_symbols(["BHP", "CBA"])
        assert frame.equals(unpruned(DataAggregator(store), newest=True, symbols=["BHP", "CBA"]))
        assert sorted(footer_reads) == data_files(store.list(layout.RAW_DATA_PREFIX))  # cold every time
    assert blocker.read_text() == "a file where the cache folder should be"


def test_the_index_lives_in_the_cache_folder_not_in_the_store(store, tmp_path):
    before = store.list()
    DataAggregator(store).load_symbols(["BHP"])
    assert store.list() == before
    assert index_path(store).parent == Path(os.environ["STOCKSTREAM_CACHE_DIR"]) / "file-index"
    assert [p.name for p in index_path(store).parent.iterdir()] == [index_path(store).name]  # no temporary file left
    entry = stored_entries(store)[layout.batch_data_key(dt.date(2026, 1, 30), 1)]
    status = os.stat(store.polars_path(layout.batch_data_key(dt.date(2026, 1, 30), 1)))
    assert entry == [f"{status.st_size}-{status.st_mtime_ns}-{status.st_ino}", "B01", "C00", "2026-01-28", "2026-01-30"]


def test_without_a_cache_setting_the_index_goes_to_the_user_cache_or_tmp_on_lambda(monkeypatch, tmp_path):
    monkeypatch.delenv("STOCKSTREAM_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert file_index.index_folder() == tmp_path / "xdg" / "stockstream" / "file-index"
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "stock-data-fetcher")
    assert file_index.index_folder() == Path("/tmp/stockstream-cache/file-index")  # the deployed functions' too
    monkeypatch.setenv("STOCKSTREAM_CACHE_DIR", str(tmp_path / "mine"))
    assert file_index.index_folder() == tmp_path / "mine" / "file-index"


def test_two_stores_keep_two_indexes(tmp_path):
    for name, symbol in (("one", "BHP"), ("two", "CBA")):
        write_batch(as_store(tmp_path / name), dt.date(2026, 1, 5), 0, [bar(symbol, dt.date(2026, 1, 5))])
    assert DataAggregator(str(tmp_path / "one")).load_symbols(["CBA"]).is_empty()
    assert DataAggregator(str(tmp_path / "two")).load_symbols(["CBA"])["symbol"].to_list() == ["CBA"]
    assert len(list((Path(os.environ["STOCKSTREAM_CACHE_DIR"]) / "file-index").glob("*.json"))) == 2


# ------------------------------------------------------------------------------------------ what is never pruned


def test_a_file_without_statistics_is_never_pruned(tmp_path, footer_reads):
    store = as_store(tmp_path / "data")
    key = layout.batch_data_key(dt.date(2026, 1, 5), 0)
    Path(store.polars_path(key)).parent.mkdir(parents=True)
    frame = pl.DataFrame([bar("BHP", dt.date(2026, 1, 5))], schema=schema.polars_schema(), orient="row")
    frame.write_parquet(store.polars_path(key), statistics=False)
    assert FileIndex(store).ranges([key], store.list_versions(layout.RAW_DATA_PREFIX)) == {key: UNKNOWN}
    assert DataAggregator(store).load_symbols(["BHP"], start="2026-01-05")["symbol"].to_list() == ["BHP"]
    assert DataAggregator(store).load_symbols(["CBA"]).is_empty()


def test_a_corrupt_file_is_not_pruned_so_it_is_still_named(store, footer_reads):
    key = layout.batch_data_key(dt.date(2026, 2, 3), 0)
    store.put(key, b"PAR1 truncated")
    for _ in range(2):  # an unreadable footer is not remembered: read again, and named again
        with pytest.raises(CorruptFileError) as caught:
            DataAggregator(store).load_symbols(["BHP"])
        assert caught.value.key == key
    assert footer_reads.count(key) == 2
    assert key not in stored_entries(store)


def test_a_foreign_file_whose_statistics_miss_the_filter_is_still_named(store):
    key = layout.batch_data_key(dt.date(2026, 2, 3), 0)
    foreign = pl.DataFrame([bar("ZZZ", dt.date(2026, 2, 3))]).with_columns(pl.col("volume").cast(pl.Float64))
    foreign.write_parquet(store.polars_path(key))
    with pytest.raises(CorruptFileError, match="volume is Float64, expected Int64") as caught:
        DataAggregator(store).load_symbols(["BHP"])  # as before the index: polars refuses it, filter or not
    assert caught.value.key == key


def test_a_footer_longer_than_the_first_read_takes_a_second(store, footer_reads, monkeypatch):
    monkeypatch.setattr(file_index, "TAIL_BYTES", 64)
    key = layout.batch_data_key(dt.date(2026, 1, 30), 1)
    ranges = FileIndex(store).ranges([key], store.list_versions(layout.RAW_DATA_PREFIX))
    assert ranges == {key: ("B01", "C00", "2026-01-28", "2026-01-30")}


def test_backfill_files_go_through_the_index_and_compacted_months_to_polars(store, footer_reads):
    """Locally a compacted month (every symbol of a month) is never read by the index: polars reads its footer
    and skips its row groups itself. The answers are those of a scan of every file, under every filter."""
    compact(store, months=["2026-01"], today=dt.date(2026, 2, 10))
    aggregator = DataAggregator(store)
    compacted = layout.compacted_data_key("2026-01")
    assert compacted in aggregator.data_files()
    for query in QUERIES:
        assert aggregator.load(query.get("symbols"), start=query.get("start"), end=query.get("end")).equals(
            unpruned(aggregator, newest=True, **query)), query
    backfill = layout.backfill_data_key(dt.date(2026, 2, 6), 0)
    assert stored_entries(store)[backfill][1:] == ["BHP", "ZZZ", "2025-12-01", "2025-12-02"]
    assert compacted not in stored_entries(store) and compacted not in footer_reads and footer_reads
    # CBA is in batch 2; the backfill's range (BHP-ZZZ) holds it too; the month is left to polars.
    february = [layout.batch_data_key(day, 2) for day in DAYS if day.month == 2]
    assert aggregator._matching_files(["CBA"], None, None) == sorted(february + [backfill]) + [compacted]
    assert aggregator._matching_files(None, dt.date(2025, 12, 2), dt.date(2025, 12, 31)) == [backfill, compacted]
    before = aggregator.load_symbols(["BHP"], end="2026-01-20")
    assert before.equals(unpruned(aggregator, newest=True, symbols=["BHP"], end="2026-01-20")) and before.height == 2


def test_may_match_rules_a_file_out_only_when_its_ranges_say_so():
    ranges = ("BHP", "CBA", "2026-01-05", "2026-01-09")
    assert may_match(ranges, ["BHP"], None, None) and may_match(ranges, ["AAA", "BZZ"], None, None)
    assert not may_match(ranges, ["AAA", "CBB", "ZZZ"], None, None)
    assert may_match(ranges, None, "2026-01-09", "2026-01-09") and may_match(ranges, None, None, "2026-01-05")
    assert not may_match(ranges, None, "2026-01-10", None) and not may_match(ranges, None, None, "2026-01-04")
    assert may_match(UNKNOWN, ["ZZZ"], "2030-01-01", "2030-01-01")
    assert may_match((None, None, "2026-01-05", "2026-01-09"), ["ZZZ"], None, None)


# ------------------------------------------------------------------------------------------ S3


def test_on_s3_the_index_learns_from_the_files_it_reads_and_is_kept_current(s3_bucket, tmp_path, footer_reads,
                                                                             monkeypatch):
    """On S3 no footer is read for the index (a request each, as a small file whole): the files a query reads
    teach it their ranges, so the next query skips those that cannot match; a rewritten file is read again."""
    from stockstream_cli.dataset.store import S3Store

    remote, local = as_store(f"s3://{s3_bucket}/prod"), as_store(tmp_path / "local")
    for store in (remote, local):
        build_store(store)
    expected = [loaded(DataAggregator(local), query) for query in QUERIES]
    footer_reads.clear()
    aggregator = DataAggregator(f"s3://{s3_bucket}/prod")
    for query, frame in zip(QUERIES, expected):
        assert loaded(aggregator, query).equals(frame), query
    assert footer_reads == []
    entry = stored_entries(remote)[layout.batch_data_key(dt.date(2026, 1, 30), 1)]
    assert entry[1:] == ["B01", "C00", "2026-01-28", "2026-01-30"] and entry[0].startswith('"')  # an ETag

    fetched: list[str] = []
    real_get = S3Store.get
    monkeypatch.setattr(S3Store, "get", lambda store, key: fetched.append(key) or real_get(store, key))
    again = DataAggregator(f"s3://{s3_bucket}/prod").load_symbols(["BHP", "CBA"])
    assert again.equals(expected[0])
    every = data_files(remote.list(layout.RAW_DATA_PREFIX))
    ranges = {key: entry[1:] for key, entry in stored_entries(remote).items()}
    assert set(ranges) == set(every)  # each file's ranges, learnt from its bytes
    matching = [key for key in every if may_match(tuple(ranges[key]), ["BHP", "CBA"], None, None)]
    assert sorted(fetched) == matching and len(matching) < len(every)  # only the files that can match

    key = layout.batch_data_key(dt.date(2026, 2, 2), 1)
    remote.put(key, parquet_bytes(bars(["BHP"], [dt.date(2026, 2, 2)], version=4,
                                       fetch_timestamp="2026-02-09T08:00:00.000Z")))
    fetched.clear()
    frame = DataAggregator(f"s3://{s3_bucket}/prod").load_symbols(["BHP"], start="2026-02-02", end="2026-02-02")
    assert key in fetched and footer_reads == []
    assert frame["close"].to_list() == [price("BHP", dt.date(2026, 2, 2), 4)]
    assert stored_entries(remote)[key][1:] == ["BHP", "BHP", "2026-02-02", "2026-02-02"]


def test_stockstream_load_keeps_its_index_in_stockstream_cache_dir(store, tmp_path):
    from helpers import run_stockstream

    for n in range(100):  # more than aggregate.INDEX_MIN_FILES (a compacted store): the process consults the index
        day = dt.date(2025, 1, 1) + dt.timedelta(days=n)
        write_batch(store, day, 0, [bar("AAA", day, fetch_timestamp=f"{day.isoformat()}T08:00:00.000Z")])
    cache = tmp_path / "cache"
    arguments = ("load", "--symbols", "BHP", "CBA", "--store", str(store.root), "--format", "csv")
    first = run_stockstream(*arguments, env={"STOCKSTREAM_CACHE_DIR": str(cache)})
    assert first.returncode == 0, first.stderr
    [index] = (cache / "file-index").iterdir()
    assert set(json.loads(index.read_bytes())["files"]) == set(data_files(store.list(layout.RAW_DATA_PREFIX)))
    built = index.stat().st_mtime_ns
    second = run_stockstream(*arguments, env={"STOCKSTREAM_CACHE_DIR": str(cache)})
    assert second.stdout == first.stdout
    assert index.stat().st_mtime_ns == built  # nothing new to read: the index is not even rewritten
    expected = unpruned(DataAggregator(store), newest=True, symbols=["BHP", "CBA"])
    assert second.stdout.count("\n") == expected.height + 1



@pytest.mark.parametrize("newest", [True, False])
def test_a_store_object_without_list_versions_is_read_without_the_index(store, newest, footer_reads):
    """A caller's own store object written before the footer index: pruned by key only, the same answers."""
    inner = store

    class OlderStore:
        uri = inner.uri

        def __getattr__(self, name):
            if name == "list_versions":
                raise AttributeError(name)
            return getattr(inner, name)

    aggregator = DataAggregator(OlderStore())
    for query in QUERIES:
        assert loaded(aggregator, query, newest=newest).equals(
            unpruned(DataAggregator(inner), newest=newest, **query)), query
    assert footer_reads == []


def test_a_compacted_store_is_read_without_the_index(tmp_path, monkeypatch):
    """A handful of files (a month each): polars prunes them by their own footers; no index is read or kept."""
    from stockstream_cli.dataset import aggregate

    monkeypatch.setattr(aggregate, "INDEX_MIN_FILES", 64)
    store = as_store(tmp_path / "data")
    build_store(store)
    assert len(store.list(layout.RAW_DATA_PREFIX)) <= 64
    everything = DataAggregator(store).load()
    aggregator = DataAggregator(store)
    bhp = aggregator.load_symbols(["BHP"])
    assert bhp.equals(everything.filter(pl.col("symbol") == "BHP")) and not bhp.is_empty()
    assert "_file_index" not in vars(aggregator) and not aggregator._file_index.path.exists()
