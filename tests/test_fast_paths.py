"""The per-symbol fast paths (issue 5, B3) give exactly what the straightforward polars versions gave.

schema.clean_bars and yahoo.to_polars run once per symbol on a handful of bars, so they are written in plain
Python / one conversion instead of a dozen polars queries. Each is compared here with the reference it
replaced, on edge cases and on many generated frames.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import operator
import random

import pandas as pd
import polars as pl
import pytest

from stockstream_cli import schema
from stockstream_cli.sources import yahoo

PRICES = schema.PRICE_COLUMNS
FIRST, LAST = dt.date(2026, 1, 5), dt.date(2026, 1, 9)


def reference_clean_bars(raw, *, symbol, batch_number, fetch_timestamp, first_day=None, last_day=None):
    """schema.clean_bars as it was written in polars before the fast path (the rules' specification)."""
    frame = raw.select(
        pl.col("date").cast(pl.Date),
        *[pl.col(name).cast(pl.Float64).fill_nan(None) for name in (*PRICES, "adjusted_close", "volume")],
    )
    dropped = dict.fromkeys(schema.DROP_REASONS, 0)

    def keep(rule, reason):
        nonlocal frame
        kept = frame.filter(rule.fill_null(False))
        dropped[reason] += frame.height - kept.height
        frame = kept

    if first_day is not None:
        keep(pl.col("date") >= first_day, "outside_window")
    if last_day is not None:
        keep(pl.col("date") <= last_day, "outside_window")
    keep(~pl.all_horizontal(pl.col(name).is_null() for name in PRICES), "all_null")
    open_, high, low, close = (pl.col(name) for name in PRICES)
    adjusted = pl.col("adjusted_close")
    valid = functools.reduce(operator.and_, [
        pl.all_horizontal(pl.col(name).is_finite() for name in PRICES), low > 0,
        low <= pl.min_horizontal(open_, close), pl.max_horizontal(open_, close) <= high,
        pl.col("volume").is_finite(), pl.col("volume") >= 0,
        adjusted.is_null() | (adjusted.is_finite() & (adjusted > 0)),
    ])
    keep(valid, "invalid")
    deduplicated = frame.unique(subset="date", keep="last", maintain_order=True)
    dropped["duplicate"] = frame.height - deduplicated.height
    rows = deduplicated.sort("date").select(
        pl.lit(symbol, dtype=pl.String).alias("symbol"), "date", *PRICES,
        pl.col("volume").round(0).cast(pl.Int64), "adjusted_close",
        pl.lit(fetch_timestamp, dtype=pl.String).alias("fetch_timestamp"),
        pl.lit(batch_number, dtype=pl.Int32).alias("batch_number"),
    )
    return rows.cast(dict(schema.polars_schema())), dropped


def raw_frame(bars):
    """bars: (date, open, high, low, close, adjusted_close, volume) tuples -> a raw frame as yahoo.fetch gives."""
    names = ("date", "open", "high", "low", "close", "adjusted_close", "volume")
    return pl.DataFrame([dict(zip(names, bar)) for bar in bars],
                        schema={"date": pl.Date, **{name: pl.Float64 for name in names[1:]}}, orient="row")


def assert_same_cleaning(raw, **window):
    kwargs = dict(symbol="BHP", batch_number=3, fetch_timestamp="2026-01-09T08:00:00.000Z", **window)
    rows, dropped = schema.clean_bars(raw, **kwargs)
    expected_rows, expected_dropped = reference_clean_bars(raw, **kwargs)
    assert dropped == expected_dropped
    assert rows.schema == schema.polars_schema()
    assert rows.to_dicts() == expected_rows.to_dicts()


D = [dt.date(2026, 1, d) for d in range(3, 12)]
NAN, INF = float("nan"), float("inf")

EDGE_CASES = {
    "clean": [(D[2], 10, 11, 9, 10.5, 10.4, 1000.0)],
    "all null": [(D[2], None, None, None, None, None, None)],
    "all nan": [(D[2], NAN, NAN, NAN, NAN, NAN, NAN)],
    "one price null": [(D[2], 10, None, 9, 10.5, 10.4, 1000.0)],
    "infinite price": [(D[2], 10, INF, 9, 10.5, 10.4, 1000.0)],
    "low above open": [(D[2], 10, 11, 10.2, 10.5, 10.4, 1000.0)],
    "high below close": [(D[2], 10, 10.4, 9, 10.5, 10.4, 1000.0)],
    "zero low": [(D[2], 10, 11, 0.0, 10.5, 10.4, 1000.0)],
    "volume null": [(D[2], 10, 11, 9, 10.5, 10.4, None)],
    "volume negative": [(D[2], 10, 11, 9, 10.5, 10.4, -1.0)],
    "volume half": [(D[2], 10, 11, 9, 10.5, 10.4, 2.5), (D[3], 10, 11, 9, 10.5, 10.4, 3.5)],
    "adjusted null": [(D[2], 10, 11, 9, 10.5, None, 1000.0)],
    "adjusted zero": [(D[2], 10, 11, 9, 10.5, 0.0, 1000.0)],
    "adjusted nan": [(D[2], 10, 11, 9, 10.5, NAN, 1000.0)],
    "duplicates, later kept": [(D[3], 10, 11, 9, 10.5, 10.4, 1.0), (D[2], 1, 2, 1, 1, 1, 5.0),
                               (D[3], 20, 21, 19, 20.5, 20.4, 2.0)],
    "outside the window": [(D[0], 10, 11, 9, 10.5, 10.4, 1.0), (D[8], 10, 11, 9, 10.5, 10.4, 1.0),
                           (D[4], 10, 11, 9, 10.5, 10.4, 1.0)],
    "null date": [(None, 10, 11, 9, 10.5, 10.4, 1.0), (D[4], 10, 11, 9, 10.5, 10.4, 1.0)],
    "empty": [],
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
@pytest.mark.parametrize("window", [{}, {"first_day": FIRST, "last_day": LAST}])
def test_clean_bars_edge_cases_match_the_polars_reference(case, window):
    assert_same_cleaning(raw_frame(EDGE_CASES[case]), **window)


def test_clean_bars_matches_the_reference_on_generated_frames():
    rng = random.Random(5)
    choices = [None, NAN, INF, -1.0, 0.0, 0.5, 9.0, 10.0, 10.5, 11.0, 12.0]
    for _ in range(300):
        bars = [(rng.choice(D), *(rng.choice(choices) for _ in range(5)), rng.choice([None, NAN, -3.0, 0.0, 7.5, 1e6]))
                for _ in range(rng.randint(0, 8))]
        assert_same_cleaning(raw_frame(bars), first_day=FIRST, last_day=LAST)


def test_clean_bars_casts_other_column_types_first():
    raw = pl.DataFrame({"date": [dt.datetime(2026, 1, 6, 10)], "open": [10], "high": [11], "low": [9], "close": [10],
                        "adjusted_close": [10], "volume": [500]})
    assert_same_cleaning(raw, first_day=FIRST, last_day=LAST)


def reference_to_polars(frame):
    """yahoo.to_polars as it was before the fast path."""
    index = frame.index.tz_convert(yahoo.SYDNEY) if frame.index.tz is not None else frame.index.tz_localize(yahoo.SYDNEY)
    sources = {"open": "Open", "high": "High", "low": "Low", "close": "Close",
               "adjusted_close": "Adj Close" if "Adj Close" in frame.columns else "Close", "volume": "Volume"}
    columns = {name: frame[source].to_numpy(dtype="float64", na_value=math.nan) for name, source in sources.items()}
    return pl.DataFrame(
        {"date": pl.Series(index.tz_localize(None).to_numpy().astype("datetime64[ms]")).dt.date(), **columns},
        schema_overrides={name: pl.Float64 for name in sources},
    ).with_columns(pl.col(name).fill_nan(None) for name in sources)


def yfinance_like(adj_close=True, extra=None, tz="Australia/Sydney"):
    index = pd.DatetimeIndex([pd.Timestamp(2025, 4, d) for d in (3, 4, 7)]).tz_localize(tz)
    data = {"Open": [1.0, None, 3.0], "High": [1.5, None, 3.5], "Low": [0.5, None, 2.5], "Close": [1.2, None, 3.1],
            "Volume": pd.array([100, 0, 300], dtype="int64")}
    if adj_close:
        data["Adj Close"] = [1.1, float("nan"), 3.0]
    data.update(extra or {})
    return pd.DataFrame(data, index=index)


@pytest.mark.parametrize(
    "frame",
    [yfinance_like(), yfinance_like(adj_close=False), yfinance_like(extra={"Note": ["a", "b", "c"]}),
     yfinance_like(tz="UTC")],
    ids=["yfinance", "no Adj Close", "a text column", "another zone"],
)
def test_to_polars_matches_the_reference(frame):
    fast, expected = yahoo.to_polars(frame), reference_to_polars(frame)
    assert fast.schema == expected.schema
    assert fast.to_dicts() == expected.to_dicts()


def test_seeding_is_remembered_per_cache_folder(fake_yahoo, tmp_path):
    yahoo.configure(str(tmp_path / "one"))
    assert yahoo.seed_timezones(["AAA", "BBB"]) == 2
    assert yahoo.seed_timezones(["AAA", "BBB", "CCC"]) == 1  # only CCC is looked up again
    yahoo.configure(str(tmp_path / "two"))  # a new folder starts cold
    assert yahoo.seed_timezones(["AAA"]) == 1


def test_concurrent_batches_seed_one_cache_without_locking_each_other_out(fake_yahoo, tmp_path):
    import threading

    yahoo.configure(str(tmp_path / "shared"))
    errors, counts = [], []

    def seed(prefix: str) -> None:
        try:
            counts.append(yahoo.seed_timezones([f"{prefix}{i:02d}" for i in range(40)]))
        except Exception as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    workers = [threading.Thread(target=seed, args=(prefix,)) for prefix in "ABCDEFGH"]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == [] and sorted(counts) == [40] * 8
