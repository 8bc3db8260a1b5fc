"""B1, storm scenario: `stockstream run-local` as a whole process while the simulated Yahoo answers every request
429 "Too Many Requests" for a window (`FakeYahoo.storm`), then recovers.

Measured: the run's wall time, the HTTP requests sent during the storm (every kind, counted at the simulator),
the symbols lost (no rows after the run and, when it recorded retryable failures, one `rerun-failed`: 0 is the
goal) and the longest batch (its `execution_time`) against the Lambda limit of 900 s, the figure that says a
deployed batch would survive the same storm. The default pacing (--delay 2 per worker, retries and retry wait
as the contract's defaults), a cold yfinance cache and an empty store.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from benchmarks.common import DAY, Figure, asx_list, launch_argv, run_process, stockstream_env
from benchmarks.fake_server import FakeServer

LAMBDA_LIMIT_SECONDS = 900.0


def measure(*, symbols: int, workers: int, latency: float, storm_seconds: float, storm_start: float,
            delay: float | None, work: Path) -> list[Figure]:
    list_path = work / f"asx-list-storm-{symbols}.csv"
    asx_list(list_path, symbols)
    store = tempfile.mkdtemp(prefix="stockstream-bench-storm-")
    pacing = () if delay is None else ("--delay", f"{delay:g}")
    label = f"[storm {storm_seconds:g} s from t={storm_start:g} s] {symbols} symbols, {workers} workers"
    with FakeServer(latency=latency) as server:
        fake = server.fake
        begin = fake._clock() + storm_start
        fake.storm(storm_seconds, start=begin)
        run = run_process(launch_argv("run-local", "--date", DAY.isoformat(), "--from-file", str(list_path),
                                      "--store", store, "--concurrency", str(workers), "--json", *pacing),
                          env=stockstream_env(server.environment()))
        during = [r for r in fake.requests if begin <= r.at < begin + storm_seconds]
        summary = _summary(run.stdout)
        longest = _longest_batch(Path(store))  # before a rerun rewrites the manifests' execution_time
        rerun = None
        if summary.get("symbols_failed") or summary.get("batches_failed"):
            rerun = run_process(launch_argv("rerun-failed", "--date", DAY.isoformat(), "--store", store, "--json",
                                            *pacing), env=stockstream_env(server.environment()))
    fetched = _fetched_symbols(Path(store))
    lost = symbols - len(fetched)
    kinds: dict[str, int] = {}
    for request in during:
        kinds[request.kind] = kinds.get(request.kind, 0) + 1
    failed_first = len(summary.get("symbols_failed", []))
    return [
        Figure("B1", f"{label}: run-local wall time", run.wall, "s",
               note=f"exit {run.returncode}; {failed_first} symbols recorded as failed by the run"
                    + (f", then rerun-failed {rerun.wall:.1f} s, exit {rerun.returncode}" if rerun else "")),
        Figure("B1", f"{label}: HTTP requests sent during the storm", len(during), "requests",
               note=(", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) or "none")
                    + f" (the budget's floor, 0.1 req/s, allows {storm_seconds * 0.1:.0f} in {storm_seconds:g} s, "
                      f"plus the requests in flight when it began)"),
        Figure("B1", f"{label}: symbols lost", lost, "", "0", lost == 0,
               f"{len(fetched)} of {symbols} have rows after the run" + (" and one rerun-failed" if rerun else "")),
        Figure("B1", f"{label}: longest batch vs the Lambda limit", longest, "s", f"< {LAMBDA_LIMIT_SECONDS:g} s",
               longest < LAMBDA_LIMIT_SECONDS, "execution_time of the slowest runs/D/batch-N.json of the run"),
    ]


def _summary(stdout: str) -> dict:
    try:
        return json.loads(stdout)
    except ValueError:
        return {}


def _fetched_symbols(store: Path) -> set[str]:
    import polars as pl

    files = sorted((store / "raw-data").glob("*.parquet"))
    if not files:
        return set()
    return set(pl.concat([pl.read_parquet(f, columns=["symbol"]) for f in files]).get_column("symbol").to_list())


def _longest_batch(store: Path) -> float:
    from stockstream_cli.dataset import manifest

    times = [manifest.parse(path.read_bytes(), path.name).execution_time or 0.0
             for path in (store / "runs" / DAY.isoformat()).glob("batch-*.json")]
    return max(times, default=0.0)
