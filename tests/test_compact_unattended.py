"""Compaction with nobody running it: safe beside a writer, whole after a crash, done by the pipeline itself.

A rewrite of a batch file between compact's read and its delete survives (the delete is a compare-and-delete
of the version read); a crash at any step, then a rerun, leaves the store an uninterrupted compaction leaves;
run-local (and the deployed state machine: tests/test_aws_compaction.py) compacts the ended months alone.
"""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest
from typer.testing import CliRunner

from pipeline_support import asx_codes, write_markit_csv
from stockstream_cli import layout
from stockstream_cli.cli import app
from stockstream_cli.read import compact
from stockstream_cli.read.aggregate import DataAggregator
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


def test_run_local_alone_leaves_the_ended_months_compacted(tmp_path, fake_yahoo):
    store = as_store(tmp_path / "data")
    codes = asx_codes(6)
    earlier = [D(2026, 7, 30), D(2026, 7, 31), D(2026, 8, 3)]
    for day in earlier:
        build_day(store, day, codes, batch_size=3, fetch_timestamp=f"{day.isoformat()}T08:00:00.000Z")
    held_before = DataAggregator(store).load()
    list_path = write_markit_csv(tmp_path / "asx.csv", codes)

    result = CliRunner().invoke(app, ["run-local", "--date", "2026-09-04", "--from-file", str(list_path),
                                      "--store", str(tmp_path / "data"), "--batch-size", "3", "--json"])

    assert result.exit_code == 0, result.output
    keys = store.list(layout.RAW_DATA_PREFIX)
    assert keys == ["raw-data/2026-09-04-batch-0.parquet", "raw-data/2026-09-04-batch-1.parquet",
                    "raw-data/compacted-2026-07.parquet", "raw-data/compacted-2026-08.parquet"]
    run = json.loads(store.get(layout.run_summary_key(D(2026, 9, 4))))
    compacted_rows = sum(pl.read_parquet(store.get(key)).height for key in keys if "compacted-" in key)
    assert run["compaction"] == {"months": ["2026-07", "2026-08"], "files": 6, "rows": compacted_rows, "kept": 0}
    everything = DataAggregator(store).load()
    assert everything.filter(pl.col("date") <= D(2026, 8, 3)).equals(held_before)
    assert set(everything.filter(pl.col("date") == D(2026, 9, 4))["symbol"]) == set(codes)
    assert "2026-07: 4 batch files -> raw-data/compacted-2026-07.parquet" in result.stderr

    again = CliRunner().invoke(app, ["rerun-failed", "--date", "2026-09-04", "--store", str(tmp_path / "data")])
    assert again.exit_code == 0, again.output
    assert store.list(layout.RAW_DATA_PREFIX) == keys  # nothing more to compact: the same files
