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
