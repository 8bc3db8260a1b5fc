"""`stockstream status` and the status library: complete and partial days, the latest day, missing days."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from helpers import run_stockstream, runner
from storefactory import as_store, build_day, manifest, write_manifest
from stockstream_cli.cli import app
from stockstream_cli.errors import CorruptFileError, InputError
from stockstream_cli.dataset.status import batch_record, day_status, describe_days, store_days

WED, THU, FRI = dt.date(2026, 1, 7), dt.date(2026, 1, 8), dt.date(2026, 1, 9)
SYMBOLS = ["AAA", "BHP", "CBA", "NAB", "QQQ", "WBC", "XYZ"]  # batch size 2: batches 0-3
FAILURES = {"NAB": "not_found", "AAA": "rate_limited", "QQQ": "timeout"}


@pytest.fixture
def store(store):
    """Wednesday complete; Thursday with batch 3 missing and three symbols failed."""
    build_day(store, WED, SYMBOLS, batch_size=2, execution_time=42.0)
    build_day(store, THU, SYMBOLS, batch_size=2, failures=FAILURES, missing_batches=[3], execution_time=371.2)
    return store


def status(*args: str):
    return runner.invoke(app, ["status", *args])


# ------------------------------------------------------------------------------------------ the library


def test_a_complete_day(store):
    report = day_status(store, WED)
    assert report.complete
    assert (report.total_symbols, report.batches, report.batches_done, report.batches_missing) == (7, [0, 1, 2, 3], [0, 1, 2, 3], [])
    assert (report.symbols_fetched, report.failure_reasons) == (7, {})
    assert (report.run_outcome, report.run["execution_time"]) == ("succeeded", 42.0)


def test_a_partial_day(store):
    report = day_status(store, THU)
    assert not report.complete
    assert report.batches_done == [0, 1, 2] and report.batches_missing == [3]
    assert report.symbols_fetched == 3  # BHP, CBA, WBC; XYZ was in the missing batch
    assert report.failure_reasons == {"AAA": "rate_limited", "NAB": "not_found", "QQQ": "timeout"}
    assert report.failed_by_reason == {"not_found": ["NAB"], "rate_limited": ["AAA"], "timeout": ["QQQ"]}
    assert report.run_outcome == "partial"


def test_the_latest_day_is_the_default(store):
    assert store_days(store) == [WED, THU]
    assert day_status(store).date == THU


def test_a_day_with_only_a_symbols_list_has_every_batch_missing(store):
    build_day(store, FRI, SYMBOLS, batch_size=2, missing_batches=[0, 1, 2, 3], write_run=False)
    report = day_status(store)
    assert report.date == FRI
    assert (report.batches_done, report.batches_missing, report.run) == ([], [0, 1, 2, 3], None)
    assert not report.complete


def test_a_day_without_a_list_counts_from_its_run_records(store):
    build_day(store, FRI, ["BHP", "CBA"], batch_size=5, write_list=False, write_run=False)
    report = day_status(store, FRI)
    assert not report.has_symbols_list
    assert (report.total_symbols, report.batches, report.symbols_fetched, report.complete) == (2, [0], 2, True)


def test_an_unknown_day_names_the_days_the_store_has(store):
    with pytest.raises(InputError, match="has nothing for 2026-01-09; it has 2026-01-07, 2026-01-08"):
        day_status(store, FRI)


def test_an_empty_store_says_how_to_fill_it(tmp_path):
    with pytest.raises(InputError, match="holds no days yet"):
        day_status(as_store(tmp_path))


def test_many_days_are_summarised():
    days = [dt.date(2026, 1, 1) + dt.timedelta(days=n) for n in range(30)]
    assert describe_days(days) == (
        "it has 30 days from 2026-01-01 to 2026-01-30 (latest: 2026-01-30, 2026-01-29, 2026-01-28, 2026-01-27, 2026-01-26)"
    )


def test_a_manifest_without_reasons_counts_its_failures_as_errors():
    document = manifest(4, ["BHP", "CBA"], {"CBA": "timeout"}, day=WED)
    del document["metadata"]["failure_reasons"]
    record = batch_record(json.dumps(document).encode(), "runs/2026-01-07/batch-4.json")
    assert (record.batch_number, record.symbols_fetched, record.failure_reasons) == (4, 1, {"CBA": "error"})


@pytest.mark.parametrize("data", [b"not json", b"[1, 2]", b'{"statusCode": 200}', b'{"metadata": {"batch_number": "x"}}'])
def test_a_foreign_manifest_is_corrupt(data):
    with pytest.raises(CorruptFileError, match="runs/2026-01-07/batch-0.json"):
        batch_record(data, "runs/2026-01-07/batch-0.json")


# ------------------------------------------------------------------------------------------ the command


def test_a_complete_day_exits_0_with_a_readable_summary(store):
    result = status("--date", "2026-01-07", "--store", store.uri)
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert "Day 2026-01-07" in lines
    assert store.uri in "".join(result.stdout.split())
    assert "Symbols 7 in 4 batches" in lines
    assert "Batches 4 / 4 done" in lines
    assert "Fetched 7 of 7 symbols" in lines
    assert "Failed none" in lines
    assert "Run succeeded in 42.0 s" in lines
    assert "Status complete" in lines


def test_a_partial_day_exits_3_and_says_what_to_run(store):
    result = status("--store", store.uri)  # the latest day: Thursday
    assert result.exit_code == 3, result.output
    text = " ".join(result.stdout.split())
    assert "Day 2026-01-08" in text
    assert "Batches 3 / 4 done missing: batch 3" in text  # a batch number, never read as a count
    assert "Failed 3 symbols not_found 1 NAB rate_limited 1 AAA timeout 1 QQQ" in text
    assert "Run partial in 6 min 11 s, failed: batch 3" in text
    assert "rerun-failed --date 2026-01-08" in text


def test_lasting_failures_only_suggest_all(tmp_path):
    build_day(tmp_path, WED, ["BHP", "XYZ"], failures={"XYZ": "not_found"})
    result = status("--store", str(tmp_path))
    assert result.exit_code == 3
    assert "rerun-failed --date 2026-01-07 --all" in " ".join(result.stdout.split())


def test_json_is_one_document_for_machines(store):
    result = status("--store", store.uri, "--json")
    assert result.exit_code == 3
    assert json.loads(result.stdout) == {
        "date": "2026-01-08",
        "store": store.uri,
        "complete": False,
        "symbols_list": "symbols/2026-01-08-symbols.csv",
        "total_symbols": 7,
        "num_batches": 4,
        "batches_done": [0, 1, 2],
        "batches_missing": [3],
        "symbols_fetched": 3,
        "symbols_failed": ["AAA", "NAB", "QQQ"],
        "failure_reasons": {"AAA": "rate_limited", "NAB": "not_found", "QQQ": "timeout"},
        "failed_by_reason": {"not_found": ["NAB"], "rate_limited": ["AAA"], "timeout": ["QQQ"]},
        "run": {"outcome": "partial", "execution_time": 371.2, "batches_failed": [3], "key": "runs/2026-01-08/run.json"},
    }
    complete = status("--store", store.uri, "--json", "--date", "2026-01-07")
    assert complete.exit_code == 0 and json.loads(complete.stdout)["complete"] is True


def test_an_unknown_day_exits_2_naming_the_days_there_are(store):
    result = status("--store", store.uri, "--date", "2026-01-09")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"stockstream: error: the store {store.uri} has nothing for 2026-01-09; it has 2026-01-07, 2026-01-08\n"
    )


def test_a_bad_date_exits_2(store):
    result = status("--store", store.uri, "--date", "tomorrow")
    assert result.exit_code == 2 and "not a date" in result.stderr


def test_a_corrupt_manifest_exits_1_naming_it(store):
    (store.root / "runs/2026-01-08/batch-1.json").write_text("<html>")
    result = status("--store", store.uri)
    assert result.exit_code == 1
    assert "runs/2026-01-08/batch-1.json" in result.stderr and result.stderr.count("\n") == 1


def test_an_s3_store(s3_bucket):
    remote = as_store(f"s3://{s3_bucket}/prod")
    build_day(remote, THU, SYMBOLS, batch_size=3, failures={"BHP": "no_data"})
    write_manifest(remote, THU, manifest(2, ["XYZ"], day=THU))
    result = status("--store", remote.uri, "--json")
    assert result.exit_code == 3
    document = json.loads(result.stdout)
    assert (document["date"], document["batches_done"], document["failure_reasons"]) == ("2026-01-08", [0, 1, 2], {"BHP": "no_data"})


def test_a_real_process(store):
    result = run_stockstream("status", "--store", store.uri, "--json")
    assert result.returncode == 3, result.stderr
    assert json.loads(result.stdout)["batches_missing"] == [3]
    assert run_stockstream("status", "--store", store.uri, "--date", "2026-01-07").returncode == 0


def test_what_run_local_adds_to_run_json_is_shown(store):
    from storefactory import write_run_summary

    run = dict(day_status(store, THU).run, command="rerun-failed", started_at="2026-01-08T09:00:00.000Z",
               finished_at="2026-01-08T09:06:11.200Z", interrupted=False, batch_errors={"3": "store write failed"})
    write_run_summary(store, THU, run)
    document = json.loads(status("--store", store.uri, "--json").stdout)["run"]
    assert (document["command"], document["finished_at"], document["batch_errors"]) == (
        "rerun-failed", "2026-01-08T09:06:11.200Z", {"3": "store write failed"})
    text = " ".join(status("--store", store.uri).stdout.split())
    assert "Run partial in 6 min 11 s, failed: batch 3 (rerun-failed, finished 2026-01-08T09:06:11.200Z)" in text
    write_run_summary(store, THU, dict(run, interrupted=True))
    assert day_status(store, THU).run_outcome == "interrupted"
    write_run_summary(store, THU, dict(run, symbols_fetched=0))
    assert day_status(store, THU).run_outcome == "failed"


def test_several_missing_batches_are_named_as_batches(tmp_path):
    build_day(tmp_path, FRI, SYMBOLS, batch_size=2, missing_batches=[0, 2], write_run=False)
    text = " ".join(status("--store", str(tmp_path)).stdout.split())
    assert "missing: batches 0, 2" in text


def test_after_a_rerun_status_shows_the_days_run_and_the_rerun_apart(store):
    from storefactory import write_run_summary

    from stockstream_cli.dataset.summary import keep_day_run

    day_run = dict(day_status(store, THU).run, command="run-local", finished_at="2026-01-08T09:06:11.200Z")
    rerun = dict(day_run, command="rerun-failed", execution_time=2.2, finished_at="2026-01-08T10:00:02.000Z")
    write_run_summary(store, THU, keep_day_run(rerun, day_run))
    text = " ".join(status("--store", store.uri).stdout.split())
    assert ("Run partial, failed: batch 3; the day's run took 6 min 11 s (run-local, finished "
            "2026-01-08T09:06:11.200Z), the last rerun-failed 2.2 s (finished 2026-01-08T10:00:02.000Z)") in text
    document = json.loads(status("--store", store.uri, "--json").stdout)["run"]
    assert (document["execution_time"], document["day_run"]["execution_time"]) == (2.2, 371.2)
    # a second rerun carries the day's run on, not the first rerun's
    again = keep_day_run(dict(rerun, execution_time=1.0), day_status(store, THU).run)
    assert again["day_run"]["command"] == "run-local" and again["day_run"]["execution_time"] == 371.2
