"""The deployed pipeline compacts the ended months itself: its CompactClosedMonths step, on moto, after the check.

The bucket already holds an earlier month of batch files (as a year of daily executions leaves it); one
execution later that month is folded into raw-data/compacted-YYYY-MM.parquet and its batch files are gone,
with `load` returning the same rows.
"""

from __future__ import annotations

import datetime as dt
import json

from helpers import run_stockstream
from stockstream_cli import layout
from stockstream_cli.read.aggregate import DataAggregator
from stockstream_cli.store import open_store
from storefactory import build_day
from test_aws_pipeline import CODES, DAY, _keys, _start, pipeline  # noqa: F401  (the deployed pipeline fixture)

OCTOBER = [dt.date(2026, 10, 29), dt.date(2026, 10, 30)]


def test_an_execution_compacts_the_months_before_its_own(pipeline):  # noqa: F811
    store = open_store(pipeline["store"])
    for day in OCTOBER:
        build_day(store, day, CODES, batch_size=3, fetch_timestamp=f"{day.isoformat()}T08:00:00.000Z")
    october = DataAggregator(store).load(end=dt.date(2026, 10, 31))

    execution = _start(pipeline, "daily-compacting", {"date": DAY.isoformat()})

    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    output = json.loads(execution["output"])
    assert output["compaction"] == {"months": ["2026-10"], "files": 6, "kept": 0}
    assert "compactionError" not in output
    compacts = [e for name, e in pipeline["lambdas"].invocations if e.get("action") == "compact"]
    assert compacts == [{"action": "compact", "date": "2026-11-25"}]
    data_keys = sorted(k for k in _keys(pipeline["bucket"]) if k.startswith(layout.RAW_DATA_PREFIX))
    assert data_keys == ["raw-data/2026-11-25-batch-0.parquet", "raw-data/2026-11-25-batch-1.parquet",
                         "raw-data/2026-11-25-batch-2.parquet", "raw-data/compacted-2026-10.parquet"]
    assert DataAggregator(store).load(end=dt.date(2026, 10, 31)).equals(october)
    loaded = run_stockstream("load", "--store", pipeline["store"], "--symbols", "BBB", "--format", "json")
    assert loaded.returncode == 0, loaded.stderr
    assert [row["date"] for row in json.loads(loaded.stdout)][-1] == "2026-11-25"

    again = _start(pipeline, "daily-again", {"date": DAY.isoformat()})  # idempotent: nothing more to fold
    assert json.loads(again["output"])["compaction"] == {"months": [], "files": 0, "kept": 0}
