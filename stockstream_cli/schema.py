"""The Parquet schema of raw-data/ files, exactly as the contract gives it, and the empty frame of it.

Cleaning rules live beside it (see `clean`), so what a row must satisfy is written down once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

COLUMNS = (
    "symbol",
    "date",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "adjusted_close",
    "fetch_timestamp",
    "batch_number",
)


def polars_schema() -> "pl.Schema":
    import polars as pl

    return pl.Schema(
        {
            "symbol": pl.String,
            "date": pl.Date,
            "open": pl.Float64,
            "high": pl.Float64,
            "low": pl.Float64,
            "close": pl.Float64,
            "volume": pl.Int64,
            "adjusted_close": pl.Float64,
            "fetch_timestamp": pl.String,
            "batch_number": pl.Int32,
        }
    )


def empty_frame() -> "pl.DataFrame":
    import polars as pl

    return pl.DataFrame(schema=polars_schema())


def utc_timestamp(moment=None) -> str:
    """ISO 8601 in UTC with millisecond precision and a 'Z' offset: 2026-11-25T20:03:11.482Z."""
    import datetime as dt

    moment = moment or dt.datetime.now(dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---------------------------------------------------------------------------------------------- cleaning

PRICE_COLUMNS = ("open", "high", "low", "close")
DROP_REASONS = ("all_null", "invalid", "duplicate", "outside_window")


def clean_bars(
    raw: "pl.DataFrame",
    *,
    symbol: str,
    batch_number: int,
    fetch_timestamp: str,
    first_day=None,
    last_day=None,
) -> tuple["pl.DataFrame", dict[str, int]]:
    """One symbol's raw bars (yahoo.RAW_COLUMNS) -> rows in exactly polars_schema(), and what was dropped.

    In order, each row counted once under the first rule it breaks:
    - outside_window: the date is before first_day or after last_day (when given);
    - all_null: open, high, low and close all null (Yahoo's bar for an untraded day);
    - invalid: not 0 < low <= min(open, close) and max(open, close) <= high with finite prices, volume
      missing or negative, or an adjusted_close that is present but not a finite number above 0;
    - duplicate: a second bar for the same date (the later one in Yahoo's order is kept).
    """
    import polars as pl

    frame = raw.select(
        pl.col("date").cast(pl.Date),
        *[pl.col(name).cast(pl.Float64).fill_nan(None) for name in (*PRICE_COLUMNS, "adjusted_close", "volume")],
    )
    dropped = dict.fromkeys(DROP_REASONS, 0)

    def keep(rule: "pl.Expr", reason: str) -> None:
        nonlocal frame
        kept = frame.filter(rule.fill_null(False))
        dropped[reason] += frame.height - kept.height
        frame = kept

    if first_day is not None:
        keep(pl.col("date") >= first_day, "outside_window")
    if last_day is not None:
        keep(pl.col("date") <= last_day, "outside_window")
    keep(~pl.all_horizontal(pl.col(name).is_null() for name in PRICE_COLUMNS), "all_null")
    keep(_valid_bar(), "invalid")
    deduplicated = frame.unique(subset="date", keep="last", maintain_order=True)
    dropped["duplicate"] = frame.height - deduplicated.height
    rows = deduplicated.sort("date").select(
        pl.lit(symbol, dtype=pl.String).alias("symbol"),
        "date",
        *PRICE_COLUMNS,
        pl.col("volume").round(0).cast(pl.Int64),
        "adjusted_close",
        pl.lit(fetch_timestamp, dtype=pl.String).alias("fetch_timestamp"),
        pl.lit(batch_number, dtype=pl.Int32).alias("batch_number"),
    )
    return rows.cast(dict(polars_schema())), dropped


def _valid_bar() -> "pl.Expr":
    import polars as pl

    open_, high, low, close = (pl.col(name) for name in PRICE_COLUMNS)
    adjusted = pl.col("adjusted_close")
    return (
        pl.all_horizontal(pl.col(name).is_finite() for name in PRICE_COLUMNS)
        & (low > 0)
        & (low <= pl.min_horizontal(open_, close))
        & (pl.max_horizontal(open_, close) <= high)
        & pl.col("volume").is_finite()
        & (pl.col("volume") >= 0)
        & (adjusted.is_null() | (adjusted.is_finite() & (adjusted > 0)))
    )
