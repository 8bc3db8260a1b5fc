"""Compaction with nobody running it: safe beside a writer, whole after a crash, done by the pipeline itself.

A rewrite of a batch file between compact's read and its delete survives (the delete is a compare-and-delete
of the version read); a crash at any step, then a rerun, leaves the store an uninterrupted compaction leaves;
run-local (and the deployed state machine: tests/test_aws_compaction.py) folds every day before its own alone,
under those days' locks: a day another process writes is left for the next run, so two compactors never
rewrite one month's file from different reads.
"""

from __future__ import annotations

import datetime as dt
import json
import os

import polars as pl
import pytest
from typer.testing import CliRunner

from asx_fake import asx_codes, write_markit_csv
from stockstream_cli.dataset import layout
from stockstream_cli.cli import app
from stockstream_cli.dataset import compact
from stockstream_cli.dataset.aggregate import DataAggregator
from storefactory import as_store, bar, build_day, write_batch

D = dt.date
TODAY = D(2026, 3, 10)
SYMBOLS = ["AAA", "BHP", "CBA", "ZZZ"]
DAYS = [D(2026, 1, 28), D(2026, 1, 29), D(2026, 1, 30), D(2026, 2, 2), D(2026, 2, 3), D(2026, 3, 2)]
REWRITTEN = layout.batch_data_key(D(2026, 1, 30), 0)


class Crash(Exception):
    """Stands for the process being killed at that point."""


def build(where):
    store = as_store(where)
    for day in DAYS:
        build_day(store, day, SYMBOLS, batch_size=2, fetch_timestamp=f"{day.isoformat()}T08:00:00.000Z")
    return store


def newer_rows() -> list[dict]:
    """What a rerun-failed of 2026-01-30 writes into batch 0: restated prices, fetched later."""
    return [bar(symbol, day, batch_number=0, version=7, fetch_timestamp="2026-03-09T01:00:00.000Z")
            for symbol in ("AAA", "BHP") for day in (D(2026, 1, 29), D(2026, 1, 30))]


def raw_data(store) -> dict[str, bytes]:
    return {key: store.get(key) for key in store.list(layout.RAW_DATA_PREFIX)}


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return build(tmp_path / "data")
    bucket = request.getfixturevalue("s3_bucket")
    return build(f"s3://{bucket}/prefix")


def test_a_batch_file_rewritten_between_the_read_and_the_delete_survives(store):
    def rerun_meanwhile(step: str, month: str) -> None:
        if (step, month) == ("written", "2026-01"):  # compact has read the month and written its file
            write_batch(store, D(2026, 1, 30), 0, newer_rows())

    result = compact.compact(store, today=TODAY, step=rerun_meanwhile)
    january = result["months"][0]
    assert (january["files"], january["deleted"], january["kept"]) == (6, 5, [REWRITTEN])
    keys = store.list(layout.RAW_DATA_PREFIX)
    assert REWRITTEN in keys and layout.batch_data_key(D(2026, 1, 29), 0) not in keys
    bhp = DataAggregator(store).load_symbols(["BHP"], start=D(2026, 1, 29), end=D(2026, 1, 30))
    assert bhp["close"].to_list() == [row["close"] for row in newer_rows() if row["symbol"] == "BHP"]

    again = compact.compact(store, months=["2026-01"], today=TODAY)  # the next run folds it in
    assert (again["months"][0]["files"], again["months"][0]["kept"]) == (1, [])
    assert REWRITTEN not in store.list(layout.RAW_DATA_PREFIX)
    assert DataAggregator(store).load_symbols(["BHP"], start=D(2026, 1, 29), end=D(2026, 1, 30)).equals(bhp)


def test_a_rewrite_just_before_a_delete_is_refused_by_the_store(store):
    """The narrowest window: after the second listing, before the delete itself."""
    versions = store.list_versions(layout.RAW_DATA_PREFIX)
    write_batch(store, D(2026, 1, 30), 0, newer_rows())
    assert store.delete_version(REWRITTEN, versions[REWRITTEN]) is False
    assert store.exists(REWRITTEN)
    assert pl.read_parquet(store.get(REWRITTEN))["close"].min() > 7000  # the new version, untouched
    assert store.delete_version(REWRITTEN, store.list_versions(layout.RAW_DATA_PREFIX)[REWRITTEN]) is True
    assert not store.exists(REWRITTEN)
    assert store.delete_version(REWRITTEN, versions[REWRITTEN]) is False  # gone: nothing to do


@pytest.mark.parametrize("crash_at", ["read", "written", "deleting", "mid-delete"])
def test_a_crash_at_any_step_loses_nothing_and_a_rerun_finishes_it(tmp_path, crash_at):
    reference = build(tmp_path / "reference")
    before = DataAggregator(reference).load()
    compact.compact(reference, today=TODAY)

    store = build(tmp_path / "data")
    if crash_at == "mid-delete":
        deletes = []
        real_delete = store.delete_version

        def delete_then_die(key, version):
            if len(deletes) == 2:
                raise Crash(key)
            deletes.append(key)
            return real_delete(key, version)

        store.delete_version = delete_then_die
        step = None
    else:
        def step(name: str, month: str) -> None:
            if name == crash_at and month == "2026-01":
                raise Crash(name)

    with pytest.raises(Crash):
        compact.compact(store, today=TODAY, step=step)
    assert DataAggregator(store).load().equals(before)  # whatever mix of files it is left with
    if crash_at in ("written", "deleting", "mid-delete"):
        assert store.exists(layout.compacted_data_key("2026-01"))

    store = as_store(tmp_path / "data")
    compact.compact(store, today=TODAY)
    assert sorted(raw_data(store)) == sorted(raw_data(reference))
    assert DataAggregator(store).load().equals(before)
    assert compact.compact(store, today=TODAY)["months"] == []  # idempotent: nothing left to do


def run_local(tmp_path, day: dt.date, list_path):
    return CliRunner().invoke(app, ["run-local", "--date", day.isoformat(), "--from-file", str(list_path),
                                    "--store", str(tmp_path / "data"), "--batch-size", "3", "--json"])


def keep_a_copy(store, reference, day: dt.date) -> None:
    """The day's batch files into a store nobody compacts: what the pipeline's store must read back as."""
    for key in store.list(layout.batch_data_prefix(day)):
        reference.put(key, store.get(key))


def batch_files(day: dt.date, count: int = 2) -> list[str]:
    return [layout.batch_data_key(day, n) for n in range(count)]


SEPTEMBER = [D(2026, 9, 1), D(2026, 9, 2), D(2026, 9, 3), D(2026, 9, 4)]


def test_run_local_day_after_day_leaves_one_file_a_month_and_the_last_days_batch_files(tmp_path, fake_yahoo):
    store, reference = as_store(tmp_path / "data"), as_store(tmp_path / "never-compacted")
    codes = asx_codes(6)
    for day in [D(2026, 7, 30), D(2026, 7, 31), D(2026, 8, 3)]:
        for where in (store, reference):
            build_day(where, day, codes, batch_size=3, fetch_timestamp=f"{day.isoformat()}T08:00:00.000Z")
    list_path = write_markit_csv(tmp_path / "asx.csv", codes)

    for number, day in enumerate(SEPTEMBER):
        result = run_local(tmp_path, day, list_path)
        assert result.exit_code == 0, result.output
        keep_a_copy(store, reference, day)
        months = ["compacted-2026-07", "compacted-2026-08"] + (["compacted-2026-09"] if number else [])
        assert store.list(layout.RAW_DATA_PREFIX) == batch_files(day) + [f"raw-data/{m}.parquet" for m in months]
        run = json.loads(store.get(layout.run_summary_key(day)))
        folded = ["2026-07", "2026-08"] if number == 0 else ["2026-09"]
        assert (run["compaction"]["months"], run["compaction"]["skipped"], run["compaction"]["kept"]) == (folded, None, 0)
        assert run["compaction"]["files"] == (6 if number == 0 else 2)  # the previous day's 2 batch files
        assert DataAggregator(store).load().equals(DataAggregator(reference).load())
    september = pl.read_parquet(store.get(layout.compacted_data_key("2026-09")))
    assert september["date"].max() == SEPTEMBER[-2]  # the run's own day is not folded yet
    assert "2026-09: 2 data files -> raw-data/compacted-2026-09.parquet" in result.stderr

    again = CliRunner().invoke(app, ["rerun-failed", "--date", "2026-09-04", "--store", str(tmp_path / "data")])
    assert again.exit_code == 0, again.output
    assert store.list(layout.RAW_DATA_PREFIX) == batch_files(SEPTEMBER[-1]) + [
        "raw-data/compacted-2026-07.parquet", "raw-data/compacted-2026-08.parquet",
        "raw-data/compacted-2026-09.parquet"]  # nothing more to fold: the same files


def test_a_day_another_process_writes_is_not_folded_and_the_next_run_folds_it(tmp_path, fake_yahoo):
    from stockstream_cli.dataset import locks

    store, reference = as_store(tmp_path / "data"), as_store(tmp_path / "never-compacted")
    codes = asx_codes(6)
    for day in SEPTEMBER[:2]:
        for where in (store, reference):
            build_day(where, day, codes, batch_size=3, fetch_timestamp=f"{day.isoformat()}T08:00:00.000Z")
    list_path = write_markit_csv(tmp_path / "asx.csv", codes)

    with locks.day_lock(store, SEPTEMBER[1], "rerun-failed"):  # a rerun of 2026-09-02 still running
        result = run_local(tmp_path, SEPTEMBER[2], list_path)
    assert result.exit_code == 0, result.output
    keep_a_copy(store, reference, SEPTEMBER[2])
    assert store.list(layout.RAW_DATA_PREFIX) == batch_files(SEPTEMBER[0]) + batch_files(SEPTEMBER[1]) + batch_files(
        SEPTEMBER[2])  # nothing folded, 2026-09-01 included: one compactor's days are folded together or not at all
    compaction = json.loads(store.get(layout.run_summary_key(SEPTEMBER[2])))["compaction"]
    assert {key: compaction[key] for key in ("months", "files", "rows", "kept")} == {
        "months": [], "files": 0, "rows": 0, "kept": 0}
    assert compaction["skipped"].startswith(f"2026-09-02 is being written by rerun-failed (pid {os.getpid()} on host ")
    assert f"compacting skipped: {compaction['skipped']}; the next run folds those days" in result.stderr
    assert json.loads(result.stdout)["symbols_fetched"] == 6  # the run itself is whole and succeeds
    assert not store.list(layout.LOCKS_PREFIX)  # the locks it took of 2026-09-01 were given back

    result = run_local(tmp_path, SEPTEMBER[3], list_path)
    assert result.exit_code == 0, result.output
    keep_a_copy(store, reference, SEPTEMBER[3])
    assert store.list(layout.RAW_DATA_PREFIX) == batch_files(SEPTEMBER[3]) + ["raw-data/compacted-2026-09.parquet"]
    compaction = json.loads(store.get(layout.run_summary_key(SEPTEMBER[3])))["compaction"]
    assert (compaction["months"], compaction["files"], compaction["skipped"]) == (["2026-09"], 6, None)
    assert DataAggregator(store).load().equals(DataAggregator(reference).load())


def test_of_two_compactors_of_one_month_the_second_folds_nothing_while_the_first_works(store):
    """run-local's step for 2026-03-10 has read the months when rerun-failed of 2026-03-03 reaches its own
    step: it would rewrite January and February from its own read; it is refused the locks and leaves them."""
    before = DataAggregator(store).load()
    second = {}

    def rerun_reaches_its_step(step: str, month: str) -> None:
        if (step, month) == ("read", "2026-01"):
            second.update(compact.compact_earlier_days(store, D(2026, 3, 3), command="rerun-failed"))

    first = compact.compact_earlier_days(store, TODAY, command="run-local", step=rerun_reaches_its_step)
    assert second["months"] == [] and second["skipped"].startswith("2026-01-28 is being written by run-local")
    assert (first["months"], first["files"], first["skipped"]) == (["2026-01", "2026-02", "2026-03"], 12, None)
    assert store.list(layout.RAW_DATA_PREFIX) == [layout.compacted_data_key(m) for m in ("2026-01", "2026-02", "2026-03")]
    assert DataAggregator(store).load().equals(before)
    assert not store.list(layout.LOCKS_PREFIX)


def test_the_compact_command_is_refused_while_a_day_it_would_fold_is_written(tmp_path):
    from stockstream_cli.dataset import locks

    store = build(tmp_path / "data")
    files = raw_data(store)
    with locks.day_lock(store, D(2026, 2, 3), "rerun-failed"):
        result = CliRunner().invoke(app, ["compact", "--store", str(tmp_path / "data"), "--month", "2026-02"])
    assert result.exit_code == 2, result.output
    assert "2026-02-03 is being written by rerun-failed" in result.stderr and "--wait" in result.stderr
    assert raw_data(store) == files  # nothing changed
