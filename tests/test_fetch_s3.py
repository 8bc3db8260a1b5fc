"""fetch_batch into an S3 store (moto server), read back by polars with the store's storage options."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl

from stockstream_cli import schema
from helpers import fetch_batch
from stockstream_cli.settings import Settings
from stockstream_cli.dataset.store import open_store
from yahoo_fake import generated_bar

DAY = dt.date(2025, 4, 8)


def test_a_batch_written_to_s3_round_trips_through_polars(fake_yahoo, s3_bucket):
    store = open_store(f"s3://{s3_bucket}/pipeline")
    fake_yahoo.dividend("BHP", "2025-04-07", 0.8).fault("XYZ", "not_found")
    document = fetch_batch(store, DAY, 3, Settings.resolve(), symbols=["BHP", "CBA", "XYZ"])

    key = "raw-data/2025-04-08-batch-3.parquet"
    assert document["metadata"]["s3_key"] == key
    # the fixture's dividend (issue 12): kept in the symbol's actions file
    assert sorted(store.list()) == ["actions/BHP.parquet", "raw-data/2025-04-08-batch-3.parquet",
                                    "runs/2025-04-08/batch-3.json"]
    assert json.loads(store.get("runs/2025-04-08/batch-3.json")) == document

    rows = pl.read_parquet(store.polars_path(key), storage_options=store.polars_storage_options())
    assert store.polars_path(key) == f"s3://{s3_bucket}/pipeline/{key}"
    assert rows.schema == schema.polars_schema()
    assert rows.height == 6
    cba = rows.filter(pl.col("symbol") == "CBA").row(2, named=True)
    expected = generated_bar("CBA.AX", DAY)
    assert {k: cba[k] for k in ("date", "open", "high", "low", "close", "volume", "adjusted_close", "batch_number")} == {
        "date": DAY, **{k: expected[k] for k in ("open", "high", "low", "close", "volume")},
        "adjusted_close": expected["close"], "batch_number": 3,
    }
    bhp = rows.filter(pl.col("symbol") == "BHP")
    assert bhp.get_column("adjusted_close")[0] < bhp.get_column("close")[0]


def test_a_rerun_merges_into_the_s3_batch(fake_yahoo, s3_bucket):
    store = open_store(f"s3://{s3_bucket}")
    fake_yahoo.fault("XYZ", "timeout", times=4)
    first = fetch_batch(store, DAY, 0, Settings.resolve(), symbols=["BHP", "XYZ"])
    assert first["metadata"]["failure_reasons"] == {"XYZ": "timeout"}
    second = fetch_batch(store, DAY, 0, Settings.resolve(), symbols=["XYZ"])
    assert (second["metadata"]["symbols_fetched"], second["metadata"]["symbols_failed"]) == (2, [])
    rows = pl.read_parquet(store.polars_path("raw-data/2025-04-08-batch-0.parquet"),
                           storage_options=store.polars_storage_options())
    assert rows.group_by("symbol").len().sort("symbol").rows() == [("BHP", 3), ("XYZ", 3)]
