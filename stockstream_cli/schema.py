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
