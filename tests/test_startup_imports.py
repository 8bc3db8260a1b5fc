"""A start-up that matches the work: `stockstream load` of a local compacted store imports only what it needs.

Run as a real process; its sys.modules is read when the command has finished. How long it takes is measured
in benchmarks/ (startup_bench.py), never here.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest

from stockstream_cli.dataset.compact import compact
from storefactory import as_store, build_day

# what a local read never needs: AWS, pandas, the trading calendar, Yahoo, pydantic (Typer's option coercion),
# rich (polars renders the table)
NOT_FOR_A_LOCAL_LOAD = ("boto3", "botocore", "pandas", "pyarrow", "exchange_calendars", "yfinance", "curl_cffi",
                        "pydantic", "numpy", "requests", "rich")

PROBE = """
import json, runpy, sys
sys.argv = ["stockstream", *json.loads(sys.argv[1])]
try:
    runpy.run_module("stockstream_cli", run_name="__main__")
except SystemExit as done:
    code = done.code
else:
    code = 0
sys.stderr.write("\\nMODULES " + json.dumps({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def loaded_modules(*args: str, env_cache) -> tuple[int, set[str]]:
    import os

    run = subprocess.run([sys.executable, "-c", PROBE, json.dumps(list(args))], capture_output=True, text=True,
                         env={**os.environ, "STOCKSTREAM_CACHE_DIR": str(env_cache)}, timeout=120)
    document = json.loads(run.stderr.rsplit("\nMODULES ", 1)[1])
    return document["code"], set(document["modules"])


@pytest.fixture
def compacted_store(tmp_path):
    store = as_store(tmp_path / "data")
    for day in (dt.date(2026, 1, 29), dt.date(2026, 1, 30), dt.date(2026, 2, 2)):
        build_day(store, day, ["AAA", "BHP", "CBA", "ZZZ"], batch_size=2)
    compact(store, today=dt.date(2026, 3, 1))
    return tmp_path / "data"


@pytest.mark.parametrize("output", [["--format", "csv"], []])
def test_a_local_load_imports_no_heavy_module_it_does_not_use(compacted_store, tmp_path, output):
    code, modules = loaded_modules("load", "--symbols", "BHP", "CBA", "--store", str(compacted_store), *output,
                                   env_cache=tmp_path / "cache")
    assert code in (0, None)
    assert "polars" in modules  # the reader itself
    assert modules.isdisjoint(NOT_FOR_A_LOCAL_LOAD), sorted(modules & set(NOT_FOR_A_LOCAL_LOAD))


def test_a_bad_choice_is_still_refused_without_pydantic(compacted_store, tmp_path):
    from helpers import run_stockstream

    result = run_stockstream("load", "--format", "xml", "--store", str(compacted_store))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "stockstream: error: --format 'xml' is not one of 'table', 'csv', 'json', 'parquet' (see `stockstream load --help`)"]
