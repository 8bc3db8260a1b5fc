"""B3 CPU per symbol: stockstream's fetch path against a bare yfinance loop, on the same responses.

In this process, Yahoo simulated with no latency and no limit (FakeYahoo at the HTTP transport), so only CPU
counts. The fetch path is run.batch.fetch_batch (yfinance's parse, cleaning, polars, the Parquet file and the
manifest); the bare loop is `yf.Ticker(code).history(...)` with the same window and flags. Each round
fetches fresh symbols (yfinance keeps answers in memory). The two run in pairs, back to back, in alternating
order, and the figure is the median over the pairs of bare/fetch: this machine's speed drifts by tens of
percent from minute to minute, and a ratio taken within a pair cancels what the two shared.
"""

from __future__ import annotations

import datetime as dt
import statistics
import tempfile
import time

from benchmarks.common import DAY, Figure
from benchmarks.fake_server import fake_yahoo_class


def measure(*, symbols: int, rounds: int) -> list[Figure]:
    import yfinance as yf

    fake_yahoo = fake_yahoo_class()  # and tests/ on sys.path
    from asx_fake import asx_codes
    from stockstream_cli.dataset.commit import Writer
    from stockstream_cli.fetch import batch as fetch
    from stockstream_cli.run.batch import fetch_batch
    from stockstream_cli.sources import yahoo
    from stockstream_cli.settings import Settings
    from stockstream_cli.dataset.store import open_store

    codes = asx_codes(symbols * 2 * (rounds + 1))
    chunks = [codes[i:i + symbols] for i in range(0, len(codes), symbols)]
    settings = Settings.resolve(environ={}, delay=0, retry_wait=0, cache_dir=tempfile.mkdtemp(prefix="stockstream-bench-cache-"))
    store = open_store(tempfile.mkdtemp(prefix="stockstream-bench-store-"))
    first, last = fetch.lookback_window(DAY, settings.lookback_days)

    def fetch_path(chunk: list[str]) -> None:
        fetch_batch(Writer(store, "benchmark"), DAY, 0, settings, symbols=chunk)

    def bare_loop(chunk: list[str]) -> None:
        for code in chunk:
            yf.Ticker(f"{code}.AX").history(start=first, end=last + dt.timedelta(days=1), interval="1d",
                                            auto_adjust=False, actions=False, keepna=True)

    timings: dict[str, list[float]] = {"fetch": [], "bare": []}
    with fake_yahoo().installed():
        yahoo.prepare(codes, settings.cache_dir)  # both ask one chart request per symbol, no timezone probe
        for number in range(rounds + 1):
            pair = [("fetch", fetch_path), ("bare", bare_loop)]
            for name, action in (pair if number % 2 == 0 else pair[::-1]):
                chunk = chunks.pop()
                started = time.process_time()
                action(chunk)
                if number:  # round 0 warms up
                    timings[name].append((time.process_time() - started) / len(chunk) * 1000)
    fetch_ms = statistics.median(timings["fetch"])
    bare_ms = statistics.median(timings["bare"])
    speed = statistics.median(bare / fetch for fetch, bare in zip(timings["fetch"], timings["bare"]))
    return [
        Figure("B3", "fetch path CPU per symbol (parse, clean, polars, Parquet)", fetch_ms, "ms"),
        Figure("B3", "bare yf.Ticker(s).history() CPU per symbol", bare_ms, "ms"),
        Figure("B3", "fetch path speed vs bare yfinance loop", speed, "x", ">= 0.8x", speed >= 0.8,
               f"median of {rounds} pairs of {symbols} symbols each"),
    ]
