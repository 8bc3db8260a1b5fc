"""What restatement costs in Yahoo requests (issue 12): `python -m benchmarks.restatement_requests`.

Plays run-local over consecutive sessions on the fake Yahoo (tests/yahoo_fake.py, at the HTTP transport, every
request counted) with a market where splits, consolidations and dividends go ex at random, then counts the
chart requests against the same play's requests without any action. Prints the extra requests per action and
what that means for a day of a typical ASX year (ACTIONS_PER_YEAR over SESSIONS_PER_YEAR, on ~1,840 symbols).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import tempfile
from pathlib import Path

from benchmarks.fake_server import use_test_fakes

use_test_fakes()

DIVIDENDS_PER_YEAR = 1_500  # ASX ex-dividend events a year (issue 12's figure)
SPLITS_PER_YEAR = 100  # splits and consolidations a year (the lead's figure)
SESSIONS_PER_YEAR = 254  # XASX sessions in 2026 (exchange_calendars: calendar.sessions over the year)
SYMBOLS = 1_840
DELAY = 2.0  # the default --delay between one worker's requests
WORKERS = 10  # the default --concurrency / the Map's


def play(codes: list[str], sessions: list[dt.date], actions: list[tuple]) -> tuple[int, int, int]:
    """(chart requests, refetches, actions stored) of run-local once per session after its close."""
    import actions_support
    from asx_fake import write_markit_csv
    from yahoo_fake import FakeYahoo

    from stockstream_cli.dataset.aggregate import DataAggregator
    from stockstream_cli.run import local
    from stockstream_cli.settings import Settings
    from stockstream_cli.dataset.store import LocalStore

    with tempfile.TemporaryDirectory() as folder, FakeYahoo().installed() as fake:
        for code, day, kind, value in actions:
            (fake.split(code, day, *value) if kind == "split" else fake.dividend(code, day, value))
        list_path = write_markit_csv(Path(folder) / "asx.csv", codes)
        store = LocalStore(Path(folder) / "data")
        settings = Settings.resolve(batch_size=100, delay=0, retry_wait=0, processes=1, cache_dir=f"{folder}/yf")
        for day in sessions:
            fake.set_as_of(actions_support.after_close(day))
            local.run_local(store, day, settings, source=local.asx_source(from_file=str(list_path)))
        return fake.chart_requests(), actions_support.refetches(fake), DataAggregator(store).load_actions().height


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--sessions", type=int, default=15)
    parser.add_argument("--actions", type=int, default=30, help="actions to scatter over symbols and sessions")
    args = parser.parse_args(argv)

    from stockstream_cli import calendar
    from asx_fake import asx_codes

    codes = asx_codes(args.symbols)
    sessions = calendar.sessions(dt.date(2026, 9, 1), dt.date(2026, 11, 30))[:args.sessions]
    rng = random.Random(12)
    events = {}
    while len(events) < args.actions:  # one action per (symbol, session) at most, after the first run
        code, day = rng.choice(codes), rng.choice(sessions[1:])
        split = rng.random() < SPLITS_PER_YEAR / (SPLITS_PER_YEAR + DIVIDENDS_PER_YEAR) * 3
        events[(code, day)] = ("split", rng.choice([(2, 1), (1, 10), (1, 20)])) if split else ("dividend", 0.05)
    actions = [(code, day, kind, value) for (code, day), (kind, value) in sorted(events.items())]

    base, _, _ = play(codes, sessions, [])
    charts, refetches, stored = play(codes, sessions, actions)
    per_action = (charts - base) / len(actions)
    per_day = per_action * (DIVIDENDS_PER_YEAR + SPLITS_PER_YEAR) / SESSIONS_PER_YEAR
    print(f"{args.symbols} symbols x {len(sessions)} sessions, {len(actions)} actions "
          f"({sum(a[2] == 'split' for a in actions)} splits/consolidations): {stored} stored")
    print(f"chart requests: {base} without actions, {charts} with them; refetches {refetches}")
    print(f"extra requests per action: {per_action:.3f}")
    print(f"typical ASX year ({DIVIDENDS_PER_YEAR} dividends + {SPLITS_PER_YEAR} splits over {SESSIONS_PER_YEAR} "
          f"sessions): {per_day:.1f} extra requests a day on {SYMBOLS} ({per_day / SYMBOLS:.2%} more); "
          f"at --delay {DELAY:g} x {WORKERS} workers that is {per_day * DELAY / WORKERS:.1f} s more per run")


if __name__ == "__main__":
    main()
