"""B4 reading back: a year of batch files, read for two symbols, against a naive pandas reader.

The store is built in the real layout: for each of `days` trading days (weekdays ending at DAY), the day's
ASX list (symbols/D-symbols.csv) and one Parquet file per batch (raw-data/D-batch-N.parquet, written by
datafile.to_parquet_bytes exactly as a fetch writes it), each holding its batch's symbols over the 5-day
lookback window, so every (symbol, date) is in several files and the newest fetch must win.

Measured: `DataAggregator.load_symbols(["BHP", "CBA"])` in this process, `stockstream load --symbols BHP CBA`
as a whole process, and the naive reader (pandas reads every file, concatenates, filters); on a local folder
and on S3 (a moto server), then again after `stockstream compact`. Each load figure comes twice: the first
load, with the footer index cold (every data file's footer read once into it), and the median of the later
loads, with the index warm. Every measurement starts from an empty cache folder (STOCKSTREAM_CACHE_DIR), so
no figure borrows an index from another.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import DAY, Figure, median_time, run_process, stockstream_env
from stockstream_cli.dataset import symbols as stored_symbols

SYMBOLS = ["BHP", "CBA"]
BATCH_SIZE = 100
LOOKBACK = 5


def trading_days(count: int, last: dt.date = DAY) -> list[dt.date]:
    days, day = [], last
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day -= dt.timedelta(days=1)
    return days[::-1]


def universe(batches: int) -> list[str]:
    """ASX-like codes filling `batches` batches (at most the real list's 1,838), BHP and CBA among them."""
    from benchmarks.fake_server import use_test_fakes

    use_test_fakes()
    from asx_fake import asx_codes

    count = min(1838, batches * BATCH_SIZE)
    codes = [code for code in asx_codes(count) if code not in SYMBOLS][: count - len(SYMBOLS)]
    return sorted(codes + SYMBOLS)


def day_frame(codes: list[str], fetch_day: dt.date):
    """Every symbol's bars over the lookback window ending at fetch_day, as a fetch on that day stores them."""
    import numpy as np
    import polars as pl

    window = [fetch_day - dt.timedelta(days=k) for k in range(LOOKBACK)]
    window = sorted(day for day in window if day.weekday() < 5)
    n, w = len(codes), len(window)
    base = 1 + (np.arange(n) * 7919 % 997) / 10.0
    wiggle = np.array([(day.toordinal() % 17) / 100.0 for day in window])
    close = np.round(np.repeat(base, w) * (1 + np.tile(wiggle, n)) + fetch_day.toordinal() % 3 / 1000.0, 3)
    return pl.DataFrame({
        "symbol": np.repeat(np.array(codes, dtype=object), w).tolist(),
        "date": pl.Series(np.tile(np.array(window, dtype="datetime64[D]"), n)),
        "open": close - 0.01, "high": close + 0.05, "low": close - 0.05, "close": close,
        "volume": np.tile(np.arange(w, dtype=np.int64) * 1000 + 500, n),
        "adjusted_close": close * 0.98,
        "fetch_timestamp": f"{fetch_day.isoformat()}T08:00:00.000Z",
        "batch_number": pl.Series(np.repeat(np.arange(n, dtype=np.int32) // BATCH_SIZE, w)),
    })


def build_year(root: Path, *, days: int, batches: int) -> dict[str, bytes]:
    """Write the year into the local store `root`; returns {key: bytes} of everything written (for S3)."""
    from stockstream_cli.dataset import datafile, layout
    from stockstream_cli.sources import asx
    from stockstream_cli.dataset.store import open_store

    store = open_store(str(root))
    codes = universe(batches)
    listings = [stored_symbols.Listing(code, f"{code} LIMITED", "Materials", dt.date(2000, 1, 4), 1_000_000 + i, i // BATCH_SIZE)
                for i, code in enumerate(codes)]
    symbols_csv = stored_symbols.to_csv(listings)
    files: dict[str, bytes] = {}
    for day in trading_days(days):
        files[layout.symbols_key(day)] = symbols_csv
        frame = day_frame(codes, day)
        for (number,), part in frame.partition_by("batch_number", as_dict=True, maintain_order=True).items():
            files[layout.batch_data_key(day, number)] = datafile.to_parquet_bytes(part)
    for key, data in files.items():
        store.put(key, data)
    return files


def upload(files: dict[str, bytes], bucket: str) -> None:
    import boto3

    client = boto3.client("s3", region_name="ap-southeast-2")
    client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "ap-southeast-2"})
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda item: client.put_object(Bucket=bucket, Key=item[0], Body=item[1]), files.items()))


def naive_local(root: Path):
    import pandas as pd

    frames = [pd.read_parquet(path) for path in sorted((root / "raw-data").glob("*.parquet"))]
    everything = pd.concat(frames, ignore_index=True)
    return everything[everything["symbol"].isin(SYMBOLS)]


def naive_s3(bucket: str):
    import boto3
    import pandas as pd

    client = boto3.client("s3", region_name="ap-southeast-2")
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="raw-data/")
            for o in page.get("Contents", [])]
    frames = [pd.read_parquet(io.BytesIO(client.get_object(Bucket=bucket, Key=key)["Body"].read())) for key in keys]
    everything = pd.concat(frames, ignore_index=True)
    return everything[everything["symbol"].isin(SYMBOLS)]


@contextlib.contextmanager
def empty_cache_folder():
    """STOCKSTREAM_CACHE_DIR at a new empty folder for this process while the block runs: a cold footer index."""
    saved = os.environ.get("STOCKSTREAM_CACHE_DIR")
    folder = tempfile.mkdtemp(prefix="stockstream-bench-cache-")
    os.environ["STOCKSTREAM_CACHE_DIR"] = folder
    try:
        yield folder
    finally:
        if saved is None:
            os.environ.pop("STOCKSTREAM_CACHE_DIR", None)
        else:
            os.environ["STOCKSTREAM_CACHE_DIR"] = saved
        shutil.rmtree(folder, ignore_errors=True)


def load_in_process(store: str, repeats: int) -> tuple[float, float, int]:
    """(first load with the index cold, median of `repeats` later loads with it warm, rows)."""
    from stockstream_cli.dataset.aggregate import DataAggregator

    with empty_cache_folder():
        aggregator = DataAggregator(store)
        started = time.perf_counter()
        rows = aggregator.load_symbols(SYMBOLS).height
        cold = time.perf_counter() - started
        return cold, median_time(lambda: aggregator.load_symbols(SYMBOLS), repeats), rows


def load_process(store: str, repeats: int) -> tuple[float, float, int]:
    """(the first `stockstream load` with an empty cache folder, median of `repeats` later ones, rows)."""
    argv = [sys.executable, "-m", "stockstream_cli", "load", "--symbols", *SYMBOLS, "--store", store, "--format", "csv"]
    env = stockstream_env()
    walls, lines = [], 0
    try:
        for _ in range(1 + repeats):
            run = run_process(argv, env=env)
            if run.returncode != 0:
                raise RuntimeError(f"stockstream load failed: {run.stderr.strip()[-500:]}")
            walls.append(run.wall)
            lines = run.stdout.count("\n") - 1
    finally:
        shutil.rmtree(env["STOCKSTREAM_CACHE_DIR"], ignore_errors=True)
    return walls[0], statistics.median(walls[1:]), lines


def compact(store: str, env: dict[str, str]) -> float:
    run = run_process([sys.executable, "-m", "stockstream_cli", "compact", "--store", store, "--json"], env=env)
    if run.returncode != 0:
        raise RuntimeError(f"stockstream compact failed: {run.stderr.strip()[-500:]}")
    return run.wall


def measure(*, days: int, batches: int, repeats: int, s3: bool, work: Path, s3_latency: float = 0.0) -> list[Figure]:
    root = work / "year"
    started = time.perf_counter()
    files = build_year(root, days=days, batches=batches)
    n_data = sum(1 for key in files if key.startswith("raw-data/"))
    built = time.perf_counter() - started
    label = f"{days} days x {batches} batches = {n_data} files"
    figures: list[Figure] = []

    started = time.perf_counter()
    naive_rows = len(naive_local(root))
    naive = time.perf_counter() - started
    figures.append(Figure("B4", "local: naive pandas reader (every file, concat, filter)", naive, "s",
                          note=f"{label}; built in {built:.1f} s; {naive_rows} rows before dedup"))
    figures += _local_figures(str(root), naive, repeats, "local, batch files")

    env = stockstream_env()
    figures.append(Figure("B4", "local: stockstream compact", compact(str(root), env), "s"))
    figures += _local_figures(str(root), naive, repeats, "local, compacted", compacted=True)
    if s3:
        figures += _s3_figures(files, repeats, label)
        if s3_latency > 0:
            figures += _s3_latency_figures(files, repeats, label, s3_latency)
    return figures


def _local_figures(store: str, naive: float, repeats: int, label: str, *, compacted: bool = False) -> list[Figure]:
    cold, warm, rows = load_in_process(store, repeats)
    speedup = naive / warm
    process_cold, process_warm, lines = load_process(store, repeats)
    return [
        Figure("B4", f"{label}: load_symbols(BHP, CBA) in-process", warm, "s", "< 0.5 s", warm < 0.5,
               f"index warm: {rows} rows, median of {repeats} after the first load"),
        Figure("B4", f"{label}: load_symbols(BHP, CBA) in-process, first load (index cold)", cold, "s",
               note="every footer read once into the index"),
        Figure("B4", f"{label}: load_symbols speed-up vs naive (index warm)", speedup, "x", ">= 10x", speedup >= 10),
        Figure("B4", f"{label}: `stockstream load --symbols BHP CBA` process", process_warm, "s",
               *(("< 0.4 s", process_warm < 0.4) if compacted else ("", None)),
               note=f"index warm: {lines} rows, median of {repeats} after the first"),
        Figure("B4", f"{label}: `stockstream load --symbols BHP CBA` process, first (index cold)", process_cold, "s"),
    ]


@contextlib.contextmanager
def moto_s3(*, own_process: bool = False):
    """A moto server (tests/aws_fake.py), every AWS access of this process (and its children) pointed at it;
    yields its URL. `own_process`: the server runs in a process of its own, so its Python does not share the
    measured reader's interpreter lock (as S3 does not)."""
    from benchmarks.fake_server import use_test_fakes

    use_test_fakes()
    from aws_fake import moto_server, pointed_at

    with moto_server(own_process=own_process) as endpoint, pointed_at(endpoint):
        yield endpoint


def _s3_latency_figures(files: dict[str, bytes], repeats: int, label: str, latency: float) -> list[Figure]:
    """The year on S3 `latency` seconds away (a proxy in front of moto), as the pipeline leaves it: its own
    compaction step (compact_earlier_days for the last day) folds every day before the last one."""
    from benchmarks.latency_proxy import LatencyProxy
    from stockstream_cli.dataset.compact import compact_earlier_days
    from stockstream_cli.dataset.store import open_store

    ms = f"{latency * 1000:g} ms"
    with moto_s3(own_process=True) as endpoint:
        bucket = "stockstream-benchmark-far"
        upload(files, bucket)  # straight to moto: the year's writes are not what is measured
        with LatencyProxy.in_own_process(endpoint, latency=latency) as proxy:
            os.environ["AWS_ENDPOINT_URL"] = proxy.url
            store = f"s3://{bucket}"
            started = time.perf_counter()
            step = compact_earlier_days(open_store(store), DAY, command="benchmark")
            compaction = time.perf_counter() - started
            left = sum(1 for key in open_store(store).list("raw-data/"))
            before = proxy.requests
            started = time.perf_counter()
            naive_rows = len(naive_s3(bucket))
            naive = time.perf_counter() - started
            naive_requests = proxy.requests - before
            with empty_cache_folder():
                from stockstream_cli.dataset.aggregate import DataAggregator

                before = proxy.requests
                aggregator = DataAggregator(store)
                started = time.perf_counter()
                rows = aggregator.load_symbols(SYMBOLS).height
                cold = time.perf_counter() - started
                cold_requests = proxy.requests - before
                before = proxy.requests
                warm = median_time(lambda: aggregator.load_symbols(SYMBOLS), repeats)
                warm_requests = (proxy.requests - before) / max(repeats, 1)
    return [
        Figure("B4", f"S3 +{ms}/request: the pipeline's compaction step (compact_earlier_days)", compaction, "s",
               note=f"{label}; {step['files']} batch files into {len(step['months'])} month files; "
                    f"{left} data files left"),
        Figure("B4", f"S3 +{ms}/request: naive pandas reader (every file, after the compaction)", naive, "s",
               note=f"{naive_requests} requests; {naive_rows} rows before dedup"),
        Figure("B4", f"S3 +{ms}/request, pipeline-compacted: load_symbols(BHP, CBA) in-process, cold", cold, "s",
               "< 2 s", cold < 2.0, f"{rows} rows; {cold_requests} requests; a new DataAggregator, empty cache "
                                  f"folder; {naive / cold:.1f}x the naive reader"),
        Figure("B4", f"S3 +{ms}/request, pipeline-compacted: load_symbols(BHP, CBA) in-process, warm", warm, "s",
               "< 0.5 s", warm < 0.5, f"median of {repeats}; {warm_requests:.0f} requests each"),
    ]


def _s3_figures(files: dict[str, bytes], repeats: int, label: str) -> list[Figure]:
    with moto_s3():
        return _s3_figures_on_moto(files, repeats, label)


def _s3_figures_on_moto(files: dict[str, bytes], repeats: int, label: str) -> list[Figure]:
    bucket = "stockstream-benchmark"
    upload(files, bucket)
    store = f"s3://{bucket}"
    started = time.perf_counter()
    naive_s3(bucket)
    naive = time.perf_counter() - started
    figures = [Figure("B4", "S3 (moto server): naive pandas reader", naive, "s", note=label)]
    for stage in ("batch files", "compacted"):
        if stage == "compacted":
            figures.append(Figure("B4", "S3: stockstream compact", compact(store, stockstream_env()), "s"))
        cold, warm, rows = load_in_process(store, repeats)
        processes = repeats if stage == "compacted" else 1  # a cold process reads thousands of footers: once
        process_cold, process_warm, lines = load_process(store, processes)
        figures += [
            Figure("B4", f"S3, {stage}: load_symbols(BHP, CBA) in-process", warm, "s",
                   note=f"index warm: {rows} rows, median of {repeats} after the first; "
                        f"{naive / warm:.1f}x the naive reader"),
            Figure("B4", f"S3, {stage}: load_symbols(BHP, CBA) in-process, first load (index cold)", cold, "s"),
            Figure("B4", f"S3, {stage}: `stockstream load --symbols BHP CBA` process", process_warm, "s",
                   note=f"index warm: {lines} rows, median of {processes} after the first"),
            Figure("B4", f"S3, {stage}: `stockstream load --symbols BHP CBA` process, first (index cold)",
                   process_cold, "s"),
        ]
    return figures
