"""DataAggregator: the store read back as one polars DataFrame.

One row per (symbol, date), the newest `fetch_timestamp` winning, sorted by symbol then date, with exactly
the columns of schema.polars_schema(). Reads are polars lazy scans with the filters pushed down:

- Files are pruned by the date in their key (`data_files`). A file written for day D holds no trading
  date after D (a fetch for D asks for the window ending at D), so a file whose D is before the requested
  start is never opened. How far back a file reaches depends on the --lookback-days of the run that wrote
  it, which its key does not record, so the other side is left to the Parquet statistics.
- A query with a symbol or date filter over more than INDEX_MIN_FILES files (a store that is not compacted)
  then prunes by statistics: the footer index (file_index.py, kept in
  the user cache) holds each data file's symbol and date range from its Parquet footer, checked against the
  version the store's listing gives for the file (so a rewritten file is read again, never trusted stale).
  Files whose ranges cannot match are not scanned; batch files hold a contiguous slice of the sorted symbol
  list, so a symbol filter scans about one file per day. Locally a compacted month (every symbol, a month)
  is left to polars (_pruned_locally). A file whose footer cannot be read, or whose
  columns are not the contract's, is never pruned (the scan names it).
- Polars reads the footer of each remaining file again and skips each row group whose symbol or date range
  misses the filter. Pruning only drops files without a matching row, so the answer (newest fetch winning)
  is what a scan of every file gives.

A file that is not Parquet, or not in the schema, is a CorruptFileError naming its key.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import functools
import io
import operator
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import layout
from .. import schema
from ..errors import CorruptFileError, InputError, KeyNotFound, StoreError, first_line
from ..values import check_range, parse_date, parse_symbols
from .newest import newest_rows
from .store import S3_CONNECTIONS, store_of  # S3_CONNECTIONS: objects fetched at once on S3

if TYPE_CHECKING:
    import polars as pl

    from .file_index import FileIndex
    from .store import Store

# Below this many files (a compacted store: a file a month, and the current month's batch files so far) the
# footer index is not consulted: polars reads the few footers itself, in parallel, so the index would only add
# its own reads (a cold one, a request per footer on S3) and its imports (pyarrow, to parse them).
INDEX_MIN_FILES = 64


def data_files(keys: Iterable[str], start: dt.date | None = None, end: dt.date | None = None) -> list[str]:
    """The raw-data keys that may hold rows dated within [start, end] (None: unbounded), in key order.

    The one place that knows which raw-data files exist and what dates each can hold. A new kind of
    data file (backfill, compacted) gets a line in `_date_reach` and is read and pruned like the rest.
    """
    selected = []
    for key in sorted(keys):
        reach = _date_reach(key)
        if reach is None:
            continue
        first, last = reach
        if start is not None and last is not None and last < start:
            continue
        if end is not None and first is not None and first > end:
            continue
        selected.append(key)
    return selected


def _date_reach(key: str) -> tuple[dt.date | None, dt.date | None] | None:
    """(earliest, latest) trading date a data file can hold, None for unknown; None for a key that is no data file."""
    batch = layout.parse_batch_data_key(key)
    if batch is not None:
        # A batch file of day D holds the lookback window ending at D; its start is only in the statistics.
        return None, batch[0]
    if layout.parse_backfill_data_key(key) is not None:
        # Which dates a backfill chunk holds is not in its key: never pruned by key, only by the statistics.
        return None, None
    month = layout.parse_compacted_data_key(key)
    if month is not None:
        # The batch files of the days of that month: nothing after its last day; the start is in the statistics.
        return None, _month_end(month)
    return None


def _month_end(month: str) -> dt.date:
    year, number = map(int, month.split("-"))
    return dt.date(year + number // 12, number % 12 + 1, 1) - dt.timedelta(days=1)


class DataAggregator:
    """The store read back: `DataAggregator("./data")`, `DataAggregator("s3://bucket/prefix")`,
    `DataAggregator(bucket="stock-stream-data")`; with no argument, STOCKSTREAM_STORE or ./stockstream-data.

    >>> DataAggregator("./stockstream-data").load_symbols(["BHP", "CBA"], start="2026-01-01")
    """

    def __init__(
        self,
        store_uri: "str | os.PathLike | Store | None" = None,
        *,
        bucket: str | None = None,
        prefix: str = "",
        profile: str | None = None,
        region: str | None = None,
    ):
        if store_uri is not None and bucket is not None:
            raise InputError("give either a store URI or bucket=, not both")
        self._settings = None  # resolved here unless the caller hands over a store of its own
        if hasattr(store_uri, "polars_path"):
            self.store = store_uri
            return
        from ..settings import Settings

        if bucket is not None:
            if not bucket.strip():
                raise InputError("bucket= is empty: name the S3 bucket, e.g. bucket='stock-stream-data'")
            store_uri = f"s3://{bucket.strip()}/{prefix.strip('/')}".rstrip("/")
        self._settings = Settings.resolve(
            store=os.fspath(store_uri) if store_uri is not None else None, profile=profile, region=region
        )
        self.store = store_of(self._settings)

    def __repr__(self) -> str:
        return f"DataAggregator({self.store.uri!r})"

    # ------------------------------------------------------------------------------------------ public API

    def load_date(self, day: dt.date | str, *, as_reported: bool = False) -> "pl.DataFrame":
        """Every symbol's row for one trading day."""
        day = _required_date(day, "date")
        return self.load(start=day, end=day, as_reported=as_reported)

    def load_date_range(self, start: dt.date | str, end: dt.date | str, *, as_reported: bool = False) -> "pl.DataFrame":
        """Every symbol's rows from start to end, both included."""
        return self.load(start=_required_date(start, "start"), end=_required_date(end, "end"), as_reported=as_reported)

    def load_symbols(
        self, symbols: Iterable[str] | str, start: dt.date | str | None = None, end: dt.date | str | None = None,
        *, as_reported: bool = False,
    ) -> "pl.DataFrame":
        """The rows of these symbols (ASX codes without suffix), optionally within [start, end]."""
        if symbols is None:
            raise InputError("load_symbols needs symbols, e.g. ['BHP', 'CBA']")
        return self.load(symbols, start=start, end=end, as_reported=as_reported)

    def load(
        self,
        symbols: Iterable[str] | None = None,
        start: dt.date | str | None = None,
        end: dt.date | str | None = None,
        *,
        as_reported: bool = False,
    ) -> "pl.DataFrame":
        """The general query behind the three methods above: every filter optional. as_reported: a day stored
        repaired (Yahoo's unit errors, repairs.py) comes with the prices Yahoo reported instead."""
        frame = self._query(symbols, start, end, newest=True)
        if as_reported:
            from .repairs import as_reported as reported_rows

            frame = reported_rows(frame, self.load_repairs(symbols, start, end))
        return frame

    def load_repairs(
        self,
        symbols: Iterable[str] | None = None,
        start: dt.date | str | None = None,
        end: dt.date | str | None = None,
    ) -> "pl.DataFrame":
        """The days stored repaired (query's table `repairs`): one row per (symbol, date), what Yahoo reported
        (reported_*), what is stored, the fetch's timestamp, the reason and its detail. Filters as in `load`."""
        from .repairs import load_repairs

        codes, start, end = _filters(symbols, start, end)
        return load_repairs(self.store, codes, start, end)

    def load_actions(
        self,
        symbols: Iterable[str] | None = None,
        start: dt.date | str | None = None,
        end: dt.date | str | None = None,
    ) -> "pl.DataFrame":
        """The corporate actions the store knows: one row per (symbol, ex-date, kind), sorted by symbol then date,
        columns symbol, date (the ex-date), kind (`dividend` or `split`), value (the dividend per share in today's
        units; a split's ratio, 2.0 for 2-for-1, 0.1 for 1-for-10), fetch_timestamp. Filters as in `load`."""
        from .actions import load_actions

        codes, start, end = _filters(symbols, start, end)
        return load_actions(self.store, codes, start, end)

    def query(self, sql: str) -> "pl.DataFrame":
        """One SQL query (polars' SQL engine) over the tables `prices` (the rows `load()` gives) and `actions`
        (the rows `load_actions()` gives), e.g. "SELECT symbol, max(close) FROM prices GROUP BY symbol"."""
        from .query import run_query

        return run_query(self, sql)

    def load_fetches(
        self,
        symbols: Iterable[str] | None = None,
        start: dt.date | str | None = None,
        end: dt.date | str | None = None,
    ) -> "pl.DataFrame":
        """Every stored fetch of the matching rows, not deduplicated: a (symbol, date) that several runs fetched
        comes once per fetch, in key order (`load` keeps the newest of them). Filters as in `load`."""
        return self._query(symbols, start, end, newest=False)

    def _query(self, symbols, start, end, *, newest: bool) -> "pl.DataFrame":
        codes, start, end = _filters(symbols, start, end)
        for attempt in range(2):
            versions = None
            if codes is None and start is None and end is None:
                keys = self.data_files()
            else:
                keys, versions = self._matching(codes, start, end)
            if not keys:
                return schema.empty_frame()
            try:
                return self._collect(keys, _predicate(codes, start, end), newest=newest,
                                     filters=(codes, start, end), versions=versions)
            except KeyNotFound:
                # a listed file was deleted before it was read: compaction folded it into its month's file,
                # written before the delete, so a new listing finds its rows there
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _matching_files(self, codes: list[str] | None, start: dt.date | None, end: dt.date | None) -> list[str]:
        """The data files a filtered query scans: pruned by key, then by the statistics in the footer index."""
        return self._matching(codes, start, end)[0]

    def _matching(self, codes, start, end) -> tuple[list[str], dict[str, str] | None]:
        """(_matching_files, the listing's versions they were chosen by; None when not listed with versions).

        On S3 the index is asked only about files it knows: a file it does not is read whole anyway (a footer
        would cost a request too) and its ranges are learnt from the bytes (_s3_reads). Locally see
        _pruned_locally. A store object of the caller's own without `list_versions` (the Store
        protocol's later addition) is pruned by key alone: polars' row-group statistics still skip what misses."""
        if not hasattr(self.store, "list_versions"):
            return self.data_files(start, end), None
        versions = self.store.list_versions(layout.RAW_DATA_PREFIX)
        keys = data_files(versions, start, end)
        if self._fetches_whole_objects():
            return self._file_index.prune_known(keys, versions, codes, start, end), versions
        return self._pruned_locally(keys, versions, codes, start, end), versions

    def _pruned_locally(self, keys: list[str], versions: dict[str, str], codes, start, end) -> list[str]:
        """Only the files that are no compacted month are pruned by the index, and only above INDEX_MIN_FILES
        of them: a day's batch files (a slice of the list each, a few days each) are what it prunes. A store
        compacted to months has a file a month, each holding every symbol: polars reads their footers itself
        (in parallel, without the index's first reading of each footer and its pyarrow import) and skips
        their row groups by the same statistics."""
        months = {key for key in keys if layout.parse_compacted_data_key(key) is not None}
        others = [key for key in keys if key not in months]
        if len(others) <= INDEX_MIN_FILES:
            return keys
        kept = set(self._file_index.prune(others, versions, codes, start, end))
        return [key for key in keys if key in months or key in kept]

    @functools.cached_property
    def _file_index(self) -> "FileIndex":
        from .file_index import FileIndex, index_folder

        return FileIndex(self.store, index_folder(self._settings))

    def data_files(self, start: dt.date | None = None, end: dt.date | None = None) -> list[str]:
        """The store's raw-data keys that may hold rows within [start, end], pruned by key alone (a query with
        a filter then prunes them further by the footer index)."""
        return data_files(self.store.list(layout.RAW_DATA_PREFIX), start, end)

    def data_file_kinds(self) -> dict[str, list]:
        """What the store's data files are, from their keys alone: {"days": the days of daily batch files,
        "months": the compacted months, "backfill": the days backfill chunks were recorded under}, each
        sorted and without duplicates."""
        found: dict[str, set] = {"days": set(), "months": set(), "backfill": set()}
        for key in self.store.list(layout.RAW_DATA_PREFIX):
            if (batch := layout.parse_batch_data_key(key)) is not None:
                found["days"].add(batch[0])
            elif (month := layout.parse_compacted_data_key(key)) is not None:
                found["months"].add(month)
            elif (chunk := layout.parse_backfill_data_key(key)) is not None:
                found["backfill"].add(chunk[0])
        return {kind: sorted(values) for kind, values in found.items()}

    # ------------------------------------------------------------------------------------------ the scan

    def _scan(self, keys: list[str], filters: tuple = (None, None, None),
              versions: dict[str, str] | None = None) -> "pl.LazyFrame":
        import polars as pl

        if self._fetches_whole_objects():
            whole, parts = self._s3_reads(keys, *filters, versions=versions)
            scans = [pl.scan_parquet([io.BytesIO(data) for data in whole], schema=schema.polars_schema(),
                                     hive_partitioning=False)] if whole else []
            scans += [part.lazy() for part in parts]  # compacted files sort after the others: key order kept
            return pl.concat(scans, how="vertical") if len(scans) != 1 else scans[0]
        return pl.scan_parquet(
            [self.store.polars_path(key) for key in keys],
            schema=schema.polars_schema(),
            storage_options=self.store.polars_storage_options(),
            credential_provider=self.store.polars_credential_provider(),
            hive_partitioning=False,
            glob=False,
        )

    def _fetches_whole_objects(self) -> bool:
        """On S3 the files are fetched by us, many at once (a batch file whole, one GET; a compacted month under
        a symbol filter by its matching row groups, two GETs: row_groups.py), rather than left to polars, which
        asks for a footer, then the row groups, a few files at a time: with S3's ~20 ms a request, the number
        of round trips is what a read costs, and then the bytes."""
        from .store import S3Store

        return isinstance(self.store, S3Store)

    def _s3_reads(self, keys: list[str], codes, start, end, *,
                  versions: dict[str, str] | None = None) -> tuple[list[bytes], list["pl.DataFrame"]]:
        """(whole objects, row groups read apart), S3_CONNECTIONS reads at a time. With any filter a compacted
        file yields only the row groups that can match (row_groups.py); every other file, and a compacted one
        that cannot be read so, comes whole. KeyNotFound for a key gone since it was listed."""
        from .file_index import ranges_of_file
        from .row_groups import read_matching_groups

        dates = tuple(None if day is None else day.isoformat() for day in (start, end))
        filtered = codes is not None or start is not None or end is not None
        learnt: dict = {}  # key -> its ranges, from bytes read anyway: the index needs no footer request

        def read(key: str):
            if filtered and layout.parse_compacted_data_key(key) is not None:
                found = read_matching_groups(self.store, key, codes, *dates)
                if found is not None:
                    learnt[key] = found[1]
                    return found[0]
            data = self.store.get(key)
            if filtered and (ranges := ranges_of_file(data)) is not None:
                learnt[key] = ranges
            return data

        if len(keys) <= 1:
            contents = [read(key) for key in keys]
        else:
            with concurrent.futures.ThreadPoolExecutor(min(S3_CONNECTIONS, len(keys))) as pool:
                contents = list(pool.map(read, keys))
        if learnt and versions is not None:
            self._file_index.learn(learnt, versions)
        whole = [item for item in contents if isinstance(item, bytes)]
        return whole, [item for item in contents if not isinstance(item, bytes)]

    def _collect(self, keys: list[str], predicate: "pl.Expr | None", *, newest: bool = True,
                 filters: tuple = (None, None, None), versions: dict[str, str] | None = None) -> "pl.DataFrame":
        import polars as pl

        query = self._scan(keys, filters, versions)
        if predicate is not None:
            query = query.filter(predicate)
        try:
            frame = query.collect()
        except (pl.exceptions.PolarsError, OSError) as error:
            raise self._diagnose(keys, predicate, error) from None
        return newest_rows(frame) if newest else frame

    def _diagnose(self, keys: list[str], predicate: "pl.Expr | None", error: Exception) -> Exception:
        """A failed multi-file scan: find and name the file at fault (the error path only, so one scan per file)."""
        return (self.file_at_fault(keys, predicate)
                or StoreError(f"cannot read the data in {self.store.uri}: {first_line(error)}"))

    def file_at_fault(self, keys: list[str], predicate: "pl.Expr | None" = None) -> Exception | None:
        """The error naming the first of the data files `keys` that cannot be scanned (CorruptFileError when it
        is not Parquet in the schema, StoreError when the store failed); None when every one can."""
        for key in keys:
            try:
                query = self._scan([key])
                (query if predicate is None else query.filter(predicate)).collect()
            except Exception as file_error:
                return self._file_error(key, file_error)
        return None

    def _file_error(self, key: str, error: Exception) -> Exception:
        """Not Parquet or not our schema: corrupt (exit 1, naming the key). Anything else: the store failed."""
        import polars as pl

        path = self.store.polars_path(key)
        reason = first_line(error).replace(path, key)
        if isinstance(error, OSError) or "object-store" in reason or "object_store" in reason:
            return StoreError(f"cannot read {key}: {reason}")
        if not isinstance(error, pl.exceptions.PolarsError):
            return error
        try:
            found = pl.scan_parquet(path, storage_options=self.store.polars_storage_options(),
                                    credential_provider=self.store.polars_credential_provider(),
                                    glob=False).collect_schema()
        except Exception as schema_error:
            return CorruptFileError(key, f"not a Parquet file: {first_line(schema_error).replace(path, key)}")
        return CorruptFileError(key, schema_difference(found) or reason)


def schema_difference(found: "pl.Schema") -> str | None:
    """How a file's schema differs from the contract's, in a user's words; None when it does not."""
    expected = schema.polars_schema()
    problems = []
    missing = [name for name in expected if name not in found]
    extra = [name for name in found if name not in expected]
    if missing:
        problems.append("missing column" + ("s " if len(missing) > 1 else " ") + ", ".join(missing))
    if extra:
        problems.append("unexpected column" + ("s " if len(extra) > 1 else " ") + ", ".join(extra))
    for name, kind in expected.items():
        if name in found and found[name] != kind:
            problems.append(f"{name} is {found[name]}, expected {kind}")
    return "not the stockstream schema: " + "; ".join(problems) if problems else None


def _filters(symbols, start, end) -> tuple[list[str] | None, dt.date | None, dt.date | None]:
    """The query filters checked: symbols (None: all), start and end dates (None: unbounded)."""
    start = None if start is None else _required_date(start, "start")
    end = None if end is None else _required_date(end, "end")
    check_range(start, end)
    codes = None
    if symbols is not None:
        codes = parse_symbols([symbols] if isinstance(symbols, str) else list(symbols))
        if codes is None:
            raise InputError("no symbols given: name at least one, e.g. ['BHP', 'CBA'], or pass None for all")
    return codes, start, end


def _predicate(symbols: list[str] | None, start: dt.date | None, end: dt.date | None) -> "pl.Expr | None":
    import polars as pl

    conditions = []
    if symbols is not None:
        conditions.append(pl.col("symbol").is_in(symbols))
    if start is not None:
        conditions.append(pl.col("date") >= start)
    if end is not None:
        conditions.append(pl.col("date") <= end)
    return functools.reduce(operator.and_, conditions) if conditions else None


def _required_date(value: Any, name: str) -> dt.date:
    if value is None:
        raise InputError("is missing: give a date as YYYY-MM-DD or datetime.date", parameter=name)
    if not isinstance(value, (str, dt.date)):
        raise InputError(f"{value!r} is not a date: give YYYY-MM-DD or datetime.date", parameter=name)
    return parse_date(value, parameter=name)



def earliest_rows(store, symbols: list[str]) -> dict[str, dt.date]:
    """symbol -> its earliest stored trading date, for the symbols that have any row."""
    if not symbols:
        return {}
    import polars as pl

    frame = DataAggregator(store).load_symbols(symbols)
    if frame.is_empty():
        return {}
    firsts = frame.group_by("symbol").agg(pl.col("date").min())
    return dict(zip(firsts["symbol"].to_list(), firsts["date"].to_list()))
