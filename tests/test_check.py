"""`check`: every expected (symbol, session) row, missing rows by reason, suspicious data, revisions."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest

from storefactory import as_store, bar, manifest, write_batch, write_manifest
from helpers import runner
from stockstream_cli import calendar
from stockstream_cli.dataset import layout
from stockstream_cli.quality import check as quality
from stockstream_cli.dataset.symbols import Listing, to_csv
from stockstream_cli.cli import app
from stockstream_cli.cli import exit_code_for

D = dt.date
RUN_DAYS = calendar.sessions(D(2026, 11, 9), D(2026, 11, 20))  # two weeks of daily runs, no ASX holiday
LOOKBACK = 5


def listing(symbol: str, batch: int, *, listed: dt.date = D(2001, 1, 2), cap: int | None = 5_000_000) -> Listing:
    return Listing(symbol, f"{symbol} LTD", "Materials", listed, cap, batch)


def write_list(store, day: dt.date, listings: list[Listing]) -> None:
    store.put(layout.symbols_key(day), to_csv(listings))


def run_day(store, day: dt.date, listings: list[Listing], *, failures=None, dead_batches=(), skip=(), overrides=None,
            version=0):
    """A daily run as fetch-batch leaves it: the list, then per batch its rows over the window and manifest.

    failures: {symbol: reason} (no rows, recorded failed); dead_batches: no data file and no manifest;
    skip: (symbol, date) pairs Yahoo had no bar for; overrides: {(symbol, date): {field: value}}.
    """
    failures, overrides = dict(failures or {}), dict(overrides or {})
    write_list(store, day, listings)
    window = calendar.sessions(day - dt.timedelta(days=LOOKBACK - 1), day)
    stamp = f"{day.isoformat()}T08:00:00.000Z"
    for number in sorted({item.batch_number for item in listings}):
        if number in dead_batches:
            continue
        members = [item.symbol for item in listings if item.batch_number == number]
        rows = []
        for symbol in members:
            if symbol in failures:
                continue
            for session in window:
                item = next(i for i in listings if i.symbol == symbol)
                if (symbol, session) in skip or (item.listing_date and item.listing_date > session):
                    continue
                row = bar(symbol, session, batch_number=number, version=version, fetch_timestamp=stamp)
                # storefactory's prices wrap around by up to 2.5 in a range from 2: lift them so no day moves 50%.
                row.update({f: round(row[f] + 100, 3) for f in ("open", "high", "low", "close", "adjusted_close")})
                row.update(overrides.get((symbol, session), {}))
                rows.append(row)
        write_batch(store, day, number, rows)
        write_manifest(store, day, manifest(number, members, failures, day=day))


BASE = [listing("AAA", 0), listing("BHP", 0), listing("CBA", 1), listing("NAB", 1)]


@pytest.fixture
def complete_store(tmp_path):
    store = as_store(tmp_path / "data")
    for day in RUN_DAYS:
        run_day(store, day, BASE)
    return store


def check_cli(store, *args):
    result = runner.invoke(app, ["check", "--store", store.uri, *args])
    return result


def test_a_complete_store_exits_0(complete_store):
    document = quality.check(complete_store, D(2026, 11, 9), D(2026, 11, 20))
    assert document["complete"] is True
    assert document["sessions"] == 10 and document["symbols"] == 4
    assert document["expected_rows"] == document["present_rows"] == 40
    assert set(document["missing_counts"].values()) == {0}
    assert set(document["suspicious_counts"].values()) == {0}
    assert document["revisions_count"] == 0

    result = check_cli(complete_store, "--start", "2026-11-09", "--end", "2026-11-20", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["complete"] is True

    human = check_cli(complete_store, "--start", "2026-11-09", "--end", "2026-11-20")
    assert human.exit_code == 0
    assert "40/40 rows present" in human.stdout and "COMPLETE" in human.stdout


def test_each_planted_gap_is_reported_under_its_reason(tmp_path):
    store = as_store(tmp_path / "data")
    newco = listing("NEWCO", 2, listed=D(2026, 11, 17))
    susp = listing("SUSP", 2, cap=None)
    lists = BASE + [newco, susp]
    last = RUN_DAYS[-1]
    for day in RUN_DAYS:
        # SUSP is suspended: Yahoo has no bars for it, every run records no_data.
        failures = {"SUSP": "no_data"}
        if day == last:
            failures["NAB"] = "rate_limited"  # the last run failed NAB: nothing later re-fetches its 20 Nov
        run_day(store, day, lists, failures=failures,
                dead_batches=[0] if day == last else (),  # the last run lost batch 0 (AAA, BHP) entirely
                skip={("CBA", D(2026, 11, 12))})  # Yahoo never had CBA's 12 Nov, though asked every time

    document = quality.check(store, D(2026, 11, 3), last)
    by_reason = {r: [(i["symbol"], i["date"]) for i in items] for r, items in document["missing"].items()}
    before_runs = calendar.sessions(D(2026, 11, 3), D(2026, 11, 4))  # before any run's lookback window
    assert by_reason["not_fetched"] == sorted((s, d.isoformat()) for s in ("AAA", "BHP", "CBA", "NAB")
                                              for d in before_runs)
    assert by_reason["fetch_failed"] == [("AAA", "2026-11-20"), ("BHP", "2026-11-20"), ("NAB", "2026-11-20")]
    assert by_reason["unexplained"] == [("CBA", "2026-11-12")]
    newco_before = [d.isoformat() for d in calendar.sessions(D(2026, 11, 3), D(2026, 11, 16))]
    assert by_reason["listed_after"] == [("NEWCO", d) for d in newco_before]
    assert by_reason["suspended"] == [("SUSP", d.isoformat()) for d in calendar.sessions(D(2026, 11, 3), last)]

    details = {(i["symbol"], i["date"]): i["detail"] for i in document["missing"]["fetch_failed"]}
    assert details[("NAB", "2026-11-20")] == "rate_limited (run 2026-11-20 batch 1)"
    assert details[("BHP", "2026-11-20")] == "batch failed (run 2026-11-20 batch 0)"
    assert document["missing"]["listed_after"][0]["detail"] == "listed 2026-11-17"
    assert document["complete"] is False
    assert exit_code_for(quality.outcome(document)) == 3

    result = check_cli(store, "--start", "2026-11-03", "--end", "2026-11-20", "--json")
    assert result.exit_code == 3
    assert json.loads(result.stdout)["missing_counts"] == {
        "fetch_failed": 3, "unexplained": 1, "not_fetched": 8, "listed_after": 10, "suspended": 14,
    }
    human = check_cli(store, "--start", "2026-11-03", "--end", "2026-11-20")
    assert human.exit_code == 3
    for text in ("fetch failed", "unexplained", "never fetched", "listed later", "suspended", "INCOMPLETE",
                 "CBA 2026-11-12", "rate_limited"):
        assert text in human.stdout, text


def test_expected_absences_alone_keep_the_check_complete(tmp_path):
    store = as_store(tmp_path / "data")
    lists = BASE + [listing("NEWCO", 2, listed=D(2026, 11, 18)), listing("SUSP", 2, cap=None)]
    for day in RUN_DAYS:
        run_day(store, day, lists, failures={"SUSP": "no_data"})
    document = quality.check(store, D(2026, 11, 16), D(2026, 11, 20))
    assert document["missing_counts"]["listed_after"] == 2  # NEWCO on 16 and 17 Nov
    assert document["missing_counts"]["suspended"] == 5
    assert document["complete"] is True


def test_suspicious_data_big_move_stale_and_broken_ohlc(tmp_path):
    store = as_store(tmp_path / "data")
    lists = BASE + [listing("DEAD", 2)]
    stale = {("DEAD", d): {"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "adjusted_close": 1.0, "volume": 0}
             for d in calendar.sessions(D(2026, 11, 3), D(2026, 11, 20))}
    overrides = {
        **stale,
        ("BHP", D(2026, 11, 13)): {"open": 300.0, "high": 301.0, "low": 299.0, "close": 300.0},  # ~+140% then back
        ("CBA", D(2026, 11, 17)): {"open": 110.0, "high": 109.0, "low": 108.0, "close": 108.5},  # high below open
    }
    for day in RUN_DAYS:
        run_day(store, day, lists, overrides=overrides)
    document = quality.check(store, D(2026, 11, 9), D(2026, 11, 20))
    assert document["missing_counts"] == dict.fromkeys(quality.MISSING_REASONS, 0)
    moves = [(m["symbol"], m["date"]) for m in document["suspicious"]["big_move"]]
    assert moves == [("BHP", "2026-11-13"), ("BHP", "2026-11-16")]
    assert document["suspicious"]["big_move"][0]["close"] == 300.0
    assert document["suspicious"]["stale"] == [
        {"symbol": "DEAD", "start": "2026-11-05", "end": "2026-11-20", "sessions": 12, "close": 1.0}
    ]
    assert [(o["symbol"], o["date"]) for o in document["suspicious"]["ohlc"]] == [("CBA", "2026-11-17")]
    assert document["suspicious"]["ohlc"][0]["problem"] == "high 109 below open 110"
    assert document["complete"] is False
    assert check_cli(store, "--start", "2026-11-09", "--end", "2026-11-20").exit_code == 3


def test_nine_unchanged_sessions_are_not_stale():
    rows = [{"date": d, "close": 2.0, "volume": 0} for d in calendar.sessions(D(2026, 11, 9), D(2026, 11, 19))]
    assert len(rows) == 9
    assert quality._stale_runs("X", rows, D(2026, 11, 1), D(2026, 11, 30)) == []
    rows.append({"date": D(2026, 11, 20), "close": 2.0, "volume": 0})
    assert len(quality._stale_runs("X", rows, D(2026, 11, 1), D(2026, 11, 30))) == 1


@pytest.mark.parametrize(
    "prices, problem",
    [
        ((10, 11, 9, 10.5), None),
        ((10, 10, 10, 10), None),
        ((10, 9, 8, 8.5), "high 9 below open 10"),
        ((10, 11, 10.2, 10.5), "low 10.2 above open 10"),
        ((10, 11, 12, 10.5), "low 12 above high 11"),
        ((0, 1, 0, 1), "a price is zero or negative"),
    ],
)
def test_ohlc_relations(prices, problem):
    o, h, l, c = prices
    assert quality.ohlc_problem({"open": o, "high": h, "low": l, "close": c, "volume": 5}) == problem


def test_revisions_are_counted_and_load_keeps_the_newest(complete_store):
    from stockstream_cli import DataAggregator

    # A later lookback re-fetch of 19 Nov that changed BHP's volume (Yahoo revises volumes).
    day = D(2026, 11, 20)
    key = layout.batch_data_key(day, 0)
    import polars as pl

    frame = pl.read_parquet(io.BytesIO(complete_store.get(key)))
    frame = frame.with_columns(
        pl.when((pl.col("symbol") == "BHP") & (pl.col("date") == D(2026, 11, 19)))
        .then(pl.col("volume") + 777).otherwise(pl.col("volume")).alias("volume")
    )
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    complete_store.put(key, buffer.getvalue())

    document = quality.check(complete_store, D(2026, 11, 9), D(2026, 11, 20))
    assert document["revisions_count"] == 1
    revision = document["revisions"][0]
    assert (revision["symbol"], revision["date"], revision["fields"]) == ("BHP", "2026-11-19", ["volume"])
    assert revision["fetches"] == 2
    assert revision["newest"]["volume"] == revision["oldest"]["volume"] + 777
    assert document["complete"] is True  # a revision is not a failure

    loaded = DataAggregator(complete_store).load_symbols(["BHP"], start="2026-11-19", end="2026-11-19")
    assert loaded["volume"].to_list() == [revision["newest"]["volume"]]

    result = check_cli(complete_store, "--start", "2026-11-09", "--end", "2026-11-20", "--json")
    assert json.loads(result.stdout)["revisions_count"] == 1


def test_symbols_filter_and_a_single_day(complete_store):
    document = quality.check(complete_store, D(2026, 11, 12), D(2026, 11, 12), symbols=["BHP", "XYZ"])
    assert document["expected_rows"] == 1 and document["complete"]
    assert document["unlisted_symbols"] == ["XYZ"]
    assert quality.check_day(complete_store, D(2026, 11, 14))["sessions"] == 0  # a Saturday
    result = check_cli(complete_store, "--date", "2026-11-12", "--symbols", "BHP,CBA", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["expected_rows"] == 2


def test_a_symbol_in_a_later_list_is_expected_before_it(tmp_path):
    """A symbol the list added later (listed long ago) has a history to fetch: never fetched, until backfilled."""
    store = as_store(tmp_path / "data")
    for day in RUN_DAYS:
        run_day(store, day, BASE + ([listing("LATE", 2)] if day >= D(2026, 11, 19) else []))
    document = quality.check(store, D(2026, 11, 9), D(2026, 11, 20), symbols=["LATE"])
    missing = document["missing"]["not_fetched"]
    assert [i["date"] for i in missing] == [d.isoformat() for d in calendar.sessions(D(2026, 11, 9), D(2026, 11, 13))]
    assert document["missing_counts"]["not_fetched"] == 5 and not document["complete"]


def test_check_and_status_default_to_the_same_day_the_latest_in_the_store(complete_store):
    """Without dates both report the latest day the store holds (not today, which the store may not have)."""
    latest = RUN_DAYS[-1].isoformat()
    status = runner.invoke(app, ["status", "--store", complete_store.uri, "--json"])
    day = check_cli(complete_store, "--json")
    assert status.exit_code == 0 and day.exit_code == 0, (status.output, day.output)
    assert json.loads(status.stdout)["date"] == latest
    assert (json.loads(day.stdout)["start"], json.loads(day.stdout)["end"]) == (latest, latest)
    since = json.loads(check_cli(complete_store, "--start", "2026-11-16", "--json").stdout)
    assert (since["start"], since["end"], since["sessions"]) == ("2026-11-16", latest, 5)
    for command in ("check", "status"):
        shown = " ".join(runner.invoke(app, [command, "--help"]).stdout.split())
        assert "[default: the latest day in the store]" in shown, command


def test_check_without_dates_of_a_store_with_no_days_says_what_to_run(tmp_path):
    (tmp_path / "data").mkdir()
    result = runner.invoke(app, ["check", "--store", str(tmp_path / "data")])
    assert result.exit_code == 2 and "holds no days yet" in result.stderr and "stockstream run-local" in result.stderr


def test_bad_input_exits_2_before_reading(tmp_path):
    store = tmp_path / "nothing"
    for args in (["--date", "2026-11-12", "--start", "2026-11-10"], ["--start", "2026-11-12", "--end", "2026-11-10"],
                 ["--date", "12/11/2026"], ["--date", "2026-11-12", "--symbols", "bhp.ax"]):
        result = runner.invoke(app, ["check", "--store", str(store), *args])
        assert result.exit_code == 2, (args, result.output)
    assert not store.exists()
    empty = runner.invoke(app, ["check", "--store", str(store), "--date", "2026-11-12"])
    assert empty.exit_code == 2 and "does not exist" in empty.stderr and "stockstream run-local" in empty.stderr


def test_check_day_and_its_alert_for_a_pipeline_step(complete_store):
    day = D(2026, 11, 20)
    assert quality.check_day(complete_store, day)["complete"] is True
    assert quality.alert_message(quality.check_day(complete_store, day)) is None
    complete_store.delete(layout.batch_data_key(day, 0))  # the day's batch 0 data lost, its manifest kept
    document = quality.check_day(complete_store, day)
    assert document["missing_counts"]["unexplained"] == 2  # AAA and BHP: fetched fine, no rows
    message = quality.alert_message(document)
    assert message.startswith("stockstream check 2026-11-20: 2 of 4 rows present. Missing: 2 unexplained")
    assert "AAA 2026-11-20" in message and "stockstream check --start 2026-11-20 --end 2026-11-20" in message


def test_check_reads_an_s3_store(s3_bucket):
    store = as_store(f"s3://{s3_bucket}/prefix")
    for day in RUN_DAYS[:3]:
        run_day(store, day, BASE, failures={"NAB": "not_found"} if day == RUN_DAYS[2] else None)
    result = check_cli(store, "--start", RUN_DAYS[0].isoformat(), "--end", RUN_DAYS[2].isoformat(), "--json")
    assert result.exit_code == 3
    document = json.loads(result.stdout)
    assert [(i["symbol"], i["date"]) for i in document["missing"]["fetch_failed"]] == [("NAB", RUN_DAYS[2].isoformat())]
    assert document["present_rows"] == 11


def test_a_range_checked_span_by_span_gives_the_document_of_one_span(tmp_path):
    """check judges the range CHUNK_SESSIONS at a time; what crosses a span's edge (a big move against the
    previous span's row, one even further back after a gap, a stale run, a row revised by the next span's
    fetch, a symbol only a later span's list names) comes out as one span over the whole range says."""
    store = as_store(tmp_path / "data")
    start, end = D(2026, 9, 1), D(2026, 11, 20)
    sessions = calendar.sessions(start, end)
    spans = quality.spans_of(sessions, start, end, 5)
    edges = [span.sessions[0] for span in spans[1:]]  # each span's first session
    move, stale_edge, gap_edge, revised_edge = edges[1], edges[3], edges[6], edges[8]
    before = {edge: sessions[sessions.index(edge) - 1] for edge in edges}
    stale = calendar.sessions(before[stale_edge] - dt.timedelta(days=6), stale_edge + dt.timedelta(days=14))
    gap = sessions[sessions.index(gap_edge) - 12:sessions.index(gap_edge)]  # longer than CONTEXT_SESSIONS
    flat = {"open": 178.0, "high": 178.0, "low": 178.0, "close": 178.0, "adjusted_close": 178.0, "volume": 0}
    overrides = {("BHP", move): {"open": 300.0, "high": 301.0, "low": 299.0, "close": 300.0},
                 **{("DEAD", d): flat for d in stale},
                 ("CBA", gap_edge): {"open": 500.0, "high": 501.0, "low": 499.0, "close": 500.0}}
    late_from = edges[-1]
    for day in calendar.sessions(D(2026, 8, 17), end):
        listings = BASE + [listing("DEAD", 2)] + ([listing("LATE", 2)] if day >= late_from else [])
        revised = {("NAB", before[revised_edge]): {"volume": 777}} if day >= revised_edge else {}
        run_day(store, day, listings, overrides={**overrides, **revised}, skip={("CBA", d) for d in gap})

    spanned = quality.check(store, start, end, chunk_sessions=5)
    whole = quality.check(store, start, end, chunk_sessions=len(sessions))
    assert spanned == whole
    assert [(m["symbol"], m["date"], m["previous_date"]) for m in spanned["suspicious"]["big_move"]] == [
        ("BHP", move.isoformat(), before[move].isoformat()),
        ("BHP", sessions[sessions.index(move) + 1].isoformat(), move.isoformat()),
        ("CBA", gap_edge.isoformat(), sessions[sessions.index(gap[0]) - 1].isoformat()),
        ("CBA", sessions[sessions.index(gap_edge) + 1].isoformat(), gap_edge.isoformat()),
    ]
    assert spanned["suspicious"]["stale"] == [{"symbol": "DEAD", "start": stale[0].isoformat(),
                                               "end": stale[-1].isoformat(), "sessions": len(stale), "close": 178.0}]
    fetched_by = calendar.sessions(before[revised_edge], before[revised_edge] + dt.timedelta(days=LOOKBACK - 1))
    assert [(r["symbol"], r["date"], r["fields"], r["fetches"]) for r in spanned["revisions"]] == [
        ("NAB", before[revised_edge].isoformat(), ["volume"], len(fetched_by))]
    assert spanned["revisions"][0]["newest"] == {"volume": 777}
    assert [(i["symbol"], i["date"]) for i in spanned["missing"]["unexplained"]] == [("CBA", d.isoformat()) for d in gap]
    late_missing = [d for d in sessions if d < late_from - dt.timedelta(days=LOOKBACK - 1)]
    assert [(i["symbol"], i["date"]) for i in spanned["missing"]["not_fetched"]] == [
        ("LATE", d.isoformat()) for d in late_missing]
    assert spanned["expected_rows"] == 6 * len(sessions) and spanned["symbols"] == 6
    assert spanned["present_rows"] == spanned["expected_rows"] - len(gap) - len(late_missing)


def test_a_list_read_after_one_it_repeats_shares_its_listings_and_reads_its_changes(tmp_path):
    import pytest

    from stockstream_cli.dataset.store import open_store
    from stockstream_cli.dataset.symbols import Listing, to_csv
    from stockstream_cli.errors import CorruptFileError
    from stockstream_cli.quality.check import ListReader

    store = open_store(str(tmp_path / "data"))
    first = [Listing("AAA", "A LTD", "Energy", dt.date(2000, 1, 4), 10, 0), Listing("BBB", "B LTD", "Energy", None, None, 0)]
    second = [first[0], Listing("BBB", "B LTD", "Energy", None, 7, 0), Listing("CCC", "C LTD", "Banks", None, 5, 0)]
    store.put("symbols/a.csv", to_csv(first))
    store.put("symbols/b.csv", to_csv(second))
    store.put("symbols/bad.csv", to_csv(second) + b"not,a,row\n")
    reader = ListReader(store)
    one, two = reader.read("symbols/a.csv"), reader.read("symbols/b.csv")
    assert one == {item.symbol: item for item in first} and two == {item.symbol: item for item in second}
    assert two["AAA"] is one["AAA"] and two["BBB"] is not one["BBB"]  # the unchanged line parsed once
    with pytest.raises(CorruptFileError, match="line 5 has 3 fields"):
        reader.read("symbols/bad.csv")
