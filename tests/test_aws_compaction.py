"""The deployed pipeline compacts by itself: its CompactEarlierDays step, on moto, after the check.

The bucket already holds batch files of an earlier month and of earlier days of the execution's own month (as
daily executions leave them); one execution folds every day before its own into raw-data/compacted-YYYY-MM.parquet,
leaving its own day's batch files, with `load` returning what a store never compacted returns. A day another
process is writing (its day lock held) makes the step fold nothing and say who holds it; the run still succeeds,
and the next execution folds it.
"""

from __future__ import annotations

import datetime as dt
import json

from helpers import run_stockstream
from stockstream_cli.dataset import layout, locks
from stockstream_cli.dataset.aggregate import DataAggregator
from stockstream_cli.dataset.store import open_store
from storefactory import as_store, build_day
from test_aws_pipeline import CODES, DAY, _keys, _start, pipeline  # noqa: F401  (the deployed pipeline fixture)

EARLIER = [dt.date(2026, 10, 29), dt.date(2026, 10, 30), dt.date(2026, 11, 23), dt.date(2026, 11, 24)]
DAYS_BATCH_FILES = [layout.batch_data_key(DAY, n) for n in range(3)]


def build_earlier_days(*stores) -> None:
    for store in stores:
        for day in EARLIER:
            build_day(store, day, CODES, batch_size=3, fetch_timestamp=f"{day.isoformat()}T08:00:00.000Z")


def data_keys(pipeline) -> list[str]:  # noqa: F811
    return sorted(k for k in _keys(pipeline["bucket"]) if k.startswith(layout.RAW_DATA_PREFIX))


def never_compacted(store, reference):
    """The reference store with the execution's own day's batch files (which the step leaves) copied in."""
    for key in DAYS_BATCH_FILES:
        reference.put(key, store.get(key))
    return reference


def test_an_execution_folds_every_day_before_its_own(pipeline, tmp_path):  # noqa: F811
    store, reference = open_store(pipeline["store"]), as_store(tmp_path / "never-compacted")
    build_earlier_days(store, reference)

    execution = _start(pipeline, "daily-compacting", {"date": DAY.isoformat()})

    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    output = json.loads(execution["output"])
    assert output["compaction"] == {"months": ["2026-10", "2026-11"], "files": 12, "kept": 0, "skipped": None}
    assert "compactionError" not in output
    compacts = [e for name, e in pipeline["lambdas"].invocations if e.get("action") == "compact"]
    assert compacts == [{"action": "compact", "date": "2026-11-25"}]
    assert data_keys(pipeline) == DAYS_BATCH_FILES + ["raw-data/compacted-2026-10.parquet",
                                                     "raw-data/compacted-2026-11.parquet"]
    assert not [k for k in _keys(pipeline["bucket"]) if k.startswith(layout.LOCKS_PREFIX)]  # every lock given back
    assert DataAggregator(store).load().equals(DataAggregator(never_compacted(store, reference)).load())
    loaded = run_stockstream("load", "--store", pipeline["store"], "--symbols", "BBB", "--format", "json")
    assert loaded.returncode == 0, loaded.stderr
    assert [row["date"] for row in json.loads(loaded.stdout)][-1] == "2026-11-25"

    again = _start(pipeline, "daily-again", {"date": DAY.isoformat()})  # idempotent: nothing more to fold
    assert json.loads(again["output"])["compaction"] == {"months": [], "files": 0, "kept": 0, "skipped": None}
    assert data_keys(pipeline) == DAYS_BATCH_FILES + ["raw-data/compacted-2026-10.parquet",
                                                     "raw-data/compacted-2026-11.parquet"]


def test_a_day_being_written_is_left_for_the_next_execution(pipeline, tmp_path):  # noqa: F811
    store, reference = open_store(pipeline["store"]), as_store(tmp_path / "never-compacted")
    build_earlier_days(store, reference)
    before = data_keys(pipeline)

    with locks.day_lock(store, EARLIER[-1], "rerun-failed"):  # a local rerun of 2026-11-24 still running
        held = _start(pipeline, "daily-while-held", {"date": DAY.isoformat()})

    assert held["status"] == "SUCCEEDED", held.get("cause")
    compaction = json.loads(held["output"])["compaction"]
    assert {key: compaction[key] for key in ("months", "files", "kept")} == {"months": [], "files": 0, "kept": 0}
    assert compaction["skipped"].startswith("2026-11-24 is being written by rerun-failed (pid ")
    assert data_keys(pipeline) == sorted(before + DAYS_BATCH_FILES)  # October's too: nothing folded at all

    after = _start(pipeline, "daily-after", {"date": DAY.isoformat()})
    assert json.loads(after["output"])["compaction"] == {"months": ["2026-10", "2026-11"], "files": 12, "kept": 0,
                                                         "skipped": None}
    assert data_keys(pipeline) == DAYS_BATCH_FILES + ["raw-data/compacted-2026-10.parquet",
                                                     "raw-data/compacted-2026-11.parquet"]
    assert DataAggregator(store).load().equals(DataAggregator(never_compacted(store, reference)).load())
