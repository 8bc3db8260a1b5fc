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
    hash unique, which lets polars push that filter down into the Parquet scan; otherwise the winner is the
    last row of each sorted (symbol, date) run, kept by comparing each row with the next. A caller with the
    rows in hand (the reader, compact, check, fetch's merge) uses newest_rows, the same rule without the sort
    of every row on every key.
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


def newest_rows(frame: "pl.DataFrame") -> "pl.DataFrame":
    """newest_per_symbol_and_date of a frame in hand, the same rows, without sorting every row on all its keys.

    Rows are put in (symbol, date) order by one integer key (the symbol's rank among the frame's symbols, then
    the day); only the rows whose (symbol, date) comes more than once (a tenth of a store's: the days a later
    run's lookback fetched again) are sorted on the whole rule: over a twenty-year store's 10.3 M rows, 1.5 s
    against 5.1 s for the rule as one sort. A frame with a null symbol or date takes the general form.
    """
    import polars as pl

    if frame.is_empty() or frame["symbol"].null_count() or frame["date"].null_count():
        return newest_per_symbol_and_date(frame.lazy()).collect()
    frame = frame.rechunk()  # a gather from one chunk per column is several times faster than from a file's many
    key = _symbol_and_date_key(frame)
    order = key.arg_sort()
    ordered_key = key.gather(order)
    same_as_next = (ordered_key == ordered_key.shift(-1)).fill_null(False)
    same_as_previous = (ordered_key == ordered_key.shift(1)).fill_null(False)
    fetched_again = same_as_next | same_as_previous
    if not fetched_again.any():
        return frame[order]
    runs = order.filter(fetched_again)  # positions of every fetch of a key fetched again, grouped by key, in order
    candidates = (frame.select("fetch_timestamp")[runs]
                  .with_columns(ordered_key.filter(fetched_again).alias("_key"), runs.alias(_POSITION),
                                fetch_moment().alias(_UNPARSED_TS)))
    winners = (candidates.sort(["_key", _UNPARSED_TS, "fetch_timestamp", _POSITION], nulls_last=False)
               .filter(pl.col("_key").ne_missing(pl.col("_key").shift(-1)))[_POSITION])
    last_of_a_run = fetched_again & ~same_as_next
    order = order.scatter(last_of_a_run.arg_true(), winners)  # one slot per key fetched again: its winner
    return frame[order.filter(~fetched_again | last_of_a_run)]


def _symbol_and_date_key(frame: "pl.DataFrame") -> "pl.Series":
    """A UInt64 per row ordering as (symbol, date) do: the symbol's rank in the frame's sorted symbols, then
    the days since the frame's earliest date."""
    import polars as pl

    symbols = frame["symbol"].unique().sort()
    rank = frame["symbol"].cast(pl.Enum(symbols.to_list())).to_physical().cast(pl.UInt64)
    days = frame["date"].cast(pl.Int32)
    return rank * (1 << 32) + (days - days.min()).cast(pl.UInt64)


def merge_rows(previous: "pl.DataFrame | None", fetched: list["pl.DataFrame"]) -> "pl.DataFrame":
    """Stored rows plus new ones under the one rule (newest_per_symbol_and_date); a new row of the same
    fetch_timestamp as a stored one still beats it (the later frame wins a tie)."""
    import polars as pl

    frames = ([previous] if previous is not None else []) + fetched
    if not frames:
        return schema.empty_frame()
    return newest_rows(pl.concat(frames, how="vertical"))
