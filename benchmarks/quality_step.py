"""The data-quality step on a full-size day: its time and the process's peak memory.

    python benchmarks/quality_step.py [--symbols 1838] [--days 15]

Builds a local store of `--days` daily runs of `--symbols` symbols (batches of 100, a 5-day lookback, one
symbol failed every day) with tests/storefactory.py, then runs quality.run_quality for the last day in a
fresh process, as the asx-symbol-updater Lambda's finalize action does, and prints the seconds and the peak
RSS. The Lambda's memory setting (stockstream_cli/aws/resources.py) must leave room above that figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAST_DAY = dt.date(2026, 11, 13)

MEASURE = """
import json, resource, sys, time
from stockstream_cli.quality.check import run_quality
from stockstream_cli.dataset.store import open_store
started = time.perf_counter()
block = run_quality(open_store(sys.argv[1]), __import__("datetime").date.fromisoformat(sys.argv[2]), sys.argv[3])
print(json.dumps({"seconds": round(time.perf_counter() - started, 2),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  "quality": {k: v for k, v in block.items() if k != "alert"}}))
"""


def build(root: str, symbols: int, days: int) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    from storefactory import build_day

    from stockstream_cli import calendar
    from stockstream_cli.dataset.store import open_store

    store = open_store(root)
    codes = [f"S{i:04d}" for i in range(symbols)]
    for day in calendar.sessions(LAST_DAY - dt.timedelta(days=days * 2), LAST_DAY)[-days:]:
        build_day(store, day, codes, failures={codes[3]: "not_found"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=1838)
    parser.add_argument("--days", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        build(root, args.symbols, args.days)
        after_close = f"{LAST_DAY.isoformat()}T07:00:00Z"  # 18:00 in Sydney: the day itself is checked
        out = subprocess.run([sys.executable, "-c", MEASURE, root, LAST_DAY.isoformat(), after_close],
                             capture_output=True, text=True, check=True)
        result = json.loads(out.stdout)
    print(f"{args.symbols} symbols, {args.days} daily runs: check of {LAST_DAY} in {result['seconds']} s, "
          f"peak RSS {result['peak_rss_mb']} MB; {json.dumps(result['quality'])}")


if __name__ == "__main__":
    main()
