"""B8: `stockstream check` over a year of the full list, as a process: its wall time and peak RSS.

The store is built with tests/storefactory.py's build_day, each day as a run leaves it: that day's list
(symbols/D-symbols.csv), a data file and a manifest per batch of 100 (the 5-day lookback's rows), run.json,
and one symbol failed each day. `check --start FIRST --end LAST --json` then reads it all back, as a user
checking a year does; the fetcher runs the same check for one day inside its 512 MB on AWS.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from benchmarks.common import Figure, ProcessRun, run_process, stockstream_env

LAST_DAY = dt.date(2026, 11, 13)
LAMBDA_MB = 512


def build(root: Path, symbols: int, days: int) -> tuple[dt.date, dt.date]:
    from benchmarks.fake_server import use_test_fakes

    use_test_fakes()
    from storefactory import build_day

    from stockstream_cli import calendar
    from stockstream_cli.dataset.store import open_store

    store = open_store(str(root))
    codes = [f"S{i:04d}" for i in range(symbols)]
    sessions = calendar.sessions(LAST_DAY - dt.timedelta(days=days * 2), LAST_DAY)[-days:]
    for day in sessions:
        build_day(store, day, codes, failures={codes[3]: "not_found"})
    return sessions[0], sessions[-1]


def measure(*, symbols: int, days: int, work: Path) -> list[Figure]:
    import sys
    import time

    root = work / "b8-store"
    started = time.perf_counter()
    first, last = build(root, symbols, days)
    built = time.perf_counter() - started
    argv = [sys.executable, "-m", "stockstream_cli", "check", "--store", str(root), "--start", first.isoformat(),
            "--end", last.isoformat(), "--json"]
    run: ProcessRun = run_process(argv, env=stockstream_env())
    try:
        document = json.loads(run.stdout)
        missing = document.get("missing") or {}
        counts = {reason: len(items) for reason, items in missing.items()} if isinstance(missing, dict) else missing
        found = f"{document.get('sessions')} sessions x {document.get('symbols')} symbols, missing {counts}"
    except ValueError:
        found = (run.stderr.strip().splitlines() or ["no output"])[-1]
    note = f"exit {run.returncode}: {found}; store of {days} days x {symbols} symbols built in {built:.0f} s"
    return [
        Figure("B8", f"check of {days} sessions x {symbols} symbols: wall time", run.wall, "s", note=note),
        Figure("B8", f"check of {days} sessions x {symbols} symbols: peak RSS", run.max_rss_mb, "MB",
               f"< {LAMBDA_MB} MB", run.max_rss_mb < LAMBDA_MB and run.returncode in (0, 3), note),
    ]
