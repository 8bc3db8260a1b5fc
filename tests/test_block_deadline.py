"""Blocking is not delisting (fetch/block.py) and never losing fetched work at a deadline (fetch/deadline.py),
against the fake Yahoo at the transport: every request counted."""

from __future__ import annotations

import datetime as dt
import io
import json
import threading

import polars as pl
import pytest

from asx_fake import asx_codes, write_markit_csv
from stockstream_cli.dataset import layout
from stockstream_cli.errors import BatchBlocked, BatchInterrupted, Interrupted
from stockstream_cli.fetch import block
from helpers import fetch_batch
from clock import ChartClock, Clock
from stockstream_cli.fetch.deadline import COMMIT_SECONDS, Deadline
from stockstream_cli.reasons import BLOCKED, FINAL, INTERRUPTED, RERUN
from stockstream_cli.run import local, rerun
from stockstream_cli.run.lambda_runtime import fetch_event_batch
from stockstream_cli.run.types import Observer
from stockstream_cli.settings import Settings
from stockstream_cli.dataset.store import LocalStore
from stockstream_cli.run import symbols as symbols_step

DAY = dt.date(2025, 4, 8)
CODES = [f"S{i:02d}" for i in range(20)]


@pytest.fixture
def store(tmp_path):
    return LocalStore(tmp_path / "data")


def manifest(store, batch=0) -> dict:
    return json.loads(store.get(layout.batch_manifest_key(DAY, batch)))["metadata"]


def stored_symbols(store, batch=0) -> list[str]:
    rows = pl.read_parquet(io.BytesIO(store.get(layout.batch_data_key(DAY, batch))))
    return sorted(rows.get_column("symbol").unique().to_list())


def test_the_new_reasons_are_retried_later_never_final():
    assert {BLOCKED, INTERRUPTED} <= RERUN and not {BLOCKED, INTERRUPTED} & FINAL


def test_a_blocked_batch_stops_early_keeps_what_it_fetched_and_fails_to_be_retried(fake_yahoo, store):
    fake_yahoo.block(start=-1)  # from now on every chart is "may be delisted"
    with pytest.raises(BatchBlocked) as raised:
        fetch_batch(store, DAY, 0, Settings.resolve(), symbols=CODES)
    assert "blocking" in str(raised.value)
    metadata = manifest(store)
    assert metadata["failure_reasons"] == dict.fromkeys(CODES, BLOCKED)  # not one recorded as delisted
    # the run of BLOCK_RUN missing answers stopped it: the other symbols cost no request
    assert fake_yahoo.chart_requests() == 2 * block.BLOCK_RUN
    assert all(fake_yahoo.chart_requests(code) == 0 for code in CODES[block.BLOCK_RUN:])


def test_a_block_half_way_keeps_the_fetched_half_and_the_retry_fetches_only_the_blocked(fake_yahoo, store):
    fake_yahoo.fault("S00", "not_found")
    settings = Settings.resolve()
    fetch_batch(store, DAY, 0, settings, symbols=CODES[:8])  # healthy: 7 fetched, 1 real delisting
    assert manifest(store)["failure_reasons"] == {"S00": "not_found"}
    fake_yahoo.block(start=-1)
    with pytest.raises(BatchBlocked):
        fetch_batch(store, DAY, 0, settings, symbols=CODES)
    reasons = manifest(store)["failure_reasons"]
    assert {s for s, r in reasons.items() if r == BLOCKED} == set(CODES)  # S00 answered "delisted" in a block
    assert stored_symbols(store) == CODES[1:8]  # the rows fetched before the block are kept


def test_two_real_delistings_in_a_healthy_batch_stay_not_found(fake_yahoo, store):
    fake_yahoo.fault("S03", "not_found").fault("S11", "not_found")
    document = fetch_batch(store, DAY, 0, Settings.resolve(), symbols=CODES)
    assert document["metadata"]["failure_reasons"] == {"S03": "not_found", "S11": "not_found"}
    assert document["metadata"]["symbols_fetched"] == 18


def test_the_detector_threshold_by_share_and_by_run():
    detector = block.BlockDetector()
    for reason in [None, "not_found"] * 5:  # 5 of 10, never 10 in a row
        detector.observe(reason)
    assert detector.suspected and not detector.run_reached
    few = block.BlockDetector()
    for reason in ["not_found"] * 4 + [None] * 5:  # 4 of 9: too few symbols to judge by share
        few.observe(reason)
    assert not few.suspected
    healthy = block.BlockDetector()
    for reason in ["no_data"] * 4 + [None] * 96:
        healthy.observe(reason)
    assert not healthy.suspected


def test_a_block_pauses_the_shared_budget_for_its_pause():
    class Recorder:
        seen: list = []

        def on_rate_limited(self, retry_after=None):
            self.seen.append(retry_after)

    recorder = Recorder()
    block.back_off(recorder, Settings.resolve(retry_wait=2.0))
    assert recorder.seen == [60.0]


def test_a_deadline_half_way_stores_what_was_fetched_and_rerun_failed_finishes_exactly_the_rest(
        tmp_path, fake_yahoo, store):
    codes = asx_codes(20)
    list_path = write_markit_csv(tmp_path / "asx.csv", codes)
    settings = Settings.resolve(batch_size=20, store=store.uri)
    from stockstream_cli.sources import asx

    symbols_step.update_symbols(store, DAY, settings, from_file=str(list_path)).to_document()
    context = ChartClock.for_symbols(fake_yahoo, 10, settings)  # the 11th is not taken
    event = {"symbols": codes, "batchNumber": 0, "date": DAY.isoformat()}
    with pytest.raises(BatchInterrupted):
        fetch_event_batch(event, settings, context)
    metadata = manifest(store)
    assert stored_symbols(store) == codes[:10]
    assert metadata["failure_reasons"] == dict.fromkeys(codes[10:], INTERRUPTED)
    fake_yahoo.reset_counts()
    run = rerun.rerun_failed(store, DAY, settings)
    assert run["symbols_failed"] == []
    assert fake_yahoo.per_ticker() == {f"{code}.AX": 1 for code in codes[10:]}  # exactly the missing ones
    assert stored_symbols(store) == codes


def test_the_maps_retry_after_a_deadline_fetches_only_the_interrupted(tmp_path, fake_yahoo, store):
    settings = Settings.resolve(store=store.uri)
    event = {"symbols": CODES, "batchNumber": 0, "date": DAY.isoformat()}
    with pytest.raises(BatchInterrupted):
        fetch_event_batch(event, settings, ChartClock.for_symbols(fake_yahoo, 5, settings))
    fake_yahoo.reset_counts()
    document = fetch_event_batch(event, settings, ChartClock(fake_yahoo))
    assert fake_yahoo.per_ticker() == {f"{code}.AX": 1 for code in CODES[5:]}
    assert document["metadata"]["symbols_fetched"] == 20 and stored_symbols(store) == CODES


def test_ctrl_c_keeps_the_fetched_symbols_of_batches_in_flight(tmp_path, fake_yahoo, store):
    codes = asx_codes(30)
    list_path = write_markit_csv(tmp_path / "asx.csv", codes)
    stop = threading.Event()

    class StopAfter(Observer):
        done = 0

        def symbol_done(self, batch_number, symbol, reason):
            self.done += 1
            if self.done == 7:
                stop.set()  # what the main thread does on Ctrl-C

    with pytest.raises(Interrupted) as raised:
        local.run_local(store, DAY, Settings.resolve(batch_size=30, concurrency=1),
                        source=local.asx_source(from_file=str(list_path)), observer=StopAfter(), stop=stop)
    assert "rerun-failed" in str(raised.value)
    assert stored_symbols(store) == codes[:7]
    assert manifest(store)["failure_reasons"] == dict.fromkeys(codes[7:], INTERRUPTED)


def test_a_deadline_from_a_clock():
    clock = Clock()
    deadline = Deadline.at(100.0, clock=clock, symbol_seconds=35.0)
    assert not deadline.due()
    clock.now = 100.0 - COMMIT_SECONDS - 34.0  # one symbol's worst case and the write no longer fit
    assert deadline.due()


def test_run_local_retries_a_blocked_batch_and_records_no_delisting(tmp_path, fake_yahoo, store):
    codes = asx_codes(20)
    list_path = write_markit_csv(tmp_path / "asx.csv", codes)
    fake_yahoo.block(start=-1)
    retried = []

    class Unblock(Observer):
        def batch_retrying(self, batch_number, attempt, error):
            retried.append(error)
            fake_yahoo._blocks.clear()  # Yahoo lets the client back in by the batch's retry

    run = local.run_local(store, DAY, Settings.resolve(batch_size=20),
                          source=local.asx_source(from_file=str(list_path)), observer=Unblock())
    assert len(retried) == 1 and "blocking this client" in retried[0]
    assert run["batches_failed"] == [] and run["symbols_fetched"] == 20 and run["symbols_failed"] == []
    assert manifest(store)["failure_reasons"] == {}
    # the blocked attempt stopped after BLOCK_RUN symbols (2 chart requests each), the retry asked for all 20
    assert fake_yahoo.chart_requests() == 2 * block.BLOCK_RUN + 20
