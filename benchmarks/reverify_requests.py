"""What re-verification of suspicious days costs in Yahoo requests (issue 25):
`python -m benchmarks.reverify_requests`.

Plays run-local over consecutive sessions on the fake Yahoo (tests/yahoo_fake.py, at the HTTP transport, every
request counted) with a market where some symbols get a suspicious day: served 100 times too big (some never
corrected, some corrected a few sessions later) or a genuine large move. Counts the chart requests against the
same play with a clean market (nothing suspicious, so nothing re-verified), and the bars those requests carried:
re-verification sends no request of its own, the symbol's daily request reaches back over its open suspicions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import tempfile
from pathlib import Path

from benchmarks.fake_server import use_test_fakes

use_test_fakes()

PRICES = ("open", "high", "low", "close")


def play(codes: list[str], sessions: list[dt.date], planted: list[tuple]) -> dict:
    """Chart requests, bars served, reverified (symbol, day)s, open suspicions and repairs of run-local once per
    session after its close, with `planted` errors: (code, day, kind, corrected_on or None)."""
    import actions_support
    from asx_fake import write_markit_csv
    from yahoo_fake import FakeYahoo, generated_bar, yahoo_symbol

    from stockstream_cli.dataset import manifest
    from stockstream_cli.dataset.aggregate import DataAggregator
    from stockstream_cli.dataset.store import LocalStore
    from stockstream_cli.dataset.suspicions import read_open
    from stockstream_cli.run import local
    from stockstream_cli.settings import Settings

    with tempfile.TemporaryDirectory() as folder, FakeYahoo().installed() as fake:
        fixes = {}
        for code, day, kind, corrected_on in planted:
            true = generated_bar(yahoo_symbol(code), day)
            if kind == "100x":
                fake.set_bar(code, day, **{f: true[f] * 100 for f in PRICES})
                if corrected_on:
                    fixes.setdefault(corrected_on, []).append((code, day, true))
            else:  # a genuine move: the price stays 1.6 times higher from that day on
                for later in sessions[sessions.index(day):]:
                    bar = generated_bar(yahoo_symbol(code), later)
                    fake.set_bar(code, later, **{f: bar[f] * 1.6 for f in PRICES})
        list_path = write_markit_csv(Path(folder) / "asx.csv", codes)
        store = LocalStore(Path(folder) / "data")
        settings = Settings.resolve(batch_size=100, delay=0, retry_wait=0, processes=1, cache_dir=f"{folder}/yf")
        reverified = 0
        for day in sessions:
            for code, bad_day, true in fixes.get(day, []):
                fake.set_bar(code, bad_day, **true)
            fake.set_as_of(actions_support.after_close(day))
            local.run_local(store, day, settings, source=local.asx_source(from_file=str(list_path)))
        for path in (Path(folder) / "data" / "runs").glob("*/batch-*.json"):
            record = manifest.parse(path.read_bytes(), path.name)
            reverified += sum(len(days) for days in record.details.get("reverified", {}).values())
        served = sum(_bars(q) for q in fake.requests if q.kind == "chart")
        return {"charts": fake.chart_requests(), "bars": served, "reverified": reverified,
                "open": len(read_open(store)), "repairs": DataAggregator(store).load_repairs().height}


def _bars(request) -> int:
    """Weekdays asked for by one chart request (the fake serves every weekday): what the response carries."""
    from yahoo_fake import SYDNEY

    start = dt.datetime.fromtimestamp(int(request.params["period1"]), SYDNEY).date()
    end = dt.datetime.fromtimestamp(int(request.params["period2"]), SYDNEY).date()
    return sum((start + dt.timedelta(days=i)).weekday() < 5 for i in range((end - start).days))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--sessions", type=int, default=15)
    parser.add_argument("--suspicious", type=int, default=10, help="suspicious days to plant")
    args = parser.parse_args(argv)

    from stockstream_cli import calendar
    from asx_fake import asx_codes

    codes = asx_codes(args.symbols)
    sessions = calendar.sessions(dt.date(2026, 9, 1), dt.date(2026, 11, 30))[:args.sessions]
    rng = random.Random(25)
    planted, used = [], set()
    while len(planted) < args.suspicious:
        code, index = rng.choice(codes), rng.randrange(1, len(sessions) - 1)
        if code in used:
            continue
        used.add(code)
        kind = rng.choice(["100x", "100x", "move"])
        corrected = sessions[index + 6] if kind == "100x" and rng.random() < 0.5 and index + 6 < len(sessions) else None
        planted.append((code, sessions[index], kind, corrected))

    clean = play(codes, sessions, [])
    dirty = play(codes, sessions, planted)
    days = len(sessions)
    print(f"{args.symbols} symbols x {days} sessions, {len(planted)} suspicious days planted "
          f"({sum(p[2] == '100x' for p in planted)} served 100x, of which {sum(bool(p[3]) for p in planted)} corrected "
          f"six sessions later; {sum(p[2] == 'move' for p in planted)} genuine moves)")
    print(f"chart requests: {clean['charts']} clean, {dirty['charts']} with them: "
          f"{(dirty['charts'] - clean['charts']) / days:.2f} extra requests per day")
    print(f"bars served: {clean['bars']} clean, {dirty['bars']} with them: "
          f"{(dirty['bars'] - clean['bars']) / days:.1f} extra bars per day "
          f"({(dirty['bars'] - clean['bars']) / clean['bars']:.2%} more)")
    print(f"(symbol, day) answers re-verified: {dirty['reverified']} ({dirty['reverified'] / days:.1f} a day); "
          f"open at the end: {dirty['open']}; repaired days stored: {dirty['repairs']}")


if __name__ == "__main__":
    main()
