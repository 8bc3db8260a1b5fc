"""`stockstream query SQL` (dataset/query.py): polars' SQL over the tables prices and actions.

The store is the ten-session play with a split, a consolidation and dividends, compacted as the pipeline
leaves it, plus a backfill file (actions_support.played_store): 249 stored fetches for 170 (symbol, date)
keys. `prices` must be `load`'s rows and `actions` the `actions` command's, row for row.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil

import polars as pl
import pytest

import actions_support as play
from helpers import run_stockstream, runner
from stockstream_cli.dataset import layout
from stockstream_cli.cli import app
from stockstream_cli.dataset.query import prices_table
from stockstream_cli.dataset.aggregate import DataAggregator
from stockstream_cli.dataset.store import LocalStore

EXAMPLE = "SELECT symbol, max(close) FROM prices WHERE date >= '2026-01-01' GROUP BY symbol"


def invoke(*args):
    return runner.invoke(app, [str(arg) for arg in args])


def test_the_store_has_restated_history_in_every_kind_of_data_file(played):
    fetches = DataAggregator(played).load_fetches()
    keys = LocalStore(played).list(layout.RAW_DATA_PREFIX)
    assert any(layout.parse_compacted_data_key(k) for k in keys) and any(layout.parse_backfill_data_key(k) for k in keys)
    assert any(layout.parse_batch_data_key(k) for k in keys)
    assert fetches.height > fetches.select("symbol", "date").n_unique()  # superseded rows are stored beside the newest


@pytest.mark.parametrize("form", ["csv", "json"])
def test_prices_is_exactly_loads_rows(played, form):
    mine = invoke("query", "SELECT * FROM prices", "--format", form, "--store", played)
    theirs = invoke("load", "--format", form, "--store", played)
    assert mine.exit_code == theirs.exit_code == 0, mine.output
    assert mine.stdout == theirs.stdout
    rows = json.loads(mine.stdout) if form == "json" else mine.stdout.splitlines()[1:]
    assert len(rows) == 170


def test_prices_as_parquet_has_loads_schema_and_values(played, tmp_path):
    result = invoke("query", "SELECT * FROM prices ORDER BY symbol, date", "-o", tmp_path / "p.parquet", "--store", played)
    assert result.exit_code == 0, result.output
    loaded = DataAggregator(played).load()
    assert pl.read_parquet(tmp_path / "p.parquet").equals(loaded) and loaded.height == 170


def test_actions_is_exactly_the_actions_commands_rows(played):
    mine = invoke("query", "SELECT * FROM actions", "--format", "csv", "--store", played)
    theirs = invoke("actions", "--format", "csv", "--store", played)
    assert mine.exit_code == 0, mine.output
    assert mine.stdout == theirs.stdout and mine.stdout.count("\n") == play.ACTIONS + 1


def test_the_helps_example_answers_what_load_gives(played):
    result = invoke("query", EXAMPLE + " ORDER BY symbol", "--format", "json", "--store", played)
    assert result.exit_code == 0, result.output
    loaded = DataAggregator(played).load()
    expected = loaded.group_by("symbol").agg(pl.col("close").max()).sort("symbol")
    assert [(r["symbol"], r["close"]) for r in json.loads(result.stdout)] == expected.rows()
    assert EXAMPLE in " ".join(invoke("query", "--help").output.split())


def test_a_split_seen_through_sql_is_the_restated_history(played):
    """AAA's 2-for-1 split on 2026-11-13: the rows before it, in the new units, joined with the split itself."""
    sql = ("SELECT p.date, p.close, a.value FROM prices p JOIN actions a ON p.symbol = a.symbol "
           "WHERE p.symbol = 'AAA' AND a.kind = 'split' AND p.date < a.date ORDER BY p.date")
    frame = DataAggregator(played).query(sql)
    loaded = DataAggregator(played).load_symbols(["AAA"], end=dt.date(2026, 11, 12))
    assert frame["close"].to_list() == loaded["close"].to_list() and frame.height == loaded.height > 10
    assert set(frame["value"]) == {2.0}


def test_a_symbol_and_date_filter_reaches_the_parquet_reader(played):
    """Pushed below the newest-wins rule (where it cannot change the winner) into the scan, which then skips
    row groups by their statistics; the answer is load's."""
    store = LocalStore(played)
    keys = DataAggregator(store).data_files()
    context = pl.SQLContext(prices=prices_table(store, keys))
    query = context.execute("SELECT * FROM prices WHERE symbol = 'EEE' AND date >= '2026-11-10' AND close > 0")
    plan = query.explain()
    scan = plan[plan.index("Parquet SCAN"):]
    assert "SELECTION" in scan and '"EEE"' in scan and "close" not in scan.split("SELECTION")[1].split("\n")[0]
    assert query.collect().equals(DataAggregator(store).load_symbols(["EEE"], start="2026-11-10"))


@pytest.mark.parametrize("sql, says", [
    ("SELEC * FROM prices", "sql parser error"),
    ("SELECT closee FROM prices", 'unable to find column "closee"'),
    ("SELECT * FROM trades", "relation 'trades' was not found"),
    ("SELECT CAST(symbol AS INT) FROM prices", "conversion from `str` to `i32` failed"),
    ("SELECT 1; SELECT 2", "one (and only one) statement"),
    ("  ", "the SQL query is empty"),
])
def test_sql_the_engine_refuses_is_exit_2_with_its_message_on_one_line(played, sql, says):
    result = run_stockstream("query", sql, "--store", str(played))
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and says in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_corrupt_data_file_is_named_exit_1(played, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(played, copy)
    (copy / "raw-data" / "2026-11-21-batch-0.parquet").write_bytes(b"not parquet")
    result = invoke("query", "SELECT count(*) FROM prices", "--store", copy)
    assert result.exit_code == 1 and "raw-data/2026-11-21-batch-0.parquet" in result.stderr


def test_a_list_column_cannot_be_csv_but_json_holds_it(played):
    sql = "SELECT symbol, array_agg(date) AS dates FROM actions GROUP BY symbol ORDER BY symbol"
    refused = invoke("query", sql, "--format", "csv", "--store", played)
    assert refused.exit_code == 2 and "'dates'" in refused.stderr and "--format json" in refused.stderr
    shown = invoke("query", sql, "--format", "json", "--store", played)
    assert json.loads(shown.stdout)[0] == {"symbol": "AAA", "dates": ["2026-11-11", "2026-11-13", "2026-11-18"]}


def test_an_empty_store_has_empty_tables(tmp_path):
    (tmp_path / "data").mkdir()
    sql = "SELECT count(*) AS n FROM prices UNION ALL SELECT count(*) AS n FROM actions"
    result = invoke("query", sql, "--format", "csv", "--store", tmp_path / "data")
    assert result.exit_code == 0, result.output
    assert result.stdout == "n\n0\n0\n"


def test_on_s3_the_same_answers(played, s3_bucket):
    import boto3

    client = boto3.client("s3", region_name="ap-southeast-2")
    for path in played.rglob("*"):
        if path.is_file():
            client.put_object(Bucket=s3_bucket, Key=f"prefix/{path.relative_to(played).as_posix()}",
                              Body=path.read_bytes())
    uri = f"s3://{s3_bucket}/prefix"
    for sql, reader in (("SELECT * FROM prices", "load"), ("SELECT * FROM actions", "actions")):
        mine = invoke("query", sql, "--format", "csv", "--store", uri)
        assert mine.exit_code == 0, mine.output
        assert mine.stdout == invoke(reader, "--format", "csv", "--store", played).stdout
    filtered = DataAggregator(uri).query("SELECT * FROM prices WHERE symbol IN ('AAA', 'JJJ') ORDER BY symbol, date")
    assert filtered.equals(DataAggregator(played).load_symbols(["AAA", "JJJ"]))
    parquet = pl.read_parquet(io.BytesIO(client.get_object(Bucket=s3_bucket, Key="prefix/actions/AAA.parquet")["Body"].read()))
    assert DataAggregator(uri).query("SELECT * FROM actions WHERE symbol = 'AAA'").equals(parquet)
