"""The data-quality step after a run's aggregate: which session a run checks, the "quality" block, and the
stock-data-fetcher function's finalize action (what the state machine's CheckDataQuality invokes)."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from aws_fake import load_handler
from storefactory import build_day
from stockstream_cli import calendar
from stockstream_cli.dataset import layout, locks
from stockstream_cli.quality import check as quality
from stockstream_cli.run import lambda_runtime
from stockstream_cli.aws import resources as res
from stockstream_cli.errors import InputError
from stockstream_cli.dataset.store import open_store

SYDNEY = ZoneInfo("Australia/Sydney")
D = dt.date


def sydney(year, month, day, hour, minute=0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=SYDNEY)


# ---------------------------------------------------------------------------------------------- which session


@pytest.mark.parametrize("day, started, expected", [
    # the schedule: 06:00 Sydney on D, before D trades
    (D(2026, 11, 30), sydney(2026, 11, 30, 6), D(2026, 11, 27)),  # Monday checks Friday
    (D(2026, 11, 25), sydney(2026, 11, 25, 6), D(2026, 11, 24)),  # a Wednesday checks Tuesday
    (D(2026, 11, 28), sydney(2026, 11, 28, 6), D(2026, 11, 27)),  # Saturday checks Friday
    # a session counts as closed from 16:30 (16:00 close, the closing auction and Yahoo's bar settling)
    (D(2026, 11, 25), sydney(2026, 11, 25, 16, 29), D(2026, 11, 24)),
    (D(2026, 11, 25), sydney(2026, 11, 25, 16, 30), D(2026, 11, 25)),
    # Anzac Day, Friday 25 April 2025: the day after, and the Monday after, check Thursday 24
    (D(2025, 4, 26), sydney(2025, 4, 26, 6), D(2025, 4, 24)),
    (D(2025, 4, 28), sydney(2025, 4, 28, 6), D(2025, 4, 24)),
    # Christmas 2025 (Thu 25, Boxing Day Fri 26): Saturday checks Christmas Eve, an early close (14:10)
    (D(2025, 12, 27), sydney(2025, 12, 27, 6), D(2025, 12, 24)),
    (D(2025, 12, 24), sydney(2025, 12, 24, 14, 40), D(2025, 12, 24)),
    (D(2025, 12, 24), sydney(2025, 12, 24, 14, 39), D(2025, 12, 23)),
    # the 5-day window holds no closed session: nothing to check
    (D(2025, 12, 29), sydney(2025, 12, 29, 6), None),  # Mon 29 Dec: the window is 25..29 Dec
    (D(2025, 4, 22), sydney(2025, 4, 22, 6), None),  # Tuesday after Easter Monday: Thursday 17 is outside
    # a run for a past day (run-local --date, a rerun) checks that day
    (D(2026, 8, 21), sydney(2026, 11, 26, 8), D(2026, 8, 21)),
    (D(2026, 8, 22), sydney(2026, 11, 26, 8), D(2026, 8, 21)),  # a Saturday: its Friday
])
def test_the_session_a_run_checks(day, started, expected):
    assert calendar.session_to_check(day, started, 5) == expected
    assert calendar.session_to_check(day, started.astimezone(dt.timezone.utc), 5) == expected  # any offset


def test_a_longer_lookback_reaches_further_back():
    assert calendar.session_to_check(D(2025, 4, 22), sydney(2025, 4, 22, 6), 6) == D(2025, 4, 17)


def test_the_run_start_must_carry_its_offset():
    with pytest.raises(ValueError):
        calendar.session_to_check(D(2026, 11, 25), dt.datetime(2026, 11, 25, 6), 5)


# ---------------------------------------------------------------------------------------------- the quality block

DAY = D(2026, 1, 7)  # a Wednesday; the week is all sessions
AFTER_CLOSE = "2026-01-07T06:00:00.000Z"  # 17:00 in Sydney (AEDT): DAY is checked
BEFORE_OPEN = "2026-01-06T19:00:00.000Z"  # 06:00 in Sydney on DAY: the previous session is checked
SYMBOLS = ["BHP", "CBA", "NAB", "WBC", "ZIP"]


def test_an_incomplete_day_gives_the_alert_and_the_counts(tmp_path):
    store = open_store(str(tmp_path / "data"))
    build_day(store, DAY, SYMBOLS, batch_size=2, failures={"NAB": "not_found"})
    heard = []
    block = quality.run_quality(store, DAY, AFTER_CLOSE, note=heard.append)
    assert {k: block[k] for k in ("session", "complete", "missing", "suspicious", "expected_rows", "present_rows")} == {
        "session": "2026-01-07", "complete": False, "missing": 1, "suspicious": 0, "expected_rows": 5, "present_rows": 4}
    assert block["alert"] == quality.alert_message(quality.check_day(store, DAY))
    assert "NAB 2026-01-07" in block["alert"]
    assert heard == [f"data incomplete: {block['alert']}"]


def test_a_complete_day_and_a_run_before_the_close(tmp_path):
    store = open_store(str(tmp_path / "data"))
    build_day(store, DAY, SYMBOLS, batch_size=2)
    heard = []
    assert quality.run_quality(store, DAY, AFTER_CLOSE, note=heard.append) == {
        "session": "2026-01-07", "complete": True, "missing": 0, "suspicious": 0, "expected_rows": 5,
        "present_rows": 5, "alert": None}
    before = quality.run_quality(store, DAY, BEFORE_OPEN, note=heard.append)
    assert (before["session"], before["complete"]) == ("2026-01-06", True)  # the window's rows of the 6th are there
    assert heard == []


def test_no_closed_session_in_the_window_checks_nothing(tmp_path):
    store = open_store(str(tmp_path / "empty"))  # no list at all: the check would refuse; it is not even run
    assert quality.run_quality(store, D(2025, 12, 29), "2025-12-28T19:00:00Z") == {
        "session": None, "complete": True, "missing": 0, "suspicious": 0, "alert": None}


def test_a_check_that_cannot_run_is_recorded_not_raised(tmp_path):
    store = open_store(str(tmp_path / "data"))
    build_day(store, DAY, SYMBOLS, batch_size=2)
    store.put(layout.batch_data_key(DAY, 1), b"not parquet")
    heard = []
    block = quality.run_quality(store, DAY, AFTER_CLOSE, note=heard.append)
    assert (block["session"], block["complete"]) == ("2026-01-07", None)
    assert "raw-data/2026-01-07-batch-1.parquet" in block["error"]
    assert heard == [f"the data-quality check could not run: {block['error']}"]


# ---------------------------------------------------------------------------------------------- the Lambda's finalize


@pytest.fixture
def deployed(s3_bucket, monkeypatch):
    """The stock-data-fetcher function's environment, its store an S3 bucket (moto)."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "stock-data-fetcher")
    monkeypatch.setenv("STOCKSTREAM_STORE", f"s3://{s3_bucket}")
    return open_store(f"s3://{s3_bucket}")


def finalize(**event):
    return load_handler("stock_data_fetcher.handler")({"action": "finalize", "date": DAY.isoformat(), **event}, None)


def test_finalize_writes_run_json_and_returns_the_check(deployed, capsys):
    build_day(deployed, DAY, SYMBOLS, batch_size=2, failures={"NAB": "not_found"}, missing_batches=[2], write_run=False)
    result = finalize(startedAt=AFTER_CLOSE, execution="daily-2026-01-07", batchNumbers=[0, 1, 2],
                      batchFailed=[False, False, True])
    assert {k: result[k] for k in ("date", "session", "complete", "missing")} == {
        "date": "2026-01-07", "session": "2026-01-07", "complete": False, "missing": 2}  # NAB, and ZIP of batch 2
    assert "NAB 2026-01-07" in result["alert"] and "ZIP 2026-01-07" in result["alert"]
    assert len(json.dumps(result)) < 2000  # what flows back into the state machine stays small

    run = json.loads(deployed.get(layout.run_summary_key(DAY)))
    assert {k: run[k] for k in ("date", "total_symbols", "num_batches", "batches_succeeded", "batches_failed",
                                "symbols_fetched", "symbols_failed")} == {
        "date": "2026-01-07", "total_symbols": 5, "num_batches": 3, "batches_succeeded": 2, "batches_failed": [2],
        "symbols_fetched": 3, "symbols_failed": ["NAB", "ZIP"]}
    assert run["failure_reasons"] == {"NAB": "not_found"}
    assert run["batch_errors"] == {"2": "failed in execution daily-2026-01-07"}
    assert (run["command"], run["execution"], run["started_at"]) == ("stock-data-pipeline", "daily-2026-01-07", AFTER_CLOSE)
    assert run["quality"] == {k: v for k, v in result.items() if k != "date"}
    [metrics] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert (metrics["DataIncomplete"], metrics["RowsMissing"], metrics["RowsSuspicious"]) == (1, 2, 0)


def test_finalize_of_a_complete_day(deployed):
    build_day(deployed, DAY, SYMBOLS, batch_size=2, write_run=False)
    result = finalize(startedAt=BEFORE_OPEN, batchNumbers=[0, 1, 2], batchFailed=[False, False, False])
    assert (result["session"], result["complete"], result["alert"]) == ("2026-01-06", True, None)
    assert json.loads(deployed.get(layout.run_summary_key(DAY)))["batches_failed"] == []


def test_finalize_raises_when_the_check_cannot_run_after_writing_run_json(deployed):
    build_day(deployed, DAY, SYMBOLS, batch_size=2, write_run=False)
    deployed.put(layout.batch_data_key(DAY, 1), b"not parquet")
    with pytest.raises(lambda_runtime.QualityCheckFailed, match="batch-1.parquet"):
        finalize(startedAt=AFTER_CLOSE)
    run = json.loads(deployed.get(layout.run_summary_key(DAY)))
    assert run["symbols_fetched"] == 5 and run["quality"]["complete"] is None


def killed_fetchers_lock(store, batch_number: int, *, seconds_ago: float) -> None:
    """The batch lock a fetcher Lambda left when it was killed: never released, its last heartbeat
    `seconds_ago`, on a sandbox host that is not this one."""
    beat = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds_ago)
    holder = {"host": "169.254.10.1", "pid": 8, "command": "stock-data-fetcher", "started": AFTER_CLOSE,
              "heartbeat": beat.strftime("%Y-%m-%dT%H:%M:%SZ"), "token": "killed",
              "owner": f"daily-2026-01-07/batch-{batch_number}"}
    store.put(locks.batch_key(DAY, batch_number), json.dumps(holder).encode())


class Recording:
    """A store that notes, at each write of run.json or the open suspicions, whether the day's lock is held."""

    def __init__(self, inner):
        self.inner, self.locked_at_write = inner, {}

    def put(self, key, data, *args, **kwargs):
        if key in (layout.run_summary_key(DAY), layout.SUSPICIONS_KEY):
            self.locked_at_write[key] = bool(self.inner.list(locks.day_key(DAY)))
        return self.inner.put(key, data, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_finalize_writes_under_the_days_lock_and_waits_out_a_killed_fetchers_lock(store):
    from stockstream_cli.run.finalize import finalize_day

    build_day(store, DAY, SYMBOLS, batch_size=2, write_run=False)
    killed_fetchers_lock(store, 2, seconds_ago=locks.STALE_AFTER_SECONDS + 1)  # went stale while the Map ended
    recording, slept = Recording(store), []
    run = finalize_day(recording, DAY, run_started=dt.datetime(2026, 1, 7, 6, tzinfo=dt.timezone.utc),
                       sleep=slept.append)
    assert recording.locked_at_write[layout.run_summary_key(DAY)] is True and slept == []
    assert json.loads(store.get(layout.run_summary_key(DAY)))["symbols_fetched"] == run["symbols_fetched"] == 5
    assert store.list(locks.day_key(DAY)) == []  # released


def test_finalize_waits_at_most_until_a_killed_holder_would_be_stale_then_names_the_holder(store):
    from stockstream_cli.dataset.commit import DEAD_HOLDER_WAIT
    from stockstream_cli.run.finalize import finalize_day

    build_day(store, DAY, SYMBOLS, batch_size=2, write_run=False)
    slept = []
    with locks.day_lock(store, DAY, "run-local"):  # another writer of the day, alive
        with pytest.raises(locks.LockHeld, match="2026-01-07 is being written by run-local"):
            finalize_day(store, DAY, run_started=dt.datetime(2026, 1, 7, 6, tzinfo=dt.timezone.utc),
                         sleep=slept.append)
    assert sum(slept) >= DEAD_HOLDER_WAIT > locks.STALE_AFTER_SECONDS and sum(slept) < DEAD_HOLDER_WAIT + 10
    assert not store.exists(layout.run_summary_key(DAY))


@pytest.mark.parametrize("event", [{"action": "finalize"}, {"action": "finalize", "date": "2026-01-07", "startedAt": "dawn"},
                                   {"action": "delete-everything"}])
def test_a_malformed_finalize_event_is_refused(deployed, event):
    with pytest.raises(InputError):
        load_handler("stock_data_fetcher.handler")(event, None)


def test_the_lambda_role_reads_the_data_and_writes_runs_and_the_machine_may_publish():
    target = res.Target(account="111122223333", region="ap-southeast-2", bucket="b", image_uri="x/y:z")
    [data] = [s for s in res.lambda_role_policy(target)["Statement"] if s["Sid"] == "ReadWriteDataKeys"]
    assert {"s3:GetObject", "s3:PutObject"} <= set(data["Action"])
    assert {"arn:aws:s3:::b/symbols/*", "arn:aws:s3:::b/raw-data/*", "arn:aws:s3:::b/runs/*"} <= set(data["Resource"])
    states = {s["Sid"]: s for s in res.states_role_policy(target)["Statement"]}
    assert target.function_arn(res.FETCHER_FUNCTION) in states["InvokePipelineFunctions"]["Resource"]
    assert states["PublishAlerts"]["Resource"] == target.topic_arn
