"""The store read without stockstream (dataset/views.py): DuckDB's views prices and actions over the stored
Parquet files give exactly `load`'s rows and the `actions` command's, all columns, exact values.

Stores: the ten-session play with a split, a consolidation and dividends, compacted as the pipeline leaves
it, plus a backfill file (actions_support.played_store); and a small one built file by file to hold every tie
the newest-wins rule decides (equal instants spelled apart, equal timestamps in two files or one, timestamps
that do not parse) beside files that are no data files. On S3 through DuckDB's httpfs against moto.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import duckdb
import duckdb_ext
import polars as pl
import pytest

import actions_support as play
from stockstream_cli.dataset import layout
from stockstream_cli.dataset.views import (ACTION_FILE_PATTERN, PRICE_FILE_PATTERN, actions_view, duckdb_views,
                                           prices_view)
from stockstream_cli.dataset.actions import action_schema, to_bytes
from stockstream_cli.dataset.aggregate import DataAggregator
from storefactory import bar, parquet_bytes, write_batch

PRICES = "SELECT * FROM prices ORDER BY symbol, date"
ACTIONS = "SELECT * FROM actions ORDER BY symbol, date, kind"


def connect(**settings):
    """An in-memory DuckDB that loads extensions only from the duckdb-ext-httpfs package (never the network)."""
    config = {"autoinstall_known_extensions": False, "autoload_known_extensions": False, **settings}
    return duckdb.connect(config=config)


def views(store_uri: str, connection=None, sql=duckdb_views):
    """A connection with the views over the store (`sql`: both, or prices_view / actions_view alone: DuckDB
    refuses a view over a folder with no file yet)."""
    connection = connection or connect()
    connection.execute(sql(store_uri))
    return connection


def test_prices_and_actions_are_loads_rows_on_the_played_store(played):
    con = views(str(played))
    prices, loaded = con.sql(PRICES).pl(), DataAggregator(played).load()
    assert prices.schema == loaded.schema and prices.equals(loaded) and loaded.height == 170
    fetches = DataAggregator(played).load_fetches()
    assert con.sql("SELECT count(*) FROM read_parquet(?)", params=[f"{played}/raw-data/*.parquet"]).fetchone()[0] == \
        fetches.height > loaded.height  # superseded copies are stored: the view drops them
    actions = con.sql(ACTIONS).pl()
    assert actions.equals(DataAggregator(played).load_actions()) and actions.height == play.ACTIONS


def test_a_relative_store_path_and_a_trailing_slash_work_alike(played, monkeypatch):
    monkeypatch.chdir(played.parent)
    relative, absolute = views("data/"), views(str(played))
    assert relative.sql(PRICES).pl().equals(absolute.sql(PRICES).pl())


def test_the_pandas_frame_of_the_readme_is_loads(played):
    con = views(str(played))
    frame = con.sql(PRICES).df()
    loaded = DataAggregator(played).load()
    assert list(frame.columns) == loaded.columns and len(frame) == loaded.height
    assert frame["close"].tolist() == loaded["close"].to_list()
    assert frame["fetch_timestamp"].tolist() == loaded["fetch_timestamp"].to_list()


DAY, NEXT = dt.date(2026, 1, 5), dt.date(2026, 1, 6)


def row(symbol, day, version, stamp, batch_number=0):
    return bar(symbol, day, version=version, fetch_timestamp=stamp, batch_number=batch_number)


@pytest.fixture
def ties(store):
    """Every case the rule decides, one per symbol (the winner's version in the comment)."""
    z, plus11 = "2026-01-05T08:00:00.000Z", "2026-01-05T19:00:00+11:00"  # one instant, two spellings
    write_batch(store, DAY, 0, [
        row("AAA", DAY, 0, z),            # equal timestamps in two files: the later key (NEXT's batch) wins
        row("BBB", DAY, 0, z),            # an instant spelled +11:00 later: equal instants, the text decides: 1
        row("CCC", DAY, 0, z),            # a timestamp that does not parse, later: the instant wins, 0
        row("DDD", DAY, 0, None),         # no timestamp in either: the later key wins
        row("EEE", DAY, 0, z), row("EEE", DAY, 1, z),  # twice in one file: the later row wins, 1
        row("FFF", DAY, 4, "2026-01-05T08:00:00.001Z"),  # a millisecond newer than everything else: 4
    ])
    write_batch(store, NEXT, 0, [row("AAA", DAY, 1, z), row("BBB", DAY, 1, plus11), row("CCC", DAY, 1, "yesterday"),
                                 row("DDD", DAY, 1, None), row("FFF", DAY, 5, z)])
    # backfill against batch, same day, same timestamp: "backfill" sorts before "batch", so the batch wins
    store.put(layout.backfill_data_key(NEXT, 0), parquet_bytes([row("GGG", DAY, 6, z, batch_number=7)]))
    write_batch(store, NEXT, 1, [row("GGG", DAY, 1, z, batch_number=1)])
    # a compacted month sorts after every day's file: it wins a tie
    store.put(layout.compacted_data_key("2026-01"), parquet_bytes([row("HHH", DAY, 2, z, batch_number=3)]))
    write_batch(store, NEXT, 2, [row("HHH", DAY, 1, z, batch_number=2)])
    # files under raw-data/ that are no data files: no reader takes their (newer) rows
    for stray in ("raw-data/notes.parquet", "raw-data/compacted-2026-13.parquet", "raw-data/2026-01-06-batch-x.parquet"):
        store.put(stray, parquet_bytes([row("AAA", DAY, 9, "2027-01-01T00:00:00.000Z")]))
    return store


def test_every_tie_is_decided_as_load_decides_it(ties):
    loaded = DataAggregator(ties).load()
    winners = dict(zip(loaded["symbol"], (round(close // 1000) for close in loaded["close"])))
    assert winners == {"AAA": 1, "BBB": 1, "CCC": 0, "DDD": 1, "EEE": 1, "FFF": 4, "GGG": 1, "HHH": 2}
    con = views(ties.uri, sql=prices_view)
    assert con.sql(PRICES).pl().equals(loaded)


def test_actions_ties_and_stray_files_as_the_actions_command(store):
    def actions(rows):
        return to_bytes(pl.DataFrame(rows, schema=action_schema(), orient="row"))

    z = "2026-01-05T08:00:00.000Z"
    store.put(layout.actions_key("AAA"), actions([("AAA", DAY, "dividend", 0.5, z), ("AAA", DAY, "dividend", 0.6, z),
                                                  ("AAA", DAY, "split", 2.0, "2026-01-05T19:00:00.001+11:00"),
                                                  ("AAA", DAY, "split", 3.0, z)]))
    store.put("actions/aaa.parquet", actions([("AAA", NEXT, "dividend", 9.0, z)]))  # not an actions file's key
    con = views(store.uri, sql=actions_view)
    shown = con.sql(ACTIONS).pl()
    assert shown.equals(DataAggregator(store).load_actions())
    assert shown.select("kind", "value").rows() == [("dividend", 0.6), ("split", 2.0)]


@pytest.mark.parametrize("key", [
    "raw-data/2026-01-05-batch-0.parquet", "raw-data/2026-01-05-batch-12.parquet",
    "raw-data/2026-01-05-backfill-3.parquet", "raw-data/compacted-2026-01.parquet", "raw-data/compacted-2026-12.parquet",
    "raw-data/compacted-2026-13.parquet", "raw-data/compacted-2026-00.parquet", "raw-data/notes.parquet",
    "raw-data/2026-01-05-batch-0.parquet.tmp", "raw-data/.2026-01-05-batch-0.parquet", "actions/BHP.parquet",
    "actions/14D.parquet", "actions/bhp.parquet", "actions/TOOLONGX.parquet", "raw-data/BHP.parquet",
])
def test_the_views_file_patterns_mirror_the_layouts_keys(key):
    is_data = any(parse(key) is not None for parse in (layout.parse_batch_data_key, layout.parse_backfill_data_key,
                                                       layout.parse_compacted_data_key))
    assert (re.search(PRICE_FILE_PATTERN, f"/store/{key}") is not None) == is_data
    assert (re.search(ACTION_FILE_PATTERN, f"/store/{key}") is not None) == (layout.parse_actions_key(key) is not None)


def httpfs_connection(endpoint: str):
    """DuckDB with the httpfs extension of the duckdb-ext-httpfs package (signed by DuckDB: loaded with its
    signature checked) and an S3 secret for the moto server."""
    con = connect(extension_directory=os.path.join(list(duckdb_ext.__path__)[0], "extensions"))
    con.execute("LOAD httpfs")
    con.execute(f"""CREATE SECRET moto (TYPE s3, KEY_ID 'testing', SECRET 'testing', REGION 'ap-southeast-2',
                    ENDPOINT '{endpoint.removeprefix("http://")}', URL_STYLE 'path', USE_SSL false)""")
    return con


def test_on_s3_through_httpfs_the_same_rows(played, s3_bucket, moto_endpoint):
    import boto3

    client = boto3.client("s3", region_name="ap-southeast-2")
    for path in played.rglob("*"):
        if path.is_file():
            client.put_object(Bucket=s3_bucket, Key=f"prefix/{path.relative_to(played).as_posix()}",
                              Body=path.read_bytes())
    client.put_object(Bucket=s3_bucket, Key="prefix/raw-data/notes.parquet",
                      Body=parquet_bytes([row("AAA", DAY, 9, "2027-01-01T00:00:00.000Z")]))
    con = views(f"s3://{s3_bucket}/prefix", httpfs_connection(moto_endpoint))
    assert con.sql(PRICES).pl().equals(DataAggregator(played).load())
    assert con.sql(ACTIONS).pl().equals(DataAggregator(played).load_actions())


# ---------------------------------------------------------------- Athena's text (views.ATHENA), run on DuckDB


def athena_views(store_uri: str, tables=("raw_prices", "raw_actions")):
    """DuckDB holding the Athena views exactly as deploy registers them (the SQL decoded from the Glue table
    inputs of aws/catalog.py), over the raw tables as Athena sees them: the files' columns and "$path", the
    row's file. The two Trino functions the text calls are DuckDB macros with the same meaning on the
    timestamps the store writes (regexp_like is regexp_matches; from_iso8601_timestamp reads ISO 8601 with its
    offset, and try() makes a failure null, as DuckDB's own TRY does)."""
    from stockstream_cli.aws import catalog

    con = connect()
    con.execute("CREATE MACRO regexp_like(text, pattern) AS regexp_matches(text, pattern)")
    con.execute("CREATE MACRO from_iso8601_timestamp(text) AS CAST(text AS TIMESTAMPTZ)")
    folders = {"raw_prices": "raw-data", "raw_actions": "actions"}
    root = store_uri.rstrip("/")
    for table in tables:
        con.execute(f"""CREATE VIEW {table} AS SELECT * EXCLUDE (filename), filename AS "$path"
                        FROM read_parquet('{root}/{folders[table]}/*.parquet', filename = true)""")
    for table in catalog.table_inputs("stockstream", "bucket"):
        if table["TableType"] == "VIRTUAL_VIEW" and f"raw_{table['Name']}" in tables:
            sql = catalog.view_definition(table["ViewOriginalText"])["originalSql"]
            con.execute(f"CREATE VIEW {table['Name']} AS {sql}")
    return con


def test_athenas_views_are_loads_rows_on_the_played_store(played):
    con = athena_views(str(played))
    assert con.sql(PRICES).pl().equals(DataAggregator(played).load())
    assert con.sql(ACTIONS).pl().equals(DataAggregator(played).load_actions())


def test_athenas_views_decide_every_tie_as_load_but_two_equal_rows_in_one_file(ties):
    """Athena has no row position within a file: EEE, twice in one file with one timestamp, may come out as
    either row (load takes the later); every other case is load's."""
    loaded = DataAggregator(ties).load()
    con = athena_views(ties.uri, tables=("raw_prices",))
    shown = con.sql(PRICES).pl()
    assert shown.filter(pl.col("symbol") != "EEE").equals(loaded.filter(pl.col("symbol") != "EEE"))
    [eee] = shown.filter(pl.col("symbol") == "EEE").rows(named=True)
    assert round(eee["close"] // 1000) in (0, 1) and shown.height == loaded.height


def test_no_file_the_store_writes_holds_a_key_twice(played):
    """Why the tie Athena cannot break never arises on a store stockstream wrote (batch, backfill, compacted
    and actions files alike)."""
    con = connect()
    for folder, key in (("raw-data", "symbol, date"), ("actions", "symbol, date, kind")):
        files, repeated = con.sql(f"""SELECT count(DISTINCT filename), count(*) FILTER (WHERE n > 1) FROM (
            SELECT filename, {key}, count(*) AS n FROM read_parquet('{played}/{folder}/*.parquet', filename = true)
            GROUP BY ALL)""").fetchone()
        assert files > 1 and repeated == 0


def test_the_readme_shows_the_packages_views():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    shown = readme.split("<!-- duckdb-views:", 1)[1].split("```sql\n", 1)[1].split("```", 1)[0]
    assert shown.strip() == duckdb_views("./stockstream-data").strip()
