"""Repaired days in the store: repairs/SYMBOL.parquet, one small file per symbol that ever had one.

A fetch that finds a day unmistakably served 100 times too big (fetch/unit_errors.py) stores it divided by 100
and hands the commit a record of it (schema.REPAIR_COLUMNS: what Yahoo said, what is stored, the fetch's
timestamp, why). The file holds the repairs in force: each fetch of a symbol replaces its records for the days
it fetched (a day Yahoo has since corrected loses its record; one still wrong gets the newer fetch's). A record
applies to the stored row of the same fetch_timestamp only, so `load --as-reported` (as_reported) never puts
Yahoo's old value over a newer answer. No typer or rich here.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable
from typing import TYPE_CHECKING

from . import layout
from ..schema import REPAIR_COLUMNS, REPAIRED_PRICES, empty_repairs, repair_schema

if TYPE_CHECKING:
    import polars as pl


def repaired_symbols(store) -> set[str]:
    """The symbols with a repairs file (listed, not read)."""
    return {symbol for key in store.list(layout.REPAIRS_PREFIX) if (symbol := layout.parse_repairs_key(key))}


def read_symbol_repairs(store, symbol: str) -> "pl.DataFrame | None":
    from .datafile import read_parquet_key

    return read_parquet_key(store, layout.repairs_key(symbol), repair_schema(), "the repairs schema")


def merged_repairs(known: "pl.DataFrame | None", fetched_dates: Iterable[dt.date],
                   new: "pl.DataFrame | None") -> "pl.DataFrame":
    """The symbol's repairs after a fetch of `fetched_dates`: the known ones of other days, then `new`."""
    import polars as pl

    kept = known.filter(~pl.col("date").is_in(list(fetched_dates))) if known is not None else empty_repairs()
    frames = [kept] + ([new.select(REPAIR_COLUMNS)] if new is not None and not new.is_empty() else [])
    return pl.concat(frames, how="vertical").sort("date")


def store_repairs(store, symbol: str, fetched_dates: Iterable[dt.date], new: "pl.DataFrame | None",
                  has_file: bool) -> bool:
    """Write repairs/SYMBOL.parquet after a fetch of the symbol's `fetched_dates`; only when it changes.
    `has_file`: whether the symbol has a repairs file already (repaired_symbols). Returns whether it wrote."""
    if not has_file and (new is None or new.is_empty()):
        return False
    known = read_symbol_repairs(store, symbol) if has_file else None
    merged = merged_repairs(known, fetched_dates, new)
    if known is not None and merged.equals(known):
        return False
    buffer = io.BytesIO()
    merged.cast(dict(repair_schema())).write_parquet(buffer)
    store.put(layout.repairs_key(symbol), buffer.getvalue())
    return True


def load_repairs(store, symbols: Iterable[str] | None = None, start: dt.date | None = None,
                 end: dt.date | None = None) -> "pl.DataFrame":
    """The repaired days the store records, sorted by symbol then date; `symbols` (None: all), dates in
    [start, end] (None: unbounded). Reads only the named symbols' files."""
    import polars as pl

    held = repaired_symbols(store)
    wanted = sorted(held if symbols is None else held & set(symbols))
    frames = [frame for frame in (read_symbol_repairs(store, symbol) for symbol in wanted) if frame is not None]
    if not frames:
        return empty_repairs()
    frame = pl.concat(frames, how="vertical").sort("symbol", "date")
    if start is not None:
        frame = frame.filter(pl.col("date") >= start)
    if end is not None:
        frame = frame.filter(pl.col("date") <= end)
    return frame


def as_reported(rows: "pl.DataFrame", repairs: "pl.DataFrame") -> "pl.DataFrame":
    """`rows` (load's) with every repaired row's prices back to what Yahoo reported: a repair applies to the
    row of its own (symbol, date, fetch_timestamp) only."""
    import polars as pl

    if repairs.is_empty() or rows.is_empty():
        return rows
    keys = ["symbol", "date", "fetch_timestamp"]
    originals = repairs.select(*keys, *(pl.col(f"reported_{name}").alias(f"_reported_{name}") for name in REPAIRED_PRICES))
    joined = rows.join(originals, on=keys, how="left", maintain_order="left")
    return joined.with_columns(
        **{name: pl.coalesce(pl.col(f"_reported_{name}"), pl.col(name)) for name in REPAIRED_PRICES}
    ).select(rows.columns)
