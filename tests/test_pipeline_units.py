"""The orchestration's pure parts: what rerun-failed plans, the run summary, exit codes, the symbols step."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from stockstream_cli.run import local, rerun, types as run_types
from stockstream_cli.dataset import summary as run_summary
from stockstream_cli.dataset.manifest import from_document
from stockstream_cli.errors import InputError, Interrupted, SourceError
from stockstream_cli.settings import Settings
from stockstream_cli.cli import exit_code_for

DAY = dt.date(2026, 8, 21)
FINISHED = "2026-08-21T08:00:12.345Z"


def manifest(number, symbols, reasons=None):
    """A batch's record as the store holds it (the contract's document, parsed)."""
    reasons = reasons or {}
    return from_document({
        "statusCode": 200,
        "body": "",
        "metadata": {
            "batch_number": number,
            "symbols_processed": len(symbols),
            "symbols_fetched": len(symbols) - len(reasons),
            "symbols_failed": sorted(reasons),
            "failure_reasons": reasons,
            "execution_time": 1.0,
            "s3_key": f"raw-data/{DAY}-batch-{number}.parquet",
        },
    })


BATCHES = {0: ["AAA", "BBB", "CCC"], 1: ["DDD", "EEE", "FFF"], 2: ["GGG", "HHH"]}


def test_plan_rerun_whole_missing_batches_and_retryable_symbols_only():
    manifests = {
        0: manifest(0, BATCHES[0], {"BBB": "rate_limited", "CCC": "not_found"}),
        1: None,
        2: manifest(2, BATCHES[2], {"GGG": "no_data", "HHH": "timeout"}),
    }
    jobs = rerun.plan_rerun(BATCHES, manifests, {0, 2})
    assert jobs == [
        run_types.BatchJob(0, ("AAA", "BBB", "CCC"), ("BBB",)),
        run_types.BatchJob(1, ("DDD", "EEE", "FFF")),
        run_types.BatchJob(2, ("GGG", "HHH"), ("HHH",)),
    ]
    assert [job.to_fetch for job in jobs] == [("BBB",), ("DDD", "EEE", "FFF"), ("HHH",)]


def test_plan_rerun_all_adds_not_found_and_no_data():
    manifests = {0: manifest(0, BATCHES[0], {"BBB": "invalid_data", "CCC": "not_found"}),
                 1: manifest(1, BATCHES[1]), 2: manifest(2, BATCHES[2], {"GGG": "no_data"})}
    jobs = rerun.plan_rerun(BATCHES, manifests, {0, 1, 2}, include_all=True)
    assert [(job.batch_number, job.subset) for job in jobs] == [(0, ("BBB", "CCC")), (2, ("GGG",))]


def test_plan_rerun_nothing_failed_plans_nothing():
    manifests = {n: manifest(n, s, {"AAA": "not_found"} if n == 0 else None) for n, s in BATCHES.items()}
    assert rerun.plan_rerun(BATCHES, manifests, {0, 1, 2}) == []


def test_plan_rerun_manifest_without_its_data_file_fetches_the_batch_whole():
    manifests = {n: manifest(n, s) for n, s in BATCHES.items()}
    assert rerun.plan_rerun(BATCHES, manifests, {0, 2}) == [run_types.BatchJob(1, tuple(BATCHES[1]))]


def test_failed_symbol_without_a_reason_counts_as_error():
    document = manifest(0, BATCHES[0]).to_document()
    document["metadata"]["symbols_failed"] = ["AAA"]
    assert from_document(document).failure_reasons == {"AAA": "error"}


def test_run_document_counts_a_failed_batch_as_failed_symbols():
    manifests = {0: manifest(0, BATCHES[0], {"CCC": "not_found"}), 2: manifest(2, BATCHES[2])}
    run = run_summary.run_document(DAY, BATCHES, manifests, 12.345, command="run-local", finished_at=FINISHED,
                                batch_errors={1: "StoreError: disk full"})
    assert run_summary.summary(run) == {
        "date": "2026-08-21",
        "total_symbols": 8,
        "num_batches": 3,
        "batches_succeeded": 2,
        "batches_failed": [1],
        "symbols_fetched": 4,
        "symbols_failed": ["CCC", "DDD", "EEE", "FFF"],
        "execution_time": 12.35,
    }
    assert list(run_summary.summary(run)) == list(run_summary.SUMMARY_KEYS)
    assert run["failure_reasons"] == {"CCC": "not_found"}
    assert run["batch_errors"] == {"1": "StoreError: disk full"}
    assert exit_code_for(run_summary.outcome(run)) == 3


def test_exit_codes():
    everything = run_summary.run_document(DAY, BATCHES, {n: manifest(n, s) for n, s in BATCHES.items()}, 1,
                                       command="run-local", finished_at=FINISHED)
    assert exit_code_for(run_summary.outcome(everything)) == 0
    nothing = run_summary.run_document(DAY, BATCHES, {}, 1, command="run-local", finished_at=FINISHED)
    assert exit_code_for(run_summary.outcome(nothing)) == 1
    all_not_found = {n: manifest(n, s, {x: "not_found" for x in s}) for n, s in BATCHES.items()}
    assert exit_code_for(run_summary.outcome(run_summary.run_document(DAY, BATCHES, all_not_found, 1, command="run-local",
                                                                    finished_at=FINISHED))) == 1


def test_backoff_waits_follow_step_functions():
    assert run_types.backoff_waits(2.0, 3) == [2.0, 4.0, 8.0]
    assert run_types.backoff_waits(0, 2) == [0, 0]


class FlakySource:
    """A symbols step that fails `failures` times with `error`, then answers one batch."""

    def __init__(self, failures, error=SourceError("the ASX source answered with Bad Gateway")):
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self, store, day, settings, *, note):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return {"symbolBatches": []}


def test_symbols_step_is_retried_three_times_with_backoff(tmp_path):
    from stockstream_cli.dataset.store import LocalStore

    waits = []
    source = FlakySource(failures=3)
    settings = Settings.resolve(retry_wait=1.5)
    run = local.run_local(LocalStore(tmp_path), DAY, settings, source=source, sleep=waits.append)
    assert source.calls == 4
    assert waits == [1.5, 3.0, 6.0]
    assert run["num_batches"] == 0


def test_symbols_step_failing_every_time_stops_the_run_with_exit_1(tmp_path):
    from stockstream_cli.dataset.store import LocalStore

    source = FlakySource(failures=99)
    with pytest.raises(SourceError) as raised:
        local.run_local(LocalStore(tmp_path), DAY, Settings.resolve(), source=source)
    assert source.calls == 4
    assert exit_code_for(raised.value) == 1
    assert "symbols step failed 4 times" in str(raised.value) and "Bad Gateway" in str(raised.value)
    assert not (tmp_path / "runs").exists()


def test_symbols_step_bad_input_is_not_retried(tmp_path):
    from stockstream_cli.dataset.store import LocalStore

    source = FlakySource(failures=99, error=InputError("--from-file x.csv: no such file"))
    with pytest.raises(InputError):
        local.run_local(LocalStore(tmp_path), DAY, Settings.resolve(), source=source)
    assert source.calls == 1


def test_stop_during_the_symbols_step_is_an_interruption(tmp_path):
    from stockstream_cli.dataset.store import LocalStore

    stop = threading.Event()
    stop.set()
    with pytest.raises(Interrupted) as raised:
        local.run_local(LocalStore(tmp_path), DAY, Settings.resolve(), source=FlakySource(0), stop=stop)
    assert exit_code_for(raised.value) == 130
