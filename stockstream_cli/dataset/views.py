"""The store as SQL views another engine can read: `prices` gives exactly `load`'s rows and `actions` exactly
the `actions` command's, straight from the stored Parquet files, with no stockstream installed.

    import duckdb
    con = duckdb.connect()
    con.execute(duckdb_views("./stockstream-data"))    # or "s3://bucket/prefix" (DuckDB's httpfs)
    con.sql("SELECT * FROM prices WHERE symbol = 'BHP' ORDER BY date")

The rules are those of newest.py and actions.py, restated in SQL:
- Which files: the data files' keys (layout.py) and nothing else under raw-data/, so a stray file (or an
  actions file, which has its own folder) never mixes in; for actions, actions/SYMBOL.parquet.
- Which row wins, per (symbol, date) (per (symbol, date, kind) for actions): the newest fetch_timestamp as an
  instant (ISO 8601 with an explicit offset; any other text sorts before every instant, as
  newest.fetch_moment leaves it null), then the timestamp's text, then the later file in key order, then
  the later row in its file: the order in which `load` concatenates the files before its stable sort.
`prices_select` and `actions_select` take the table expression the rows come from and the engine's dialect, so
an engine whose files are registered otherwise reuses the same rule: Athena (ATHENA, the views a deployed
stack registers: aws/catalog.py) reads a Glue table over raw-data/, names a row's file "$path", spells the
regular expression test regexp_like and the instant try(from_iso8601_timestamp(...)), to the millisecond
(the store writes milliseconds), and has no row position within a file, so its rule stops at the file: two
rows of one (symbol, date) with equal timestamps in one file may come out either way. No file stockstream
writes holds two rows of one (symbol, date) (or of one (symbol, date, kind)), so on a store it wrote the
answers are the same; tests/test_views.py runs the Athena text on DuckDB to hold it to `load`.
No ORDER BY in the views: add `ORDER BY symbol, date` (`load`'s order; actions: `symbol, date, kind`).
"""

from __future__ import annotations

import dataclasses

PRICE_COLUMNS = ("symbol", "date", "open", "high", "low", "close", "volume", "adjusted_close", "fetch_timestamp",
                 "batch_number")
ACTION_COLUMNS = ("symbol", "date", "kind", "value", "fetch_timestamp")

# The end of a data file's path (layout.py's batch, backfill and compacted keys; tests/test_views.py holds the
# two to the same answers) and of an actions file's.
PRICE_FILE_PATTERN = r"/raw-data/(\d{4}-\d{2}-\d{2}-(batch|backfill)-\d+|compacted-\d{4}-(0[1-9]|1[0-2]))\.parquet$"
ACTION_FILE_PATTERN = r"/actions/[A-Z0-9]{3,6}\.parquet$"
# newest.fetch_moment's instants: a timestamp ending in an explicit offset, read as one; others none
EXPLICIT_OFFSET = r"(Z|[+-]\d{2}(:?\d{2})?)$"


@dataclasses.dataclass(frozen=True)
class Dialect:
    """What the rule's SQL text needs from an engine."""

    matches: str  # the regular-expression test, called as matches(text, pattern)
    instant: str  # fetch_timestamp read as an instant, null when it does not parse
    path: str  # the column naming a row's file
    row: str | None  # the column giving a row's position in its file; None: the engine has none


DUCKDB = Dialect("regexp_matches", "TRY_CAST(fetch_timestamp AS TIMESTAMPTZ)", "filename", "file_row_number")
ATHENA = Dialect("regexp_like", "try(from_iso8601_timestamp(fetch_timestamp))", '"$path"', None)


def moment(dialect: Dialect) -> str:
    return f"CASE WHEN {dialect.matches}(fetch_timestamp, {_literal(EXPLICIT_OFFSET)}) THEN {dialect.instant} END"


def duckdb_views(store_uri: str) -> str:
    """`CREATE OR REPLACE VIEW prices AS ...; CREATE OR REPLACE VIEW actions AS ...;` for DuckDB over the store
    at `store_uri` (a local folder, or s3://bucket[/prefix] read with DuckDB's httpfs and its S3 settings)."""
    return f"{prices_view(store_uri)}\n\n{actions_view(store_uri)}\n"


def prices_view(store_uri: str) -> str:
    source = _parquet_scan(f"{_root(store_uri)}/raw-data/*.parquet")
    return f"CREATE OR REPLACE VIEW prices AS\n{prices_select(source)};"


def actions_view(store_uri: str) -> str:
    source = _parquet_scan(f"{_root(store_uri)}/actions/*.parquet")
    return f"CREATE OR REPLACE VIEW actions AS\n{actions_select(source)};"


def prices_select(source: str, dialect: Dialect = DUCKDB) -> str:
    """The SELECT of `load`'s rows from `source`, a table expression giving every stored row with the columns of
    the Parquet schema, its file's path as `dialect.path` and its position in the file as `dialect.row`."""
    return _newest_select(source, PRICE_COLUMNS, ("symbol", "date"), PRICE_FILE_PATTERN, dialect)


def actions_select(source: str, dialect: Dialect = DUCKDB) -> str:
    """The SELECT of the `actions` command's rows from `source` (as prices_select, with the actions' columns)."""
    return _newest_select(source, ACTION_COLUMNS, ("symbol", "date", "kind"), ACTION_FILE_PATTERN, dialect)


def _newest_select(source: str, columns: tuple[str, ...], key: tuple[str, ...], file_pattern: str,
                   dialect: Dialect) -> str:
    listed = ", ".join(columns)
    ties = [f"{dialect.path} DESC"] + ([f"{dialect.row} DESC"] if dialect.row else [])
    return (f"SELECT {listed}\n"
            f"FROM (\n"
            f"    SELECT {listed},\n"
            f"        row_number() OVER (\n"
            f"            PARTITION BY {', '.join(key)}\n"
            f"            ORDER BY {moment(dialect)} DESC NULLS LAST,\n"
            f"                fetch_timestamp DESC NULLS LAST, {', '.join(ties)}\n"
            f"        ) AS newest_first\n"
            f"    FROM {source}\n"
            f"    WHERE {dialect.matches}({dialect.path}, {_literal(file_pattern)})\n"
            f") AS fetches\n"
            f"WHERE newest_first = 1")


def _parquet_scan(pattern: str) -> str:
    return f"read_parquet({_literal(pattern)}, filename = true, file_row_number = true)"


def _root(store_uri: str) -> str:
    """The store's URI as the start of a glob: no trailing slash (the folder `/` becomes "", its keys "/raw-data/...")."""
    return store_uri.strip().rstrip("/")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
