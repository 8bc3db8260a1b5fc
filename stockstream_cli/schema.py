"""The contract's two row schemas — prices (raw-data/ files) and corporate actions (actions/ files) — their
empty frames, and how a symbol's raw Yahoo bars become rows of them (cleaning, the actions they carry), so what
a row must satisfy is written down once. A leaf: fetch produces these rows, the dataset stores them.
"""

from __future__ import annotations

import datetime as dt
import math
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
    - invalid: a bar `ohlc_problem` finds wrong, volume missing, or an adjusted_close that is present but
      not a finite number above 0;
    - duplicate: a second bar for the same date (the later one in Yahoo's order is kept).
    """
    import polars as pl

    # A symbol's window is a handful of bars: plain Python over them costs a fraction of a dozen polars
    # queries (each has a fixed cost of a few hundred microseconds), and the frame is built once at the end.
    columns = _raw_columns(raw)
    dates = columns["date"]
    prices = [columns[name] for name in PRICE_COLUMNS]
    volumes, adjusted = columns["volume"], columns["adjusted_close"]
    dropped = dict.fromkeys(DROP_REASONS, 0)
    kept: dict = {}  # date -> row index; a later bar of the same date replaces an earlier one
    for i, day in enumerate(dates):
        if (first_day is not None and (day is None or day < first_day)) or (
                last_day is not None and (day is None or day > last_day)):
            dropped["outside_window"] += 1
            continue
        bar = [column[i] for column in prices]
        if all(value is None for value in bar):
            dropped["all_null"] += 1
        elif not _is_valid_bar(*bar, volumes[i], adjusted[i]):
            dropped["invalid"] += 1
        else:
            if day in kept:
                dropped["duplicate"] += 1
            kept[day] = i
    order = sorted(kept.values(), key=lambda i: (dates[i] is not None, dates[i] or 0))
    kinds = polars_schema()
    values = {
        "symbol": [symbol] * len(order),
        "date": [dates[i] for i in order],
        **{name: [column[i] for i in order] for name, column in zip(PRICE_COLUMNS, prices)},
        "volume": [round(volumes[i]) for i in order],  # half to even, as polars' round
        "adjusted_close": [adjusted[i] for i in order],
        "fetch_timestamp": [fetch_timestamp] * len(order),
        "batch_number": [batch_number] * len(order),
    }
    rows = pl.DataFrame([pl.Series(name, values[name], dtype=kinds[name]) for name in COLUMNS])
    return rows, dropped


def _raw_columns(raw: "pl.DataFrame") -> dict[str, list]:
    """The raw bars as Python lists: `date` as datetime.date, the numbers as float with NaN as None."""
    import polars as pl

    numbers = (*PRICE_COLUMNS, "adjusted_close", "volume")
    kinds = raw.schema
    if kinds.get("date") != pl.Date or any(kinds.get(name) != pl.Float64 for name in numbers):
        raw = raw.select(pl.col("date").cast(pl.Date), *[pl.col(name).cast(pl.Float64) for name in numbers])
    columns = {"date": raw.get_column("date").to_list()}
    for name in numbers:
        columns[name] = [None if value is None or value != value else value for value in raw.get_column(name).to_list()]
    return columns


def _is_valid_bar(open_, high, low, close, volume, adjusted) -> bool:
    """clean_bars' `invalid` rule for one bar (nulls and NaN already None)."""
    if volume is None or ohlc_problem(open_, high, low, close, volume) is not None:
        return False
    return adjusted is None or (math.isfinite(adjusted) and adjusted > 0)


def ohlc_problem(open_, high, low, close, volume=None) -> str | None:
    """What is wrong with a bar, or None: the one statement of a valid OHLC bar (clean_bars drops a bar
    that breaks it, `check` flags a stored row that does). Four finite prices above 0 with
    low <= min(open, close) and max(open, close) <= high; a volume, when given, finite and not negative."""
    prices = (open_, high, low, close)
    if any(value is None or value != value for value in prices):
        return "a price is missing"
    if not all(math.isfinite(value) for value in prices):
        return "a price is not finite"
    if min(prices) <= 0:
        return "a price is zero or negative"
    if low > high:
        return f"low {low:g} above high {high:g}"
    if high < max(open_, close):
        return f"high {high:g} below {'open' if open_ > close else 'close'} {max(open_, close):g}"
    if low > min(open_, close):
        return f"low {low:g} above {'open' if open_ < close else 'close'} {min(open_, close):g}"
    if volume is not None and not math.isfinite(volume):
        return f"volume {volume} is not finite"
    if volume is not None and volume < 0:
        return f"negative volume {volume}"
    return None


# ---------------------------------------------------------------------------------------------- actions

ACTION_COLUMNS = ("symbol", "date", "kind", "value", "fetch_timestamp")
DIVIDEND, SPLIT = "dividend", "split"
KINDS = (DIVIDEND, SPLIT)
SAME_VALUE = 1e-9  # relative: a value that differs by less is the same action seen again


def action_schema() -> "pl.Schema":
    import polars as pl

    return pl.Schema({"symbol": pl.String, "date": pl.Date, "kind": pl.String, "value": pl.Float64,
                      "fetch_timestamp": pl.String})


def empty_actions() -> "pl.DataFrame":
    import polars as pl

    return pl.DataFrame(schema=action_schema())


def actions_from_raw(raw: "pl.DataFrame", *, symbol: str, fetch_timestamp: str, first_day: dt.date | None = None,
                     last_day: dt.date | None = None) -> "pl.DataFrame":
    """The actions in a symbol's raw bars (sources.yahoo's `dividend` and `split` columns), ex-dates in
    first_day..last_day: dividends above 0, splits other than 0 and 1 (yfinance's "no split")."""
    import polars as pl

    found = []
    if "date" in raw.columns:
        for kind, column in ((DIVIDEND, "dividend"), (SPLIT, "split")):
            if column not in raw.columns:
                continue
            for day, value in zip(raw.get_column("date").to_list(), raw.get_column(column).to_list()):
                if day is None or value is None or not math.isfinite(value) or value <= 0:
                    continue
                if kind == SPLIT and abs(value - 1.0) < SAME_VALUE:
                    continue
                if (first_day is not None and day < first_day) or (last_day is not None and day > last_day):
                    continue
                found.append((symbol, day, kind, float(value), fetch_timestamp))
    if not found:
        return empty_actions()
    frame = pl.DataFrame(found, schema=action_schema(), orient="row")
    return frame.unique(subset=["symbol", "date", "kind"], keep="last", maintain_order=True).sort("date", "kind")


# ---------------------------------------------------------------------------------------------- repairs
# A day Yahoo served with its prices unmistakably 100 times too big (cents for dollars) is stored repaired
# (fetch/unit_errors.py finds it); the repair is recorded in repairs/SYMBOL.parquet (dataset/repairs.py):
# what Yahoo said (reported_*), what is stored, when (the fetch's fetch_timestamp) and why (reason, detail).

REPAIRED_PRICES = ("open", "high", "low", "close", "adjusted_close")
REPAIR_COLUMNS = ("symbol", "date", *(f"reported_{name}" for name in REPAIRED_PRICES), *REPAIRED_PRICES,
                  "fetch_timestamp", "reason", "detail")
UNIT_ERROR = "unit_error_100x"  # the one reason a day is repaired


def repair_schema() -> "pl.Schema":
    import polars as pl

    return pl.Schema({name: pl.String if name in ("symbol", "fetch_timestamp", "reason", "detail")
                      else pl.Date if name == "date" else pl.Float64 for name in REPAIR_COLUMNS})


def empty_repairs() -> "pl.DataFrame":
    import polars as pl

    return pl.DataFrame(schema=repair_schema())
