"""Corporate actions in the store: actions/SYMBOL.parquet, one small file per symbol with its whole history.

A file holds one row per (symbol, ex-date, kind) with the columns of ACTION_COLUMNS: `kind` is `dividend` or
`split`; `value` is the dividend per share in today's units, or the split's ratio numerator/denominator (2.0
for 2-for-1, 0.1 for a 1-for-10 consolidation); `fetch_timestamp` is the fetch that saw it. A file is
rewritten whole (the store's atomic put) only when a fetch saw an action it does not hold yet or with another
value, merged under the prices' rule: the newest fetch wins per (symbol, date, kind). So the daily fetch reads
only the files of the few symbols whose window shows an event, and `actions --symbols` reads one file per
symbol. No typer or rich here.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable
from typing import TYPE_CHECKING

from . import layout
from ..schema import ACTION_COLUMNS, SAME_VALUE, action_schema, empty_actions

if TYPE_CHECKING:
    import polars as pl

def newest_actions(frame: "pl.DataFrame") -> "pl.DataFrame":
    """One row per (symbol, date, kind), the newest fetch_timestamp winning (the later row on a tie); sorted by
    symbol, date, kind."""
    from .newest import fetch_moment

    moment = "_moment"
    return (frame.with_columns(fetch_moment().alias(moment))
            .sort(["symbol", "date", "kind", moment, "fetch_timestamp"], nulls_last=False, maintain_order=True)
            .unique(subset=["symbol", "date", "kind"], keep="last", maintain_order=True)
            .select(ACTION_COLUMNS))


def unknown_actions(seen: "pl.DataFrame", known: "pl.DataFrame | None") -> "pl.DataFrame":
    """The rows of `seen` the store does not know: a (date, kind) it does not hold, or holds with another value."""
    if known is None or known.is_empty() or seen.is_empty():
        return seen
    held = {(d, k): v for d, k, v in zip(known["date"].to_list(), known["kind"].to_list(), known["value"].to_list())}
    keep = []
    for day, kind, value in zip(seen["date"].to_list(), seen["kind"].to_list(), seen["value"].to_list()):
        before = held.get((day, kind))
        keep.append(before is None or abs(value - before) > SAME_VALUE * max(abs(value), abs(before)))
    import polars as pl

    return seen.filter(pl.Series(keep, dtype=pl.Boolean))


def to_bytes(frame: "pl.DataFrame") -> bytes:
    buffer = io.BytesIO()
    frame.select(ACTION_COLUMNS).cast(dict(action_schema())).write_parquet(buffer)
    return buffer.getvalue()


def read_symbol_actions(store, symbol: str) -> "pl.DataFrame | None":
    """actions/SYMBOL.parquet, checked against the schema; None when the store knows no action of it."""
    from .datafile import read_parquet_key

    return read_parquet_key(store, layout.actions_key(symbol), action_schema(), "the actions schema")


def symbols_with_news(store, seen: dict[str, "pl.DataFrame"]) -> set[str]:
    """The symbols of `seen` ({symbol: the actions a fetch saw}) with an action their file does not hold yet, or
    holds with another value: reads only those symbols' files."""
    return {symbol for symbol, frame in seen.items()
            if not unknown_actions(frame, read_symbol_actions(store, symbol)).is_empty()}


def store_actions(store, symbol: str, seen: "pl.DataFrame", known: "pl.DataFrame | None" = None) -> bool:
    """Merge `seen` into actions/SYMBOL.parquet (newest fetch wins); writes only when something is new.
    `known`: the file's rows when the caller read them already. Returns whether it wrote."""
    import polars as pl

    if seen.is_empty():
        return False
    if known is None:
        known = read_symbol_actions(store, symbol)
    if unknown_actions(seen, known).is_empty():
        return False
    merged = newest_actions(pl.concat([f for f in (known, seen) if f is not None], how="vertical"))
    store.put(layout.actions_key(symbol), to_bytes(merged))
    return True


def load_actions(store, symbols: Iterable[str] | None = None, start: dt.date | None = None,
                 end: dt.date | None = None) -> "pl.DataFrame":
    """The actions the store knows, one row per (symbol, ex-date, kind), sorted by symbol, date, kind;
    `symbols` (None: all), ex-dates in [start, end] (None: unbounded). Reads only the named symbols' files."""
    import polars as pl

    keys = {layout.parse_actions_key(key): key for key in store.list(layout.ACTIONS_PREFIX)}
    keys.pop(None, None)
    wanted = sorted(keys) if symbols is None else sorted(set(symbols) & set(keys))
    frames = [frame for frame in (read_symbol_actions(store, symbol) for symbol in wanted) if frame is not None]
    if not frames:
        return empty_actions()
    frame = newest_actions(pl.concat(frames, how="vertical"))
    if start is not None:
        frame = frame.filter(pl.col("date") >= start)
    if end is not None:
        frame = frame.filter(pl.col("date") <= end)
    return frame
