"""The ten-session play of issue 12: a market with a 2-for-1 split, a 1-for-10 consolidation and dividends
in between, the pipeline run once per session after its close (the fake Yahoo's clock at that day), and
what Yahoo reports as of the last day to compare the store with.

Also a launcher for subprocess runs with this market (`python tests/actions_support.py run-local ...`):
STOCKSTREAM_FAKE_AS_OF sets the fake's clock; STOCKSTREAM_FAKE_KILL_AT_REFETCH=N makes the process SIGKILL
itself when it sends its N-th refetch (a chart request reaching before the lookback window).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
from pathlib import Path

CODES = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG", "HHH", "III", "JJJ", "KKK", "LLL"]
BATCH_SIZE = 4  # three batches
# ten consecutive ASX sessions (no holiday among them)
SESSIONS = [dt.date(2026, 11, d) for d in (9, 10, 11, 12, 13, 16, 17, 18, 19, 20)]
SPLITS = [("AAA", dt.date(2026, 11, 13), 2, 1), ("EEE", dt.date(2026, 11, 17), 1, 10)]
DIVIDENDS = [("AAA", dt.date(2026, 11, 11), 0.50), ("CCC", dt.date(2026, 11, 12), 0.20),
             ("EEE", dt.date(2026, 11, 12), 0.03), ("FFF", dt.date(2026, 11, 16), 0.35),
             ("AAA", dt.date(2026, 11, 18), 0.40), ("EEE", dt.date(2026, 11, 19), 0.25),
             ("JJJ", dt.date(2026, 11, 20), 0.10)]
ACTIONS = len(SPLITS) + len(DIVIDENDS)
VALUES = ("open", "high", "low", "close", "adjusted_close", "volume")


def after_close(day: dt.date) -> dt.datetime:
    from yahoo_fake import SYDNEY

    return dt.datetime.combine(day, dt.time(17, 0), tzinfo=SYDNEY)


def program(fake) -> None:
    """The play's actions; from a split's ex-date on, the raw bars trade in the new units, as a market does."""
    for code, day, numerator, denominator in SPLITS:
        fake.split(code, day, numerator, denominator)
        ratio = numerator / denominator
        for offset in range(0, 40):
            session = day + dt.timedelta(days=offset)
            bar = fake.bar(code, session)
            if session.weekday() < 5 and bar is not None:
                fake.set_bar(code, session, **{f: bar[f] / ratio for f in ("open", "high", "low", "close")},
                             volume=int(bar["volume"] * ratio))
    for code, day, amount in DIVIDENDS:
        fake.dividend(code, day, amount)


def reported(fake, frame, as_of):
    """What Yahoo reports as of `as_of` for every (symbol, date) of `frame` (a `load` result), same order."""
    import polars as pl

    parts = []
    for code in frame["symbol"].unique().sort().to_list():
        dates = frame.filter(pl.col("symbol") == code)["date"]
        answer = fake.reported(code, dates.min(), dates.max(), as_of=as_of).with_columns(symbol=pl.lit(code))
        parts.append(answer.join(pl.DataFrame({"date": dates}), on="date", how="inner"))
    return pl.concat(parts).sort("symbol", "date").select("symbol", "date", *VALUES)


def mismatches(stored, expected, rel: float = 1e-6) -> list[tuple]:
    """(symbol, date, field, stored, expected) wherever they differ by more than `rel` relative."""
    assert stored.height == expected.height, (stored.height, expected.height)
    found = []
    for mine, theirs in zip(stored.iter_rows(named=True), expected.iter_rows(named=True)):
        assert (mine["symbol"], mine["date"]) == (theirs["symbol"], theirs["date"])
        for field in VALUES:
            a, b = mine[field], theirs[field]
            if a is None or b is None or abs(a - b) > rel * max(abs(a), abs(b)):
                found.append((mine["symbol"], mine["date"], field, a, b))
    return found


def expected_actions(fake, as_of):
    """Every action Yahoo reports as of `as_of` over the play's stored range, sorted as `actions` sorts."""
    first = SESSIONS[0] - dt.timedelta(days=10)
    rows = [(code, a["date"], a["kind"], a["value"]) for code in CODES
            for a in fake.reported_actions(code, first, SESSIONS[-1], as_of=as_of)]
    return sorted(rows)


def stored_actions(store) -> list[tuple]:
    frame = _aggregator(store).load_actions()
    return [(s, d, k, v) for s, d, k, v in frame.select("symbol", "date", "kind", "value").iter_rows()]


def assert_restated(store, fake) :
    frame = _aggregator(store).load()
    assert set(frame["symbol"]) == set(CODES)
    assert frame["date"].min() < SESSIONS[0] and frame["date"].max() == SESSIONS[-1]  # the first window reached back
    expected = reported(fake, frame, after_close(SESSIONS[-1]))
    assert mismatches(frame.select("symbol", "date", *VALUES), expected) == []
    found, wanted = stored_actions(store), expected_actions(fake, after_close(SESSIONS[-1]))
    assert [a[:3] for a in found] == [a[:3] for a in wanted] and len(found) == ACTIONS
    assert all(abs(a[3] - b[3]) <= 1e-9 * abs(b[3]) for a, b in zip(found, wanted))
    return frame


def _aggregator(store):
    from stockstream_cli.dataset.aggregate import DataAggregator

    return DataAggregator(store)


def write_list(path: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from asx_fake import write_markit_csv

    return write_markit_csv(path, CODES)


def play_local(store, fake, list_path: Path, days=SESSIONS, settings=None):
    """run-local once per session of `days`, each with the fake's clock at that day after the close."""
    from stockstream_cli.run import local
    from stockstream_cli.settings import Settings

    settings = settings or Settings.resolve(batch_size=BATCH_SIZE, delay=0, retry_wait=0, processes=1)
    runs = []
    for day in days:
        fake.set_as_of(after_close(day))
        runs.append(local.run_local(store, day, settings, source=local.asx_source(from_file=str(list_path))))
    return runs


def played_store(store, folder: Path):
    """The play as the pipeline leaves it, with every kind of data file: the ten sessions run (the days before
    the last folded into raw-data/compacted-2026-11.parquet, the last day's batch files beside it), then a
    backfill of AAA and EEE reaching three weeks before the play (raw-data/LAST-backfill-0.parquet, its rows
    newer than the play's). A FakeYahoo of its own, so a module-scoped fixture can build it once; `folder`
    takes the ASX list and yfinance's cache. Returns the store."""
    from yahoo_fake import FakeYahoo

    from stockstream_cli.run.backfill import backfill
    from stockstream_cli.settings import Settings

    settings = Settings.resolve(batch_size=BATCH_SIZE, delay=0, retry_wait=0, processes=1,
                                cache_dir=str(folder / "yfcache"))
    with FakeYahoo().installed() as fake:
        program(fake)
        play_local(store, fake, write_list(folder / "asx.csv"), settings=settings)
        fake.set_as_of(after_close(SESSIONS[-1]))
        backfill(store, SESSIONS[0] - dt.timedelta(days=21), SESSIONS[-1], settings, symbols=["AAA", "EEE"])
    return store


def refetches(fake, window_days: int = 5) -> int:
    """Chart requests that reached before their run's lookback window: the restatement refetches."""
    count = 0
    for request in fake.requests:
        if request.kind == "chart":
            start = dt.datetime.fromtimestamp(int(request.params["period1"]), dt.timezone.utc).date()
            end = dt.datetime.fromtimestamp(int(request.params["period2"]), dt.timezone.utc).date()
            count += (end - start).days > window_days  # the window itself spans window_days
    return count


def _install_from_environment():
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from yahoo_fake import FakeYahoo

    fake = FakeYahoo(latency=float(os.environ.get("STOCKSTREAM_FAKE_LATENCY", "0") or 0))
    program(fake)
    fake.set_as_of(os.environ["STOCKSTREAM_FAKE_AS_OF"])
    kill_at = int(os.environ.get("STOCKSTREAM_FAKE_KILL_AT_REFETCH", "0") or 0)
    if kill_at:
        serve, seen = fake.serve, []

        def serve_or_die(method, url, params=None, **kwargs):
            answer = serve(method, url, params, **kwargs)
            if refetches(fake) > len(seen):
                seen.append(url)
                if len(seen) >= kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)  # mid-refetch: the answer never reaches the pipeline
            return answer

        fake.serve = serve_or_die
    return fake.installed()


if __name__ == "__main__":
    from stockstream_cli.cli import app

    with _install_from_environment():
        app(args=sys.argv[1:], prog_name="stockstream")
