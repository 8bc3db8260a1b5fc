"""Deadlines that hold at any timeout (fetch/deadline.py), on a virtual clock: the Lambda context's remaining
time, the fake Yahoo's latency and silent timeouts, and every pacing and backoff wait run on one fake clock, so
a 900 s invocation takes milliseconds. The handler (run/lambda_runtime.fetch_event_batch) returns, or raises
BatchInterrupted after committing, before its deadline, with every finished symbol stored; the next invocation
fetches only the rest (dataset.manifest.resume)."""

from __future__ import annotations

import datetime as dt
import io
import json

import polars as pl
import pytest

from yahoo_fake import FakeYahoo
from stockstream_cli.dataset import layout
from stockstream_cli.dataset.store import LocalStore
from stockstream_cli.errors import BatchInterrupted
from stockstream_cli.fetch.deadline import COMMIT_SECONDS, Deadline, symbol_worst_case
from stockstream_cli.reasons import INTERRUPTED, TIMEOUT
from stockstream_cli.run.lambda_runtime import fetch_event_batch
from stockstream_cli.settings import Settings
from clock import Clock, LambdaContext

DAY = dt.date(2025, 4, 8)


@pytest.fixture
def world(tmp_path):
    clock = Clock()
    fake = FakeYahoo(clock=clock, sleep=clock.sleep, latency=0.3, timeouts_wait=True)
    with fake.installed():
        yield clock, fake, LocalStore(tmp_path / "data")


def product_settings(store) -> Settings:
    """The shipped defaults of the waits (the test session zeroes them): delay 2 s, 3 retries from 2 s, 30 s."""
    return Settings.resolve(store=str(store.root), delay=2.0, retry_wait=2.0, retries=3, timeout=30.0)


def invoke(clock, store, codes, seconds, settings) -> tuple[dict, bool]:
    """One invocation of `seconds`: (the batch's stored record, whether it was interrupted); asserts that it
    ended before its deadline, everything it stored recorded and nothing recorded fetched left unstored."""
    context = LambdaContext(clock, seconds)
    event = {"symbols": codes, "batchNumber": 0, "date": DAY.isoformat()}
    try:
        fetch_event_batch(event, settings, context, sleep=clock.sleep)
        interrupted = False
    except BatchInterrupted:
        interrupted = True
    assert clock() < context.end, f"ended {clock() - context.end:.1f} s after the deadline"
    metadata = json.loads(store.get(layout.batch_manifest_key(DAY, 0)))["metadata"]
    if store.exists(layout.batch_data_key(DAY, 0)):
        assert stored(store) == sorted(set(codes) - set(metadata["failure_reasons"]))
    return metadata, interrupted


def stored(store) -> list[str]:
    rows = pl.read_parquet(io.BytesIO(store.get(layout.batch_data_key(DAY, 0))))
    return sorted(rows.get_column("symbol").unique().to_list())


def test_one_symbols_worst_case_comes_from_the_settings():
    assert symbol_worst_case(Settings.resolve(delay=2.0, retry_wait=2.0, retries=3, timeout=30.0)) == 4 * 32 + 2 + 4 + 8
    assert symbol_worst_case(Settings.resolve(delay=0.0, retry_wait=0.0, retries=0, timeout=10.0)) == 10


def test_a_deadline_bounds_attempts_and_waits_by_the_time_left():
    clock = Clock()
    deadline = Deadline.at(200.0, clock=clock, symbol_seconds=60.0)
    assert not deadline.due() and deadline.attempt_timeout(30.0) == 30.0
    clock.now = 200.0 - COMMIT_SECONDS - 59.0  # 59 s of fetching left: a symbol's worst case (60 s) no longer fits
    assert deadline.due() and deadline.attempt_timeout(30.0) == 30.0
    clock.now = 200.0 - COMMIT_SECONDS - 10.0
    assert deadline.attempt_timeout(30.0) == pytest.approx(10.0)
    assert deadline.allows_wait(8.0) and not deadline.allows_wait(9.9)
    clock.now = 200.0 - COMMIT_SECONDS
    assert deadline.attempt_timeout(30.0) is None
    short = Deadline.at(12.0, clock=clock, symbol_seconds=142.0)  # a worst case longer than the function
    assert short.symbol_seconds == pytest.approx((12.0 - COMMIT_SECONDS) / 2) and not short.due()


def test_a_12_second_handler_keeps_what_it_fetched_and_its_retries_fetch_only_the_rest(world):
    clock, fake, store = world
    codes = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]
    settings = product_settings(store)
    fake.fault("BBB", "timeout", times=1)  # silent for its first request
    metadata, interrupted = invoke(clock, store, codes, 12.0, settings)
    assert interrupted
    assert stored(store) == ["AAA"]  # a cold start (cookie, crumb, chart at 2 s apart): one symbol, kept
    assert metadata["failure_reasons"] == dict.fromkeys(codes[1:], INTERRUPTED)
    assert fake.per_ticker() == {"AAA.AX": 1}
    fake.reset_counts()
    started = clock()
    metadata, interrupted = invoke(clock, store, codes, 12.0, settings)
    assert interrupted and fake.per_ticker() == {"BBB.AX": 1}  # BBB's silent attempt, cut to the time left
    assert clock() - started == pytest.approx(12.0 - COMMIT_SECONDS, abs=0.5)  # then no time for a retry
    assert metadata["failure_reasons"] == dict.fromkeys(codes[1:], INTERRUPTED) and stored(store) == ["AAA"]
    for _ in range(len(codes)):  # the Map's retries, each a fresh 12 s invocation
        fake.reset_counts()
        before = set(stored(store))
        metadata, interrupted = invoke(clock, store, codes, 12.0, settings)
        assert set(fake.per_ticker()) <= {f"{code}.AX" for code in codes if code not in before}  # only the rest
        assert all(count == 1 for count in fake.per_ticker().values())
        if not interrupted:
            break
    assert not interrupted and metadata["failure_reasons"] == {} and stored(store) == codes


def test_a_900_second_handler_in_a_storm_of_timeouts_ends_before_its_deadline(world):
    clock, fake, store = world
    codes = [f"S{i:02d}" for i in range(12)]
    settings = product_settings(store)
    for code in codes[2:10]:
        fake.fault(code, "timeout")  # silent every time: each takes its 4 attempts of 30 s and the backoff
    metadata, interrupted = invoke(clock, store, codes, 900.0, settings)
    assert interrupted
    reasons = metadata["failure_reasons"]
    timed_out = [code for code in codes if reasons.get(code) == TIMEOUT]
    assert timed_out == codes[2:2 + len(timed_out)] and 5 <= len(timed_out) <= 7  # ~135 s each
    rest = codes[2 + len(timed_out):]
    assert {code: reasons[code] for code in rest} == dict.fromkeys(rest, INTERRUPTED)
    assert stored(store) == codes[:2]
    assert all(fake.chart_requests(code) == settings.retries + 1 for code in timed_out)
    assert all(fake.chart_requests(code) == 0 for code in rest)  # none started only to be cut
    fake.clear_faults().reset_counts()
    metadata, interrupted = invoke(clock, store, codes, 900.0, settings)
    assert not interrupted
    assert fake.per_ticker() == {f"{code}.AX": 1 for code in rest}  # exactly the rest
    assert stored(store) == codes[:2] + rest
    assert metadata["failure_reasons"] == dict.fromkeys(timed_out, TIMEOUT)
