"""`stockstream run-local` end to end on a generated ASX list, Yahoo faked at yfinance's seam."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest

from asx_fake import asx_codes, write_markit_csv
from pipeline_support import FailingPutStore, stored_rows
from helpers import runner
from stockstream_cli.dataset import layout
from stockstream_cli.run import local, task, types as run_types
from stockstream_cli.dataset import summary as run_summary
from stockstream_cli.cli import app
from stockstream_cli.errors import Interrupted
from stockstream_cli.settings import Settings
from stockstream_cli.dataset.store import LocalStore
from stockstream_cli.cli import exit_code_for

DAY = dt.date(2026, 8, 21)  # a Friday: the 5-day lookback window is Monday to Friday


@pytest.fixture
def asx_list(tmp_path):
    codes = asx_codes(300)
    return codes, write_markit_csv(tmp_path / "asx.csv", codes)


def run_local_cli(list_path, store, *extra):
    return runner.invoke(app, ["run-local", "--date", DAY.isoformat(), "--from-file", str(list_path),
                               "--store", str(store), "--batch-size", "50", *extra])


def test_run_local_with_faults_summary_files_and_exit_code(tmp_path, asx_list, fake_yahoo):
    codes, list_path = asx_list
    faults = {codes[3]: "not_found", codes[60]: "empty", codes[120]: "malformed", codes[180]: "rate_limited",
              codes[240]: "timeout"}
    for code, kind in faults.items():
        fake_yahoo.fault(code, kind)
    fake_yahoo.fault(codes[299], "rate_limited", times=2)  # transient: the symbol's own retries get it
    store = tmp_path / "data"

    result = run_local_cli(list_path, store, "--concurrency", "4", "--json")

    assert result.exit_code == 3, result.output
    summary = json.loads(result.stdout)
    assert summary == {
        "date": "2026-08-21",
        "total_symbols": 300,
        "num_batches": 6,
        "batches_succeeded": 6,
        "batches_failed": [],
        "symbols_fetched": 295,
        "symbols_failed": sorted(faults),
        "execution_time": summary["execution_time"],
    }
    run = json.loads((store / "runs/2026-08-21/run.json").read_text())
    assert run["failure_reasons"] == {codes[3]: "not_found", codes[60]: "no_data", codes[120]: "error",
                                      codes[180]: "rate_limited", codes[240]: "timeout"}
    assert run_summary.summary(run) == summary
    # the data-quality step: the run started after the day's close, so the day itself is checked; the
    # incomplete day is a warning on stderr and in run.json, the exit code stays the fetch's (3 here)
    assert {k: run["quality"][k] for k in ("session", "complete", "missing", "suspicious", "expected_rows", "present_rows")} == {
        "session": "2026-08-21", "complete": False, "missing": 5, "suspicious": 0, "expected_rows": 300, "present_rows": 295}
    assert f"{sorted(faults)[0]} 2026-08-21" in run["quality"]["alert"]
    assert f"stockstream: data incomplete: {run['quality']['alert']}" in result.stderr
    assert fake_yahoo.chart_requests(codes[299]) == 5  # refused twice (request + yfinance's resend), then fetched

    names = sorted(p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file())
    assert names == sorted(
        ["symbols/2026-08-21-symbols.csv", "runs/2026-08-21/run.json"]
        + [f"raw-data/2026-08-21-batch-{n}.parquet" for n in range(6)]
        + [f"runs/2026-08-21/batch-{n}.json" for n in range(6)]
    )
    rows = stored_rows(store, DAY)
    assert sorted(set(rows["symbol"])) == sorted(set(codes) - set(faults))
    assert rows.height == 295 * 5
    assert rows.group_by("symbol", "date").len()["len"].max() == 1
    assert sorted(set(rows["date"])) == [dt.date(2026, 8, d) for d in range(17, 22)]
    batch_of = {code: i // 50 for i, code in enumerate(codes)}
    assert all(batch_of[s] == b for s, b in zip(rows["symbol"], rows["batch_number"]))


def test_run_local_everything_fetched_prints_a_summary_and_exits_0(tmp_path, fake_yahoo):
    codes = asx_codes(40)
    list_path = write_markit_csv(tmp_path / "asx.csv", codes)
    result = run_local_cli(list_path, tmp_path / "data")
    assert result.exit_code == 0, result.output
    assert "2026-08-21: 40 of 40 symbols fetched, 0 failed; 1 of 1 batch succeeded" in result.stdout
    assert "Failed symbols" not in result.stdout
    assert stored_rows(tmp_path / "data", DAY).height == 40 * 5
    run = json.loads((tmp_path / "data/runs/2026-08-21/run.json").read_text())
    assert (run["quality"]["session"], run["quality"]["complete"], run["quality"]["alert"]) == ("2026-08-21", True, None)
    assert "data incomplete" not in result.stderr


def test_every_batch_failing_exits_1_and_records_the_batches(tmp_path, fake_yahoo):
    codes = asx_codes(20)
    list_path = write_markit_csv(tmp_path / "asx.csv", codes)
    fake_yahoo.rate_limit = 0  # Yahoo refuses everything: each batch fails as a whole, every attempt
    result = runner.invoke(app, ["run-local", "--date", DAY.isoformat(), "--from-file", str(list_path),
                                 "--store", str(tmp_path / "data"), "--batch-size", "10", "--retries", "0", "--json"])
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert (summary["batches_succeeded"], summary["batches_failed"], summary["symbols_fetched"]) == (0, [0, 1], 0)
    assert summary["symbols_failed"] == codes
    run = json.loads((tmp_path / "data/runs/2026-08-21/run.json").read_text())
    assert set(run["batch_errors"]) == {"0", "1"} and "every failure is retryable" in run["batch_errors"]["0"]
    # each batch tried three times; each symbol's one attempt is a refused request and yfinance's resend
    assert fake_yahoo.chart_requests() == 20 * 3 * 2
    assert not (tmp_path / "data/raw-data").exists()


def test_symbols_step_failing_stops_the_run_with_exit_1(tmp_path, fake_yahoo):
    bad = tmp_path / "asx.csv"
    bad.write_text("<html><title>Request Rejected</title></html>")
    result = runner.invoke(app, ["run-local", "--date", DAY.isoformat(), "--from-file", str(bad),
                                 "--store", str(tmp_path / "data")])
    assert result.exit_code == 1
    assert "symbols step failed 4 times" in result.stderr and "Request Rejected" in result.stderr
    assert fake_yahoo.count(kind=None) == 0
    assert not (tmp_path / "data").exists()


class Recorder(run_types.Observer):
    def __init__(self):
        self.events = []
        self.lock = threading.Lock()

    def batch_retrying(self, batch_number, attempt, error):
        with self.lock:
            self.events.append(("retry", batch_number, attempt, error))

    def batch_done(self, batch_number, document, error):
        with self.lock:
            self.events.append(("done", batch_number, error))


@pytest.fixture
def small_list(tmp_path):
    codes = asx_codes(40)
    return codes, write_markit_csv(tmp_path / "asx.csv", codes)


def test_a_batch_whose_write_fails_once_is_retried(tmp_path, small_list, fake_yahoo):
    codes, list_path = small_list
    store = FailingPutStore(LocalStore(tmp_path / "data"), layout.batch_data_key(DAY, 2), times=1)
    recorder = Recorder()
    run = local.run_local(store, DAY, Settings.resolve(batch_size=10, concurrency=3),
                             source=local.asx_source(from_file=str(list_path)), observer=recorder)
    assert store.failed_puts == 1
    assert exit_code_for(run_summary.outcome(run)) == 0 and run["symbols_fetched"] == 40
    retries = [e for e in recorder.events if e[0] == "retry"]
    assert len(retries) == 1 and retries[0][1:3] == (2, 1) and "injected failure" in retries[0][3]
    assert stored_rows(tmp_path / "data", DAY).height == 40 * 5


def test_a_batch_that_fails_every_attempt_is_isolated(tmp_path, small_list, fake_yahoo):
    codes, list_path = small_list
    store = FailingPutStore(LocalStore(tmp_path / "data"), layout.batch_data_key(DAY, 2), times=99)
    run = local.run_local(store, DAY, Settings.resolve(batch_size=10, concurrency=3),
                             source=local.asx_source(from_file=str(list_path)))
    assert store.failed_puts == 3  # the first attempt and two retries
    assert run["batches_failed"] == [2] and run["batches_succeeded"] == 3
    assert run["symbols_failed"] == codes[20:30] and run["symbols_fetched"] == 30
    assert "injected failure" in run["batch_errors"]["2"]
    assert exit_code_for(run_summary.outcome(run)) == 3
    assert not (tmp_path / "data" / layout.batch_manifest_key(DAY, 2)).exists()
    assert sorted(set(stored_rows(tmp_path / "data", DAY)["symbol"])) == codes[:20] + codes[30:]


def test_at_most_concurrency_batches_run_at_once(tmp_path, monkeypatch, fake_yahoo):
    codes = asx_codes(60)
    list_path = write_markit_csv(tmp_path / "asx.csv", codes)
    real_fetch_batch = task.fetch_batch
    lock = threading.Lock()
    running = {"now": 0, "most": 0}

    def counting_fetch_batch(*args, **kwargs):
        with lock:
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
        try:
            return real_fetch_batch(*args, **kwargs)
        finally:
            with lock:
                running["now"] -= 1

    monkeypatch.setattr(task, "fetch_batch", counting_fetch_batch)
    run = local.run_local(LocalStore(tmp_path / "data"), DAY, Settings.resolve(batch_size=5, concurrency=3),
                             source=local.asx_source(from_file=str(list_path)))
    assert run["num_batches"] == 12 and run["symbols_fetched"] == 60
    assert 1 <= running["most"] <= 3


def test_bad_options_exit_2_before_anything_is_written(tmp_path, asx_list):
    _, list_path = asx_list
    for args in (["--concurrency", "0"], ["--date", "2026-13-01"], ["--from-file", str(tmp_path / "missing.csv")]):
        result = runner.invoke(app, ["run-local", "--store", str(tmp_path / "data"), "--from-file", str(list_path), *args])
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output
    assert not (tmp_path / "data").exists()


def test_a_stop_part_way_keeps_finished_batches_and_leaves_nothing_half_written(tmp_path, fake_yahoo):
    codes = asx_codes(60)
    list_path = write_markit_csv(tmp_path / "asx.csv", codes)
    stop = threading.Event()

    class StopAfterTwoBatches(run_types.Observer):
        def __init__(self):
            self.done = 0

        def batch_done(self, batch_number, document, error):
            self.done += 1
            if self.done == 2:
                stop.set()

    with pytest.raises(Interrupted) as raised:
        local.run_local(LocalStore(tmp_path / "data"), DAY, Settings.resolve(batch_size=5, concurrency=2),
                           source=local.asx_source(from_file=str(list_path)), observer=StopAfterTwoBatches(),
                           stop=stop)
    assert exit_code_for(raised.value) == 130
    assert "stockstream rerun-failed --date 2026-08-21" in str(raised.value)
    data = tmp_path / "data"
    manifests = sorted((data / "runs/2026-08-21").glob("batch-*.json"))
    parquets = sorted((data / "raw-data").glob("*.parquet"))
    assert 2 <= len(manifests) <= 3 and len(parquets) == len(manifests)  # at most the other batch in flight
    assert not [p for p in data.rglob("*") if p.name.startswith(".")]
    run = json.loads((data / "runs/2026-08-21/run.json").read_text())
    # a batch in flight keeps what it fetched (fetch/deadline.py): its manifest records the rest as interrupted
    cut_short = [m for m in manifests if "interrupted" in json.loads(m.read_text())["metadata"]["failure_reasons"].values()]
    assert len(cut_short) <= 1
    # what is stored is what run.json counts: a batch cut short has its record, and counts with what it kept
    assert run["interrupted"] and run["batches_succeeded"] == len(manifests) and run["num_batches"] == 12
    assert fake_yahoo.chart_requests() < 60
