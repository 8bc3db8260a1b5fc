"""Yahoo's one unmistakable error, repaired: a day whose prices are all about 100 times both neighbouring
sessions' (cents served for dollars, a fault yfinance and yahooquery users report again and again).

Pure: one symbol's clean rows in, (rows with such days divided by 100, the repairs made) out. A day is repaired
only when it has a row on each side and every one of its five prices (open, high, low, close, adjusted_close),
divided by UNIT_ERROR_FACTOR, lies within the neighbours' range of that price (their lows to their highs for
open/high/low/close; their adjusted closes' range, scaled alike, for adjusted_close) widened by
UNIT_ERROR_TOLERANCE. Anything less certain (a real +60 % day, a 100x day at the window's edge, two such days
in a row) stays as Yahoo reports it, and `check` flags it. Volume is never touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import schema
from ..thresholds import UNIT_ERROR_FACTOR, UNIT_ERROR_TOLERANCE

if TYPE_CHECKING:
    import polars as pl

_SCREEN = UNIT_ERROR_FACTOR / 2  # a close less than this many times both neighbours' is not looked at further


def repair_unit_errors(rows: "pl.DataFrame") -> tuple["pl.DataFrame", "pl.DataFrame | None"]:
    """(rows, repairs): `rows` (one symbol's, in the contract's schema, sorted by date) with every unmistakable
    100x day divided by 100, and the repair records (schema.REPAIR_COLUMNS; None when nothing was repaired)."""
    if rows.height < 3:
        return rows, None
    closes = rows["close"].to_list()
    candidates = [i for i in range(1, len(closes) - 1) if _far_above(closes[i], closes[i - 1], closes[i + 1])]
    if not candidates:
        return rows, None
    prices = {name: rows[name].to_list() for name in schema.REPAIRED_PRICES}
    repaired = [i for i in candidates if _unmistakable(prices, i)]
    if not repaired:
        return rows, None
    return _divided(rows, prices, repaired), _records(rows, prices, repaired)


def _far_above(value, before, after) -> bool:
    return bool(value and before and after and value > _SCREEN * before and value > _SCREEN * after)


def _unmistakable(prices: dict[str, list], i: int) -> bool:
    """Every price of day i, divided by the factor, within its neighbours' range widened by the tolerance."""
    low, high = (1 - UNIT_ERROR_TOLERANCE), (1 + UNIT_ERROR_TOLERANCE)
    floor = min(prices["low"][i - 1], prices["low"][i + 1])
    ceiling = max(prices["high"][i - 1], prices["high"][i + 1])
    for name in ("open", "high", "low", "close"):
        if not floor * low <= prices[name][i] / UNIT_ERROR_FACTOR <= ceiling * high:
            return False
    # adjusted_close: the same range in adjusted terms, each neighbour scaled by its own adjusted/close factor
    scaled = [prices[bound][j] * prices["adjusted_close"][j] / prices["close"][j]
              for j in (i - 1, i + 1) for bound in ("low", "high")]
    return min(scaled) * low <= prices["adjusted_close"][i] / UNIT_ERROR_FACTOR <= max(scaled) * high


def _divided(rows: "pl.DataFrame", prices: dict[str, list], repaired: list[int]) -> "pl.DataFrame":
    import polars as pl

    fixed = set(repaired)
    columns = {name: pl.Series(name, [value / UNIT_ERROR_FACTOR if i in fixed else value
                                      for i, value in enumerate(values)], dtype=pl.Float64)
               for name, values in prices.items()}
    return rows.with_columns(**columns)


def _records(rows: "pl.DataFrame", prices: dict[str, list], repaired: list[int]) -> "pl.DataFrame":
    import polars as pl

    dates, stamps = rows["date"].to_list(), rows["fetch_timestamp"].to_list()
    symbol = rows["symbol"][0]
    records = []
    for i in repaired:
        ratio = prices["close"][i] / ((prices["close"][i - 1] + prices["close"][i + 1]) / 2)
        records.append({
            "symbol": symbol, "date": dates[i],
            **{f"reported_{name}": prices[name][i] for name in schema.REPAIRED_PRICES},
            **{name: prices[name][i] / UNIT_ERROR_FACTOR for name in schema.REPAIRED_PRICES},
            "fetch_timestamp": stamps[i], "reason": schema.UNIT_ERROR,
            "detail": (f"every price {UNIT_ERROR_FACTOR}x the neighbouring sessions' "
                       f"({dates[i - 1].isoformat()}, {dates[i + 1].isoformat()}; close {ratio:.1f}x their mean): "
                       f"stored divided by {UNIT_ERROR_FACTOR}"),
        })
    return pl.DataFrame(records, schema=schema.repair_schema())
