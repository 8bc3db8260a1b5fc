"""The one rule for rows fetched more than once: one row per (symbol, date), the newest fetch wins.

A (symbol, date) is stored again whenever a later run's lookback window covers it, a rerun refetches it or a
month is compacted; Yahoo restates history, so the newest answer is the right one. fetch's merge, the
reader (DataAggregator), compact and check all go through here. No typer or rich here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import schema

if TYPE_CHECKING:
    import polars as pl

_UNPARSED_TS = "_fetch_moment"
_POSITION = "_position"  # a row's place in the concatenated files: the last tie-breaker


def fetch_moment() -> "pl.Expr":
    """fetch_timestamp as an instant in UTC: ISO 8601 with an explicit offset (`Z`, `+00:00`, `+11:00`), to the
    microsecond; null for anything else. One fixed format, so each row's instant depends on that row alone
    (a filter can be pushed below the sort into the Parquet scan, and other engines can compute the same:
    dataset/views.py)."""
    import polars as pl

    return pl.col("fetch_timestamp").str.to_datetime(format="%+", time_zone="UTC", time_unit="us", strict=False)


def newest_per_symbol_and_date(query: "pl.LazyFrame", *, filtered_after: bool = False) -> "pl.LazyFrame":
    """One row per (symbol, date): the newest fetch_timestamp wins; sorted by symbol then date.

    Timestamps are compared as instants (fetch_moment: so `Z` and `+00:00` spellings agree); the string itself
    breaks ties and orders any timestamp that does not parse (before every one that does); rows equal in both
    keep their order, the later one winning.
    `filtered_after`: the caller filters the result lazily (SQL's WHERE): then the same rule is kept with a
    hash unique, which lets polars push that filter down into the Parquet scan; otherwise (every caller that
    filters first and collects) the winner is the last row of each sorted (symbol, date) run, kept by
    comparing each row with the next: a linear pass, a third of the time over a whole store.
    """
    import polars as pl

    if filtered_after:
        return (
            query.with_columns(fetch_moment().alias(_UNPARSED_TS))
            .sort(["symbol", "date", _UNPARSED_TS, "fetch_timestamp"], nulls_last=False, maintain_order=True)
            .unique(subset=["symbol", "date"], keep="last", maintain_order=True)
            .select(schema.COLUMNS)
        )
    last_of_its_key = (pl.col("symbol").ne_missing(pl.col("symbol").shift(-1))
                       | pl.col("date").ne_missing(pl.col("date").shift(-1)))
    # The row's position is the last key (rather than a stable sort): every key unique, so the sort may run
    # unstable and in parallel with the same answer.
    return (
        query.with_row_index(_POSITION).with_columns(fetch_moment().alias(_UNPARSED_TS))
        .sort(["symbol", "date", _UNPARSED_TS, "fetch_timestamp", _POSITION], nulls_last=False)
        .filter(last_of_its_key)
        .select(schema.COLUMNS)
    )


def merge_rows(previous: "pl.DataFrame | None", fetched: list["pl.DataFrame"]) -> "pl.DataFrame":
    """Stored rows plus new ones under the one rule (newest_per_symbol_and_date); a new row of the same
    fetch_timestamp as a stored one still beats it (the later frame wins a tie)."""
    import polars as pl

    frames = ([previous] if previous is not None else []) + fetched
    if not frames:
        return schema.empty_frame()
    return newest_per_symbol_and_date(pl.concat(frames, how="vertical").lazy()).collect()
