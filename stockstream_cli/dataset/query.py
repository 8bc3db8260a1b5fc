"""One SQL query over the store, with polars' SQL engine (`stockstream query`, DataAggregator.query).

Two tables, both lazy, so a query reads only what it needs:
- `prices`: `load`'s rows (one per symbol and date, the newest fetch winning: newest.py) over a polars scan of
  every data file. The rule is applied after the scan, and polars pushes a query's filter on `symbol` or
  `date` (the rule's keys, where it cannot change the winner) below it into the Parquet reader, which skips
  the row groups (a compacted month's, above all) whose statistics rule it out.
- `actions`: the `actions` command's rows, read only when the query names the table.
- `repairs`: the days stored repaired (repairs.py: what Yahoo reported, what is stored, when, why), likewise.
SQL the engine refuses (a syntax error, an unknown table or column, a type that does not fit) is an InputError
carrying polars' message on one line; a stored file that cannot be read is named as `load` names it.
No typer or rich here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import schema
from ..errors import InputError, StockstreamError

if TYPE_CHECKING:
    import polars as pl


def run_query(aggregator, sql: str) -> "pl.DataFrame":
    """The rows `sql` selects from the tables of `aggregator`'s store (a DataAggregator)."""
    import polars as pl

    if not sql or not sql.strip():
        raise InputError("the SQL query is empty: e.g. SELECT symbol, max(close) FROM prices GROUP BY symbol")
    for attempt in range(2):
        keys = aggregator.data_files()
        failures: list[StockstreamError] = []
        plan = _plan(aggregator, keys, sql, failures)
        try:
            return plan.collect()
        except (pl.exceptions.PolarsError, OSError) as error:
            if failures:
                raise failures[0] from None
            if attempt == 0 and set(keys) - set(aggregator.data_files()):
                continue  # compaction folded a listed file into its month's file meanwhile: list again
            raise aggregator.file_at_fault(keys) or InputError(f"the SQL query failed: {one_line(error)}") from None
    raise AssertionError("unreachable")


def _plan(aggregator, keys: list[str], sql: str, failures: list) -> "pl.LazyFrame":
    """The query's lazy plan, checked (its schema resolved, no data read): InputError when polars refuses it."""
    import polars as pl

    context = pl.SQLContext({"prices": prices_table(aggregator.store, keys),
                             "actions": actions_table(aggregator, failures),
                             "repairs": repairs_table(aggregator, failures)})
    try:
        plan = context.execute(sql, eager=False)
        plan.collect_schema()
    except pl.exceptions.PolarsError as error:
        raise InputError(f"the SQL query was refused: {one_line(error)}") from None
    return plan


def prices_table(store, keys: list[str]) -> "pl.LazyFrame":
    """`load`'s rows from the data files `keys`, lazily."""
    import polars as pl

    from .newest import newest_per_symbol_and_date

    if not keys:
        return schema.empty_frame().lazy()
    scan = pl.scan_parquet([store.polars_path(key) for key in keys], schema=schema.polars_schema(),
                           storage_options=store.polars_storage_options(),
                           credential_provider=store.polars_credential_provider(),
                           hive_partitioning=False, glob=False)
    return newest_per_symbol_and_date(scan, filtered_after=True)  # a WHERE reaches the scan


def actions_table(aggregator, failures: list) -> "pl.LazyFrame":
    """The `actions` command's rows, read when the plan runs; an error of ours raised there is kept in
    `failures` (polars would hand it back as its own)."""
    import polars as pl

    from .actions import action_schema

    def read() -> "pl.DataFrame":
        try:
            return aggregator.load_actions()
        except StockstreamError as error:
            failures.append(error)
            raise

    return pl.defer(read, schema=action_schema())


def repairs_table(aggregator, failures: list) -> "pl.LazyFrame":
    """The repaired days (DataAggregator.load_repairs), read when the plan runs."""
    import polars as pl

    from ..schema import repair_schema

    def read() -> "pl.DataFrame":
        try:
            return aggregator.load_repairs()
        except StockstreamError as error:
            failures.append(error)
            raise

    return pl.defer(read, schema=repair_schema())


def one_line(error: BaseException) -> str:
    """polars' message on one line: its lines joined, without the plan it appends ("Resolved plan until
    failure")."""
    text = str(error).split("Resolved plan until failure")[0]
    return " ".join(line.strip() for line in text.splitlines() if line.strip()) or type(error).__name__
