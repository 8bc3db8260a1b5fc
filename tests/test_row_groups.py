"""Compacted files on S3 read by row group: only the groups that can match are fetched, the answer unchanged."""

from __future__ import annotations

import datetime as dt
import io

import polars as pl
import pytest

from stockstream_cli.dataset import layout
from stockstream_cli import schema
from stockstream_cli.errors import CorruptFileError
from stockstream_cli.dataset.aggregate import DataAggregator
from stockstream_cli.dataset.row_groups import read_matching_groups
from storefactory import as_store, bars

D = dt.date
SYMBOLS = [f"S{n:03d}" for n in range(40)]  # S000..S039, sorted
DAYS = [D(2026, 10, 1) + dt.timedelta(days=k) for k in range(20)]
KEY = layout.compacted_data_key("2026-10")
GROUP_ROWS = 60  # 800 rows: 14 row groups of 3 symbols each


def footer_size(data: bytes) -> int:
    """A Parquet file's footer with its length and magic: a suffix read of this many bytes holds no row group."""
    return int.from_bytes(data[-8:-4], "little") + 8


def month_file(*, row_group_size: int = GROUP_ROWS, statistics: bool = True, version: int = 0) -> bytes:
    frame = pl.DataFrame(bars(SYMBOLS, DAYS, version=version), schema=schema.polars_schema(), orient="row")
    buffer = io.BytesIO()
    frame.sort("symbol", "date").write_parquet(buffer, row_group_size=row_group_size, statistics=statistics)
    return buffer.getvalue()


class Counting:
    """The S3 store, with every ranged read and its bytes counted."""

    def __init__(self, store, before_range=None):
        self._store, self._before_range = store, before_range
        self.suffixes, self.ranges, self.bytes = 0, 0, 0

    def read_suffix(self, key, size):
        self.suffixes += 1
        suffix = self._store.read_suffix(key, size)
        self.bytes += len(suffix.data)
        return suffix

    def read_range(self, key, start, stop, *, etag):
        self.ranges += 1
        if self._before_range is not None:
            self._before_range()
        data = self._store.read_range(key, start, stop, etag=etag)
        self.bytes += len(data)
        return data


@pytest.fixture
def s3(s3_bucket):
    return as_store(f"s3://{s3_bucket}/prefix")


def test_only_the_groups_that_can_hold_the_symbols_are_fetched(s3):
    data = month_file(row_group_size=200)  # 4 groups of 10 symbols: S000-S009 ... S030-S039
    s3.put(KEY, data)
    counted = Counting(s3)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("stockstream_cli.dataset.row_groups.TAIL_BYTES", footer_size(data))  # groups come by range
        rows, ranges = read_matching_groups(counted, KEY, ["S012", "S015"])
    assert ranges == ("S000", "S039", "2026-10-01", "2026-10-20")  # the whole file's, for the footer index
    assert rows["symbol"].unique().sort().to_list() == [f"S{n:03d}" for n in range(10, 20)]  # one group, whole
    assert rows.height == 200 and rows.schema == schema.polars_schema()
    assert (counted.suffixes, counted.ranges) == (1, 1)  # the footer, then the one group's bytes
    assert counted.bytes < len(data) / 2


def test_groups_of_symbols_apart_are_fetched_and_a_date_range_prunes_too(s3):
    data = month_file()
    s3.put(KEY, data)
    rows = read_matching_groups(s3, KEY, ["S000", "S039"], "2026-10-05", "2026-10-06")[0]
    assert set(rows["symbol"].to_list()) >= {"S000", "S039"}
    assert rows.filter(pl.col("symbol").is_in(["S000", "S039"]))["date"].min() == DAYS[0]  # groups, not rows
    assert read_matching_groups(s3, KEY, ["S000"], "2026-11-01", None)[0].height == 0  # no group can match


def test_load_on_s3_gives_what_the_same_files_give_locally(s3, tmp_path):
    local = as_store(tmp_path / "data")
    for store in (s3, local):
        store.put(KEY, month_file())
        store.put(layout.compacted_data_key("2026-09"), month_file(version=1))
    for query in (dict(symbols=["S004", "S031"]), dict(symbols=["S010"], start="2026-10-03", end="2026-10-09"),
                  dict(symbols=["S999"]), dict(start="2026-10-02", end="2026-10-02")):
        expected = DataAggregator(local).load(**query)
        assert DataAggregator(s3).load(**query).equals(expected), query
    assert DataAggregator(s3).load_symbols(["S004"]).height == len(DAYS)


def test_a_file_rewritten_between_its_reads_is_read_whole_in_its_new_version(s3):
    data = month_file()
    s3.put(KEY, data)
    rewrite = lambda: s3.put(KEY, month_file(version=2))  # noqa: E731 - compaction rewrote the month meanwhile
    counted = Counting(s3, before_range=rewrite)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("stockstream_cli.dataset.row_groups.TAIL_BYTES", footer_size(data))
        assert read_matching_groups(counted, KEY, ["S001"]) is None  # If-Match refused the range: not pieced
    assert counted.ranges == 1
    newest = DataAggregator(s3).load_symbols(["S001"])
    assert newest["close"].to_list() == [row["close"] for row in bars(["S001"], DAYS, version=2)]


def test_a_file_without_statistics_or_not_parquet_is_left_to_the_whole_read(s3):
    s3.put(KEY, month_file(statistics=False))
    assert read_matching_groups(s3, KEY, ["S001"]) is None
    assert DataAggregator(s3).load_symbols(["S001"]).height == len(DAYS)
    s3.put(KEY, b"not parquet at all, " * 100)
    assert read_matching_groups(s3, KEY, ["S001"]) is None
    with pytest.raises(CorruptFileError, match="compacted-2026-10.parquet"):
        DataAggregator(s3).load_symbols(["S001"])


def test_a_date_filter_alone_reads_a_compacted_month_by_its_footer_not_whole(s3, monkeypatch):
    s3.put(KEY, month_file())
    whole = []
    get = type(s3).get
    monkeypatch.setattr(type(s3), "get", lambda self, key: whole.append(key) or get(self, key))
    before = DataAggregator(s3).load_date(DAYS[0] - dt.timedelta(days=3))  # before the month's first row
    assert before.height == 0 and whole == []  # its footer said no group can hold the day
    assert DataAggregator(s3).load_date(DAYS[1]).height == len(SYMBOLS) and whole == []  # its groups, by ranges
