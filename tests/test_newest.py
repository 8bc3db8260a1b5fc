"""The one newest-fetch-wins rule (dataset/newest.py), as fetch's merge and the reader both apply it."""

from __future__ import annotations

import datetime as dt

import polars as pl

from stockstream_cli import schema
from stockstream_cli.dataset.newest import merge_rows, newest_per_symbol_and_date

DAY = dt.date(2026, 11, 24)


def rows(close: float, stamp: str, symbol: str = "BHP") -> pl.DataFrame:
    return pl.DataFrame([{"symbol": symbol, "date": DAY, "open": close, "high": close, "low": close, "close": close,
                          "volume": 100, "adjusted_close": close, "fetch_timestamp": stamp, "batch_number": 0}],
                        schema=schema.polars_schema())


def test_the_newer_fetch_wins_whatever_the_order():
    stored, fetched = rows(10.0, "2026-11-25T20:00:00Z"), rows(11.0, "2026-11-26T20:00:00+00:00")
    assert merge_rows(stored, [fetched])["close"].to_list() == [11.0]
    assert merge_rows(fetched, [stored])["close"].to_list() == [11.0]
    assert newest_per_symbol_and_date(pl.concat([fetched, stored]).lazy()).collect()["close"].to_list() == [11.0]


def test_a_tie_goes_to_the_later_frame_and_other_symbols_stay():
    stamp = "2026-11-25T20:00:00Z"
    merged = merge_rows(rows(10.0, stamp), [rows(12.0, stamp), rows(5.0, stamp, symbol="CBA")])
    assert merged.select("symbol", "close").rows() == [("BHP", 12.0), ("CBA", 5.0)]
    assert merge_rows(None, []).schema == schema.polars_schema()


def test_each_rows_instant_is_its_own_whatever_the_other_rows_look_like():
    """A timestamp without an offset elsewhere in the frame (first, even) does not change how the others read:
    the +11:00 fetch is an hour older than the Z one, though its text sorts later."""
    frame = pl.concat([rows(1.0, "2026-11-25 08:00:00", symbol="ANZ"), rows(10.0, "2026-11-25T19:00:00+11:00"),
                       rows(11.0, "2026-11-25T09:00:00.000Z")])
    newest = newest_per_symbol_and_date(frame.lazy()).collect()
    assert newest.select("symbol", "close").rows() == [("ANZ", 1.0), ("BHP", 11.0)]


def test_both_forms_of_the_rule_give_the_same_rows_and_the_lazy_one_lets_a_filter_reach_the_scan(tmp_path):
    import polars as pl

    from stockstream_cli import schema
    from stockstream_cli.dataset.newest import newest_per_symbol_and_date
    from storefactory import bar, parquet_bytes

    day = dt.date(2026, 1, 5)
    rows = [bar("BHP", day, version=1, fetch_timestamp="2026-01-05T08:00:00.000Z"),
            bar("BHP", day, version=2, fetch_timestamp="2026-01-05T19:00:00.000+11:00"),  # the same instant: later row
            bar("AAA", day, version=3, fetch_timestamp="not a time"),
            bar("AAA", day, version=4, fetch_timestamp="2026-01-01T00:00:00Z")]
    path = tmp_path / "rows.parquet"
    path.write_bytes(parquet_bytes(rows))
    scan = pl.scan_parquet(path, schema=schema.polars_schema())
    eager = newest_per_symbol_and_date(scan).collect()
    lazy = newest_per_symbol_and_date(scan, filtered_after=True)
    assert eager.equals(lazy.collect())
    assert eager["close"].to_list() == [rows[3]["close"], rows[1]["close"]]
    plan = lazy.filter(pl.col("symbol") == "BHP").explain()
    assert "SELECTION" in plan and '"BHP"' in plan.split("SELECTION")[1]


def _fetched_again_and_again(seed: int, rows: int = 4000) -> pl.DataFrame:
    """Rows of a few symbols over a few days, most (symbol, date) fetched several times: stamps that tie, that
    spell one instant two ways (Z, +00:00, +11:00), that do not parse, dates on both sides of 1970."""
    import numpy as np

    rng = np.random.default_rng(seed)
    symbols = np.array(["BHP", "A2M", "CBA", "Z1P", "ANZ", "AB", "ABC", "a"])
    days = np.array(["1969-12-30", "1970-01-02", "2026-01-05", "2026-01-06"]
                    + [f"2026-02-{d:02}" for d in range(2, 20)], dtype="datetime64[D]")
    stamps = np.array(["2026-01-05T08:00:00.000Z", "2026-01-05T08:00:00+00:00", "2026-01-05T19:00:00+11:00",
                       "2026-01-06T08:00:00Z", "2026-01-04T08:00:00.5Z", "not a time", "", "2026-01-05 08:00:00"])
    close = rng.integers(1, 10_000, rows) / 1000
    return pl.DataFrame({
        "symbol": symbols[rng.integers(0, len(symbols), rows)], "date": days[rng.integers(0, len(days), rows)],
        "open": close, "high": close, "low": close, "close": close, "volume": rng.integers(0, 1_000, rows),
        "adjusted_close": close, "fetch_timestamp": stamps[rng.integers(0, len(stamps), rows)],
        "batch_number": rng.integers(0, 3, rows),
    }).cast(dict(schema.polars_schema()))


def test_the_fast_form_keeps_the_rows_the_sort_on_the_whole_rule_keeps():
    """newest_rows (an integer key, the whole rule only for keys fetched again) against the rule written as one
    sort on every key, row for row, on frames where nearly every key comes many times."""
    from stockstream_cli.dataset.newest import newest_rows

    for seed in range(20):
        frame = _fetched_again_and_again(seed)
        expected = newest_per_symbol_and_date(frame.lazy()).collect()
        assert newest_rows(frame).equals(expected), seed
        assert expected.height < frame.height / 10
    unique = _fetched_again_and_again(0).unique(["symbol", "date"], keep="first", maintain_order=True)
    assert newest_rows(unique).equals(unique.sort("symbol", "date"))


def test_the_fast_form_of_a_frame_with_a_null_key_is_the_rule_too():
    from stockstream_cli.dataset.newest import newest_rows

    frame = _fetched_again_and_again(1, rows=300).with_columns(
        pl.when(pl.int_range(pl.len()) % 7 == 0).then(None).otherwise(pl.col("date")).alias("date"))
    assert newest_rows(frame).equals(newest_per_symbol_and_date(frame.lazy()).collect())
    assert newest_rows(schema.empty_frame()).equals(schema.empty_frame())
