"""Build a store's files in the exact contract shapes, with chosen rows, for tests that read a store back.

    store = as_store(tmp_path / "data")            # or "s3://bucket/prefix" (with the moto fixtures)
    day = build_day(store, date(2026, 1, 7), ["BHP", "CBA", "NAB"], batch_size=2,
                    failures={"NAB": "not_found"}, missing_batches=[1])

writes symbols/D-symbols.csv, raw-data/D-batch-N.parquet, runs/D/batch-N.json and runs/D/run.json.
Prices are a pure function of (symbol, date, version) (`price`), so a test can say which fetch a row came
from: version 0 prices are below 1000, version v adds v * 1000.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from stockstream_cli.dataset import layout
from stockstream_cli import schema
from stockstream_cli.dataset.store import Store, open_store

DEFAULT_TIMESTAMP = "2026-01-05T08:00:00.000Z"


def as_store(where: "str | os.PathLike | Store") -> Store:
    return where if hasattr(where, "put") else open_store(os.fspath(where))


def weekdays(end: dt.date, lookback_days: int) -> list[dt.date]:
    """Monday-to-Friday days of the lookback window ending at `end` (end included): stand-in trading days."""
    window = (end - dt.timedelta(days=offset) for offset in range(lookback_days))
    return sorted(day for day in window if day.weekday() < 5)


def price(symbol: str, day: dt.date, version: int = 0) -> float:
    """A deterministic close: distinct per symbol and day; version v adds v * 1000."""
    return round(sum(map(ord, symbol)) % 97 + 1 + (day.toordinal() % 11) * 0.25 + version * 1000, 3)


def bar(symbol: str, day: dt.date, *, batch_number: int = 0, version: int = 0,
        fetch_timestamp: str = DEFAULT_TIMESTAMP) -> dict[str, Any]:
    close = price(symbol, day, version)
    return {
        "symbol": symbol,
        "date": day,
        "open": round(close - 0.1, 3),
        "high": round(close + 0.5, 3),
        "low": round(close - 0.5, 3),
        "close": close,
        "volume": 1000 * (day.day + 1) + len(symbol),
        "adjusted_close": round(close * 0.9, 4),
        "fetch_timestamp": fetch_timestamp,
        "batch_number": batch_number,
    }


def bars(symbols: Iterable[str], days: Iterable[dt.date], **kwargs: Any) -> list[dict[str, Any]]:
    days = list(days)
    return [bar(symbol, day, **kwargs) for symbol in sorted(symbols) for day in days]


def parquet_bytes(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """Rows in exactly the contract's Parquet schema."""
    import polars as pl

    frame = pl.DataFrame(list(rows), schema=schema.polars_schema(), orient="row") if rows else schema.empty_frame()
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def write_batch(store: Store, day: dt.date, batch_number: int, rows: Sequence[Mapping[str, Any]]) -> str:
    key = layout.batch_data_key(day, batch_number)
    store.put(key, parquet_bytes(rows))
    return key


def manifest(batch_number: int, symbols: Sequence[str], failures: Mapping[str, str] | None = None,
             *, day: dt.date, execution_time: float = 1.5) -> dict[str, Any]:
    """The fetch-batch JSON (and runs/D/batch-N.json) of a batch of `symbols` of which `failures` failed."""
    failures = dict(failures or {})
    failed = sorted(symbol for symbol in symbols if symbol in failures)
    fetched = len(symbols) - len(failed)
    return {
        "statusCode": 200,
        "body": f"batch {batch_number}: {fetched} of {len(symbols)} symbols fetched",
        "metadata": {
            "batch_number": batch_number,
            "symbols_processed": len(symbols),
            "symbols_fetched": fetched,
            "symbols_failed": failed,
            "failure_reasons": {symbol: failures[symbol] for symbol in failed},
            "execution_time": execution_time,
            "s3_key": layout.batch_data_key(day, batch_number),
        },
    }


def write_manifest(store: Store, day: dt.date, document: Mapping[str, Any]) -> str:
    key = layout.batch_manifest_key(day, document["metadata"]["batch_number"])
    store.put(key, json.dumps(document, indent=2).encode())
    return key


def write_symbols(store: Store, day: dt.date, symbols: Iterable[str], batch_size: int = 100) -> dict[int, list[str]]:
    """symbols/D-symbols.csv in the contract's columns; returns {batch_number: [symbols]}."""
    from stockstream_cli.dataset.symbols import Listing, to_csv

    ordered = sorted(set(symbols))
    listings = [
        Listing(symbol, f"{symbol} LIMITED", "Materials", dt.date(2000, 1, 4), 1_000_000 + index, index // batch_size)
        for index, symbol in enumerate(ordered)
    ]
    store.put(layout.symbols_key(day), to_csv(listings))
    batches: dict[int, list[str]] = {}
    for listing in listings:
        batches.setdefault(listing.batch_number, []).append(listing.symbol)
    return batches


def write_run_summary(store: Store, day: dt.date, summary: Mapping[str, Any]) -> str:
    key = layout.run_summary_key(day)
    store.put(key, json.dumps(summary, indent=2).encode())
    return key


def build_day(
    store: "str | os.PathLike | Store",
    day: dt.date,
    symbols: Iterable[str],
    *,
    batch_size: int = 100,
    lookback_days: int = 5,
    failures: Mapping[str, str] | None = None,
    missing_batches: Iterable[int] = (),
    version: int = 0,
    fetch_timestamp: str | None = None,
    write_list: bool = True,
    write_run: bool = True,
    execution_time: float = 12.5,
) -> dict[str, Any]:
    """A whole day as a run leaves it: the list, a data file and manifest per batch, and run.json.

    Failed symbols have no rows; missing batches have neither data file nor manifest (a run that died).
    Returns the run-local summary written to runs/D/run.json (also when write_run is False).
    """
    store = as_store(store)
    failures = dict(failures or {})
    missing = set(missing_batches)
    stamp = fetch_timestamp or f"{day.isoformat()}T08:00:00.000Z"
    ordered = sorted(set(symbols))
    batches = {n: ordered[n * batch_size:(n + 1) * batch_size] for n in range((len(ordered) + batch_size - 1) // batch_size)}
    if write_list:
        write_symbols(store, day, ordered, batch_size)
    days = weekdays(day, lookback_days)
    for number, members in batches.items():
        if number in missing:
            continue
        fetched = [symbol for symbol in members if symbol not in failures]
        write_batch(store, day, number, bars(fetched, days, batch_number=number, version=version, fetch_timestamp=stamp))
        write_manifest(store, day, manifest(number, members, failures, day=day))
    done = [n for n in batches if n not in missing]
    summary = {
        "date": day.isoformat(),
        "total_symbols": len(ordered),
        "num_batches": len(batches),
        "batches_succeeded": len(done),
        "batches_failed": sorted(missing),
        "symbols_fetched": sum(1 for n in done for symbol in batches[n] if symbol not in failures),
        "symbols_failed": sorted(symbol for n in done for symbol in batches[n] if symbol in failures),
        "execution_time": execution_time,
    }
    if write_run:
        write_run_summary(store, day, summary)
    return summary
