"""Issue 25: Yahoo's own errors corrected in the dataset, not only flagged.

A play over the ten sessions of actions_support on the fake Yahoo, with the issue's five planted errors and a
genuine large move; plus the detector and the suspicions' bookkeeping as pure functions.
"""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

import actions_support as play
from stockstream_cli import schema
from stockstream_cli.dataset.aggregate import DataAggregator
from stockstream_cli.dataset.store import LocalStore
from stockstream_cli.dataset.suspicions import Suspicion, read_open
from stockstream_cli.fetch.unit_errors import repair_unit_errors
from stockstream_cli.quality.check import check
from stockstream_cli.quality.reverify import track
from stockstream_cli.settings import Settings
from stockstream_cli.thresholds import REVERIFY_SESSIONS
from yahoo_fake import SYDNEY

SESSIONS = play.SESSIONS  # 2026-11-09 .. 2026-11-20, ten sessions
X = SESSIONS[2]  # 2026-11-11: the day every error is planted on
PRICES = ("open", "high", "low", "close")
CODES = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG"]
LATE_FIX = SESSIONS[8]  # DDD's 100x day is corrected by Yahoo six sessions after it was served


def rows_of(bars: list[tuple[float, float, float, float]], adjusted: list[float] | None = None) -> pl.DataFrame:
    days = [dt.date(2026, 11, 9) + dt.timedelta(days=i) for i in range(len(bars))]
    return pl.DataFrame({
        "symbol": ["AXE"] * len(bars), "date": days, "open": [b[0] for b in bars], "high": [b[1] for b in bars],
        "low": [b[2] for b in bars], "close": [b[3] for b in bars], "volume": [1000] * len(bars),
        "adjusted_close": adjusted or [b[3] for b in bars], "fetch_timestamp": ["2026-11-12T06:00:00.000Z"] * len(bars),
        "batch_number": [0] * len(bars)}, schema=schema.polars_schema())


# ---------------------------------------------------------------------------------------------- the detector


def test_a_day_100_times_both_neighbours_is_divided_by_100_and_recorded():
    rows = rows_of([(1.00, 1.04, 0.98, 1.02), (102.0, 104.5, 100.5, 103.1), (1.03, 1.05, 1.01, 1.04)],
                   adjusted=[0.99, 100.0, 1.01])
    fixed, repairs = repair_unit_errors(rows)
    assert fixed.row(1, named=True) | {} == {**rows.row(1, named=True), "open": pytest.approx(1.02),
                                              "high": pytest.approx(1.045), "low": pytest.approx(1.005),
                                              "close": pytest.approx(1.031), "adjusted_close": pytest.approx(1.0)}
    assert fixed.row(0) == rows.row(0) and fixed.row(2) == rows.row(2) and fixed["volume"].to_list() == [1000] * 3
    assert repairs.height == 1
    record = repairs.row(0, named=True)
    assert (record["symbol"], record["date"], record["reason"]) == ("AXE", dt.date(2026, 11, 10), "unit_error_100x")
    assert record["reported_close"] == 103.1 and record["close"] == pytest.approx(1.031)
    assert record["fetch_timestamp"] == "2026-11-12T06:00:00.000Z" and "2026-11-09" in record["detail"]


@pytest.mark.parametrize("bars", [
    # a real +60 % day of a small miner, and its next day: never "repaired"
    [(0.050, 0.052, 0.049, 0.050), (0.075, 0.085, 0.070, 0.080), (0.080, 0.082, 0.076, 0.078)],
    # up 60 % and back: still nothing like 100 times
    [(0.050, 0.052, 0.049, 0.050), (0.075, 0.085, 0.070, 0.080), (0.051, 0.052, 0.049, 0.050)],
    # 100 times the close but not every price (a broken bar, not a unit error): left as reported, flagged by check
    [(1.00, 1.04, 0.98, 1.02), (1.01, 104.5, 0.99, 103.1), (1.03, 1.05, 1.01, 1.04)],
    # 100 times one neighbour only (a real re-rating, or a 100x run of two days): not unmistakable
    [(1.00, 1.04, 0.98, 1.02), (102.0, 104.5, 100.5, 103.1), (101.0, 104.0, 100.0, 102.0)],
    # about 100 times, but 5 % outside the neighbours' range: not within the tight tolerance
    [(1.00, 1.01, 0.99, 1.00), (107.0, 107.5, 106.0, 107.0), (1.00, 1.01, 0.99, 1.00)],
])
def test_anything_not_unmistakable_is_left_as_yahoo_reports_it(bars):
    rows = rows_of(bars)
    fixed, repairs = repair_unit_errors(rows)
    assert repairs is None and fixed.equals(rows)


def test_a_100x_day_at_the_edge_of_the_fetch_is_not_judged():
    rows = rows_of([(1.00, 1.04, 0.98, 1.02), (102.0, 104.5, 100.5, 103.1)])
    assert repair_unit_errors(rows)[1] is None
    assert repair_unit_errors(rows_of([(102.0, 104.5, 100.5, 103.1), (1.00, 1.04, 0.98, 1.02),
                                       (1.00, 1.04, 0.98, 1.02)]))[1] is None


# ---------------------------------------------------------------------------------------------- the bookkeeping


def suspicion(**changes) -> Suspicion:
    base = Suspicion("FFF", X, "big_move", X, {"open": 1.6, "high": 1.7, "low": 1.5, "close": 1.6, "adjusted_close": 1.6},
                     "t0", 0, X)
    return Suspicion(**{**base.__dict__, **changes})


def answer(close: float) -> dict:
    return {"open": 1.6, "high": 1.7, "low": 1.5, "close": close, "adjusted_close": close, "fetch_timestamp": "t1"}


def test_a_changed_answer_closes_the_suspicion_and_the_same_answer_counts_a_session():
    day = X + dt.timedelta(days=1)
    changed = track([suspicion()], [], {("FFF", X): answer(1.0)}, day, day - dt.timedelta(days=4))
    assert changed.open == [] and [s.symbol for s in changed.changed] == ["FFF"]
    same = track([suspicion()], [], {("FFF", X): answer(1.6)}, day, day - dt.timedelta(days=4))
    assert [(s.sessions, s.last_run) for s in same.open] == [(1, day)] and not same.changed
    again = track(same.open, [], {("FFF", X): answer(1.6)}, day, day - dt.timedelta(days=4))  # a rerun of the day
    assert again.open[0].sessions == 1


def test_a_suspicion_is_bounded_by_the_sessions_and_closes_confirmed_once_out_of_the_window():
    day = X + dt.timedelta(days=20)
    tired = suspicion(sessions=REVERIFY_SESSIONS - 1, last_run=day - dt.timedelta(days=1))
    confirmed = track([tired], [], {("FFF", X): answer(1.6)}, day, day - dt.timedelta(days=4))
    assert confirmed.open == [] and [s.sessions for s in confirmed.confirmed] == [REVERIFY_SESSIONS]
    in_window = track([tired], [], {("FFF", X): answer(1.6)}, day, X)  # still fetched daily: kept, at no cost
    assert [s.sessions for s in in_window.open] == [REVERIFY_SESSIONS]


def test_the_checked_sessions_suspicious_days_are_opened_once():
    found = [{"symbol": "FFF", "date": X.isoformat(), "kind": "big_move"}]
    opened = track([], found, {("FFF", X): answer(1.6)}, X, X - dt.timedelta(days=4))
    assert [(s.symbol, s.date, s.reported["close"], s.fetch_timestamp) for s in opened.open] == [("FFF", X, 1.6, "t1")]
    assert track(opened.open, found, {("FFF", X): answer(1.6)}, X, X).opened == []


# ---------------------------------------------------------------------------------------------- the play


def true_bar(fake, code: str, day: dt.date) -> dict:
    from yahoo_fake import generated_bar, yahoo_symbol

    return generated_bar(yahoo_symbol(code), day)


def plant(fake) -> dict[str, dict]:
    """The planted errors on X; returns each code's true bar of X."""
    truth = {code: true_bar(fake, code, X) for code in CODES}
    for code in ("AAA", "DDD", "EEE"):  # served 100 times too big; neighbours around the true price
        bar = truth[code]
        fake.set_bar(code, SESSIONS[1], **{f: bar[f] * 0.99 for f in PRICES})
        fake.set_bar(code, SESSIONS[3], **{f: bar[f] * 1.01 for f in PRICES})
        fake.set_bar(code, X, **{f: bar[f] * 100 for f in PRICES})
    fake.null_bar("BBB", X)  # served one session late (below)
    fake.null_bar("CCC", X)  # never served
    for day in SESSIONS[2:]:  # FFF: a genuine +60 % day (a small miner's news), the price staying up
        bar = true_bar(fake, "FFF", day)
        fake.set_bar("FFF", day, **{f: bar[f] * 1.6 for f in PRICES})
    truth["FFF"] = {**truth["FFF"], **{f: truth["FFF"][f] * 1.6 for f in PRICES}}
    return truth


def before_run(fake, day: dt.date) -> None:
    """What Yahoo corrects, and when: AAA and BBB the next session, DDD six sessions later, EEE and CCC never."""
    from yahoo_fake import yahoo_symbol

    if day == SESSIONS[3]:
        fake.set_bar("AAA", X, **true_bar(fake, "AAA", X))
        fake.market.overrides[yahoo_symbol("BBB")].pop(X)
    if day == LATE_FIX:
        fake.set_bar("DDD", X, **true_bar(fake, "DDD", X))


@pytest.fixture
def played_errors(tmp_path, fake_yahoo):
    from asx_fake import write_markit_csv
    from stockstream_cli.run import local

    truth = plant(fake_yahoo)
    store = LocalStore(tmp_path / "data")
    list_path = write_markit_csv(tmp_path / "asx.csv", CODES)
    settings = Settings.resolve(batch_size=3, delay=0, retry_wait=0, processes=1, cache_dir=str(tmp_path / "yf"))
    runs = []
    for day in SESSIONS:
        before_run(fake_yahoo, day)
        fake_yahoo.set_as_of(play.after_close(day))
        runs.append(local.run_local(store, day, settings, source=local.asx_source(from_file=str(list_path))))
    return store, fake_yahoo, truth, runs, tmp_path


def test_the_five_planted_errors_end_right_and_a_genuine_move_is_untouched(played_errors):
    store, fake, truth, runs, _ = played_errors
    stored = {row["symbol"]: row for row in DataAggregator(store).load_date(X).iter_rows(named=True)}
    for code in ("AAA", "BBB", "DDD", "EEE", "FFF", "GGG"):  # the true price, whoever corrected it
        assert {f: stored[code][f] for f in PRICES} == {f: pytest.approx(truth[code][f], rel=1e-9) for f in PRICES}, code
    assert "CCC" not in stored
    report = check(store, SESSIONS[0], SESSIONS[-1])
    assert [(i["symbol"], i["date"]) for i in report["missing"]["unexplained"]] == [("CCC", X.isoformat())]
    assert [(i["symbol"], i["date"]) for i in report["suspicious"]["big_move"]] == [("FFF", X.isoformat())]
    assert report["repaired_count"] == 1 and report["repaired"][0]["symbol"] == "EEE"
    # the genuine move stays as Yahoo reports it, and stays open for re-verification (bounded: 10 sessions)
    repairs = DataAggregator(store).load_repairs()
    assert repairs["symbol"].to_list() == ["EEE"]  # DDD's repair ended when Yahoo corrected it
    opened = {(s.symbol, s.date): s for s in read_open(store)}
    assert set(opened) == {("EEE", X), ("FFF", X)}
    assert opened[("FFF", X)].sessions == len(SESSIONS) - 3 and opened[("EEE", X)].reported["close"] == \
        pytest.approx(truth["EEE"]["close"] * 100)
    closed = {name for run in runs for name in run["reverify"]["changed"]}
    assert closed == {f"AAA {X}", f"DDD {X}"}


def test_reverification_costs_no_extra_request(played_errors):
    store, fake, _, runs, _ = played_errors
    assert fake.chart_requests() == len(CODES) * len(SESSIONS)  # one chart request per symbol and run, no more
    records = [json.loads(p.read_text())["metadata"] for p in sorted((store.root / "runs").glob("*/batch-*.json"))]
    assert sum(r["requests"] for r in records) == fake.chart_requests()
    reverified = {s for r in records for s in r.get("reverified", {})}
    assert reverified == {"AAA", "DDD", "EEE", "FFF"}  # AAA's the next day, within the window; it closed then
    charts = [q for q in fake.requests if q.kind == "chart" and q.ticker == "EEE.AX"]
    first_days = [dt.datetime.fromtimestamp(int(q.params["period1"]), SYDNEY).date() for q in charts]
    # from 2026-11-16 on X is out of the 5-day window: the request still starts at X's neighbour before it
    assert first_days[-1] == SESSIONS[1] and first_days[-1] < SESSIONS[-1] - dt.timedelta(days=4)


def test_query_lists_the_repair_and_load_as_reported_returns_yahoos_values(played_errors):
    from helpers import run_stockstream

    store, _, truth, _, tmp_path = played_errors
    data = str(tmp_path / "data")
    query = run_stockstream("query", "SELECT symbol, date, reported_close, close, reason FROM repairs",
                            "--format", "json", "--store", data)
    assert query.returncode == 0, query.stderr
    (row,) = json.loads(query.stdout)
    assert (row["symbol"], row["date"], row["reason"]) == ("EEE", X.isoformat(), "unit_error_100x")
    assert row["reported_close"] == pytest.approx(truth["EEE"]["close"] * 100)
    assert row["close"] == pytest.approx(truth["EEE"]["close"])
    reported = run_stockstream("load", "--symbols", "EEE", "DDD", "--date", X.isoformat(), "--as-reported",
                               "--format", "json", "--store", data)
    assert reported.returncode == 0, reported.stderr
    closes = {r["symbol"]: r["close"] for r in json.loads(reported.stdout)}
    assert closes == {"DDD": pytest.approx(truth["DDD"]["close"]), "EEE": pytest.approx(truth["EEE"]["close"] * 100)}
    plain = run_stockstream("load", "--symbols", "EEE", "--date", X.isoformat(), "--format", "json", "--store", data)
    assert json.loads(plain.stdout)[0]["close"] == pytest.approx(truth["EEE"]["close"])
    checked = run_stockstream("check", "--start", SESSIONS[0].isoformat(), "--end", SESSIONS[-1].isoformat(),
                              "--store", data)
    assert "repaired: 1 day" in checked.stdout and "EEE" in checked.stdout


def test_a_corrupt_suspicions_record_never_fails_a_batch_and_is_started_afresh(store):
    from stockstream_cli.dataset import layout
    from stockstream_cli.dataset.suspicions import open_dates, write_open
    from stockstream_cli.errors import CorruptFileError
    from stockstream_cli.quality.reverify import reverify

    store.put(layout.SUSPICIONS_KEY, b"{not json")
    assert open_dates(store) == {}
    with pytest.raises(CorruptFileError, match="suspicions/open.json"):
        read_open(store)
    notes = []
    assert reverify(store, X, None, 5, notes.append).open == [] and "suspicions/open.json" in notes[0]
    write_open(store, X, [suspicion()])
    assert open_dates(store) == {"FFF": [X]} and read_open(store) == [suspicion()]
