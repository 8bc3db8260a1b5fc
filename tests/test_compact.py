"""`stockstream compact`: a month of batch files in one sorted file; reading back gives the same rows."""

from __future__ import annotations

import datetime as dt
import io
import json

import polars as pl
import pytest

from helpers import runner
from stockstream_cli.dataset import compact
from stockstream_cli.dataset import layout
from stockstream_cli.dataset.aggregate import DataAggregator
from stockstream_cli.cli import app
from stockstream_cli.errors import InputError
from storefactory import as_store, bar, build_day, write_batch

D = dt.date
TODAY = D(2026, 3, 10)
SYMBOLS = ["AAA", "BHP", "CBA", "ZZZ"]
DAYS = [D(2026, 1, 28), D(2026, 1, 29), D(2026, 1, 30), D(2026, 2, 2), D(2026, 2, 3), D(2026, 3, 2)]


def build(where) -> "Store":
    store = as_store(where)
    for day in DAYS:  # batches of 2: each day's lookback window overlaps the days before
        build_day(store, day, SYMBOLS, batch_size=2, fetch_timestamp=f"{day.isoformat()}T08:00:00.000Z")
    return store


def everything(store) -> pl.DataFrame:
    return DataAggregator(store).load()


def test_plan_takes_every_month_before_the_current_one_or_the_months_asked():
    keys = [layout.batch_data_key(day, n) for day in DAYS for n in (0, 1)] + ["raw-data/notes.txt"]
    assert [(p.month, len(p.batch_keys)) for p in compact.plan(keys, today=TODAY)] == [("2026-01", 6), ("2026-02", 4)]
    assert [p.month for p in compact.plan(keys, months=["2026-03"], today=TODAY)] == ["2026-03"]
    assert compact.plan(keys, months=["2025-12"], today=TODAY) == []
    with pytest.raises(InputError, match="^month '2026-13' is not a month"):
        compact.plan(keys, months=["2026-13"], today=TODAY)


def test_the_pipelines_plan_takes_every_day_before_the_runs_its_own_month_included():
    keys = ([layout.batch_data_key(day, n) for day in DAYS for n in (0, 1)] + [layout.compacted_data_key("2026-03")]
            + [layout.batch_data_key(D(2026, 3, 3), 0), layout.batch_data_key(D(2026, 3, 4), 0)])
    plans = compact.plan(keys, before=D(2026, 3, 4))
    assert [(p.month, len(p.batch_keys), p.compacted) for p in plans] == [
        ("2026-01", 6, False), ("2026-02", 4, False), ("2026-03", 3, True)]
    assert layout.batch_data_key(D(2026, 3, 4), 0) not in plans[-1].batch_keys  # the run's own day stays
    assert compact.folded_days(plans) == set(DAYS) | {D(2026, 3, 3)}
    only = compact.plan(keys, before=D(2026, 3, 4), days={D(2026, 2, 3), D(2026, 3, 3)})  # the locked days
    assert [(p.month, p.batch_keys) for p in only] == [
        ("2026-02", (layout.batch_data_key(D(2026, 2, 3), 0), layout.batch_data_key(D(2026, 2, 3), 1))),
        ("2026-03", (layout.batch_data_key(D(2026, 3, 3), 0),))]


def test_compaction_keeps_every_row_and_deletes_the_merged_batch_files(tmp_path):
    store = build(tmp_path / "data")
    before = everything(store)
    result = compact.compact(store, today=TODAY)
    assert [(m["month"], m["files"]) for m in result["months"]] == [("2026-01", 6), ("2026-02", 4)]
    data_keys = store.list(layout.RAW_DATA_PREFIX)
    assert data_keys == ["raw-data/2026-03-02-batch-0.parquet", "raw-data/2026-03-02-batch-1.parquet",
                         "raw-data/compacted-2026-01.parquet", "raw-data/compacted-2026-02.parquet"]
    assert everything(store).equals(before)
    assert DataAggregator(store).load_symbols(["BHP"]).equals(before.filter(pl.col("symbol") == "BHP"))
    assert store.exists(layout.batch_manifest_key(DAYS[0], 0))  # runs/ stays: status still knows each day


def test_the_compacted_file_is_sorted_one_row_per_symbol_and_date_with_statistics(tmp_path):
    import pyarrow.parquet as pq

    store = build(tmp_path / "data")
    compact.compact(store, months=["2026-01"], today=TODAY)
    data = store.get(layout.compacted_data_key("2026-01"))
    rows = pl.read_parquet(io.BytesIO(data))
    assert rows.equals(rows.sort("symbol", "date"))
    assert rows.select("symbol", "date").is_duplicated().sum() == 0
    # the newest fetch of each (symbol, date) of the month's files
    assert rows.filter((pl.col("symbol") == "BHP") & (pl.col("date") == D(2026, 1, 28)))["fetch_timestamp"].to_list() \
        == ["2026-01-30T08:00:00.000Z"]
    statistics = pq.ParquetFile(io.BytesIO(data)).metadata.row_group(0).column(0).statistics
    assert statistics.has_min_max and statistics.min == "AAA"


def test_a_day_rerun_after_its_month_was_compacted_wins_where_newer_and_is_folded_in_later(tmp_path):
    store = build(tmp_path / "data")
    compact.compact(store, today=TODAY)
    rerun_day = D(2026, 1, 30)
    newer = [bar("BHP", day, batch_number=0, version=7, fetch_timestamp="2026-03-09T01:00:00.000Z")
             for day in (D(2026, 1, 29), D(2026, 1, 30))]
    write_batch(store, rerun_day, 0, newer)
    bhp = DataAggregator(store).load_symbols(["BHP"])
    changed = bhp.filter(pl.col("close") > 7000)["date"].to_list()
    assert changed == [D(2026, 1, 29), D(2026, 1, 30)]
    before = everything(store)
    result = compact.compact(store, months=["2026-01"], today=TODAY)
    assert result["months"][0]["files"] == 1
    assert layout.batch_data_key(rerun_day, 0) not in store.list(layout.RAW_DATA_PREFIX)
    assert everything(store).equals(before)


def test_a_query_after_the_month_skips_its_compacted_file(tmp_path):
    store = build(tmp_path / "data")
    compact.compact(store, today=TODAY)
    assert DataAggregator(store).data_files(start=D(2026, 3, 1)) == [
        "raw-data/2026-03-02-batch-0.parquet", "raw-data/2026-03-02-batch-1.parquet"]


def test_cli_dry_run_changes_nothing_and_json_reports_the_months(tmp_path):
    store = build(tmp_path / "data")
    before = store.list("")
    result = runner.invoke(app, ["compact", "--store", str(tmp_path / "data"), "--dry-run", "--json",
                                      "--month", "2026-02"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["dry_run"] and [(m["month"], m["files"]) for m in document["months"]] == [("2026-02", 4)]
    assert store.list("") == before
    bad = runner.invoke(app, ["compact", "--store", str(tmp_path / "data"), "--month", "Jan"])
    assert bad.exit_code == 2 and "--month 'Jan' is not a month" in bad.output


def test_cli_compacts_and_says_what(tmp_path):
    build(tmp_path / "data")
    result = runner.invoke(app, ["compact", "--store", str(tmp_path / "data"), "--month", "2026-01"])
    assert result.exit_code == 0, result.output
    assert "2026-01: compacted 6 batch files into raw-data/compacted-2026-01.parquet" in result.stdout
    again = runner.invoke(app, ["compact", "--store", str(tmp_path / "data"), "--month", "2026-01"])
    assert again.exit_code == 0 and "nothing to compact" in again.stdout


def test_compaction_on_s3(s3_bucket):
    store = build(f"s3://{s3_bucket}/prefix")
    before = everything(store)
    compact.compact(store, today=TODAY)
    assert "raw-data/compacted-2026-01.parquet" in store.list(layout.RAW_DATA_PREFIX)
    assert everything(store).equals(before)


def test_a_backfill_chunk_is_folded_into_its_keys_month_superseded_rows_dropped_and_recorded(tmp_path):
    store = build(tmp_path / "data")
    chunk_day = D(2026, 2, 3)  # backfill --end 2026-02-03: its chunk's key day
    history = [D(2025, 6, 2), D(2025, 6, 3)]
    # the chunk: BHP's old history, and a stale copy of a day the daily runs fetched later (2026-01-29)
    stale = bar("BHP", D(2026, 1, 29), batch_number=0, version=5, fetch_timestamp="2026-01-29T01:00:00.000Z")
    old = [bar("BHP", day, batch_number=0, version=3, fetch_timestamp="2026-02-03T09:00:00.000Z") for day in history]
    from storefactory import parquet_bytes

    store.put(layout.backfill_data_key(chunk_day, 0), parquet_bytes(old + [stale]))
    before = everything(store)
    stored_rows = sum(pl.read_parquet(store.get(k)).height for k in store.list(layout.RAW_DATA_PREFIX))

    result = compact.compact(store, today=TODAY)

    assert [(m["month"], m["files"]) for m in result["months"]] == [("2026-01", 6), ("2026-02", 5)]
    keys = store.list(layout.RAW_DATA_PREFIX)
    assert layout.backfill_data_key(chunk_day, 0) not in keys
    february = pl.read_parquet(store.get(layout.compacted_data_key("2026-02")))
    assert february.filter(pl.col("symbol") == "BHP")["date"].to_list()[:2] == history  # folded by its key's day
    assert compact.folded_backfill(store, layout.compacted_data_key("2026-02")) == {"2026-02-03": [0]}
    assert compact.folded_batches(store, layout.compacted_data_key("2026-02")) == {"2026-02-02": [0, 1],
                                                                                   "2026-02-03": [0, 1]}
    assert compact.folded_backfill(store, layout.compacted_data_key("2026-01")) == {}
    assert everything(store).equals(before)  # the stale copy lost to the daily run's newer fetch, as before
    # the stale copy is gone: February's file keeps the run of 2026-02-02's newer fetch of that day alone
    assert february.filter((pl.col("symbol") == "BHP") & (pl.col("date") == D(2026, 1, 29)))[
        "fetch_timestamp"].to_list() == ["2026-02-02T08:00:00.000Z"]
    after_rows = sum(pl.read_parquet(store.get(k)).height for k in store.list(layout.RAW_DATA_PREFIX))
    assert after_rows < stored_rows


def test_the_pipelines_plan_folds_backfill_chunks_by_their_keys_day():
    keys = [layout.batch_data_key(D(2026, 3, 3), 0), layout.backfill_data_key(D(2026, 3, 3), 0),
            layout.backfill_data_key(D(2026, 3, 4), 1)]
    plans = compact.plan(keys, before=D(2026, 3, 4))
    assert [(p.month, p.batch_keys) for p in plans] == [
        ("2026-03", (layout.backfill_data_key(D(2026, 3, 3), 0), layout.batch_data_key(D(2026, 3, 3), 0)))]
    assert compact.folded_days(plans) == {D(2026, 3, 3)}
