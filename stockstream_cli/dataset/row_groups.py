"""Only the row groups of a compacted file that can hold the symbols asked for, read with ranged GETs (S3).

A compacted month (dataset/compact.py) is about a megabyte, sorted by symbol, in 4,096-row groups; two symbols
live in one or two of its groups. Fetched whole, a year of them is ~11 MB for a few hundred rows. Instead:

1. one suffix GET brings the footer (and, often, the last groups): the object's size and ETag come with it;
2. the footer's statistics pick the groups whose symbol and date ranges can hold a row asked for
   (file_index.may_match, the rule the footer index prunes files by);
3. one GET per run of picked groups not yet in hand, each `If-Match` the first answer's ETag, so bytes of
   two versions of a file (compaction rewrites a month) are never put together;
4. pyarrow reads the picked groups from a buffer holding those bytes at their offsets: it touches only the
   column chunks of the groups it is asked for.

Anything unexpected (a footer that does not parse, columns that are not the contract's, a group without
statistics, a file rewritten in between) returns None: the caller reads that file whole, which names a
corrupt file as every read does. So this module can only make a read cheaper, never change its answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import VersionChanged
from .file_index import TAIL_BYTES, Ranges, _footer_length, may_match, ranges_of

if TYPE_CHECKING:
    import polars as pl

MERGE_GAP = 64 * 1024  # picked groups this close are fetched in one GET: a request costs more than the bytes


def read_matching_groups(store, key: str, symbols: Sequence[str] | None, start: str | None = None,
                         end: str | None = None) -> "tuple[pl.DataFrame, Ranges] | None":
    """(the rows of `key`'s row groups that may match (sorted symbols; ISO dates), in the contract's schema,
    not yet filtered row by row; the whole file's ranges, for the footer index); None when the file is to be
    read whole instead (see the module's docstring)."""
    try:
        suffix = _with_footer(store, key, store.read_suffix(key, TAIL_BYTES))
        if suffix is None:
            return None
        metadata = _metadata(suffix.data[-(_footer_length(suffix.data) + 8):])
        groups = _picked_groups(metadata, symbols, start, end)
        if groups is None:
            return None
        buffer = _buffer_with(store, key, suffix, [_byte_span(metadata.row_group(g)) for g in groups])
        return _read_groups(buffer, groups), ranges_of(metadata)
    except VersionChanged:
        return None
    except (ValueError, TypeError, NotImplementedError, ArithmeticError, OSError):  # pyarrow's errors subclass these
        return None


def _with_footer(store, key: str, suffix):
    """The suffix, extended to the whole footer (its length and magic included) when it held only part."""
    import dataclasses

    needed = _footer_length(suffix.data) + 8
    if needed > suffix.size:
        return None
    if needed <= len(suffix.data):
        return suffix
    return dataclasses.replace(suffix, data=store.read_range(key, suffix.size - needed, suffix.size, etag=suffix.etag))


def _metadata(footer: bytes):
    from .file_index import _parse_footer

    return _parse_footer(footer)


def _picked_groups(metadata, symbols: Sequence[str] | None, start: str | None, end: str | None) -> list[int] | None:
    """The groups whose ranges may match; None unless every group has the contract's columns and statistics."""
    from .file_index import _columns, _contract_columns

    if _columns(metadata.schema) != _contract_columns():
        return None
    names = list(_contract_columns())
    symbol, date = names.index("symbol"), names.index("date")
    picked = []
    for group in range(metadata.num_row_groups):
        ranges = _group_ranges(metadata.row_group(group), symbol, date)
        if ranges is None:
            return None
        if may_match(ranges, symbols, start, end):
            picked.append(group)
    return picked


def _group_ranges(group, symbol: int, date: int) -> Ranges | None:
    bounds = []
    for column in (symbol, date):
        statistics = group.column(column).statistics
        if statistics is None or not statistics.has_min_max:
            return None
        bounds.append((statistics.min, statistics.max))
    (symbol_min, symbol_max), (date_min, date_max) = bounds
    return symbol_min, symbol_max, date_min.isoformat(), date_max.isoformat()


def _byte_span(group) -> tuple[int, int]:
    """[start, stop) of a row group's column chunks in the file (a chunk starts at its dictionary page)."""
    starts, stops = [], []
    for index in range(group.num_columns):
        column = group.column(index)
        first = column.data_page_offset
        if column.has_dictionary_page and 0 < column.dictionary_page_offset < first:
            first = column.dictionary_page_offset
        starts.append(first)
        stops.append(first + column.total_compressed_size)
    return min(starts), max(stops)


def _runs(spans: list[tuple[int, int]], have_from: int) -> list[tuple[int, int]]:
    """The byte runs still to fetch: spans before `have_from` (the suffix in hand), merged across MERGE_GAP."""
    runs: list[list[int]] = []
    for start, stop in sorted(spans):
        stop = min(stop, have_from)
        if start >= stop:
            continue
        if runs and start - runs[-1][1] <= MERGE_GAP:
            runs[-1][1] = max(runs[-1][1], stop)
        else:
            runs.append([start, stop])
    return [(start, stop) for start, stop in runs]


def _buffer_with(store, key: str, suffix, spans: list[tuple[int, int]]) -> bytearray:
    """A buffer the size of the file with the suffix and the spans' bytes in place (the rest is never read)."""
    import concurrent.futures

    buffer = bytearray(suffix.size)
    have_from = suffix.size - len(suffix.data)
    buffer[have_from:] = suffix.data
    runs = _runs(spans, have_from)

    def fetch(run: tuple[int, int]) -> None:
        data = store.read_range(key, *run, etag=suffix.etag)
        if len(data) != run[1] - run[0]:
            raise ValueError(f"{key}: asked for {run[1] - run[0]} bytes, got {len(data)}")
        buffer[run[0]:run[1]] = data

    if len(runs) <= 1:
        for run in runs:
            fetch(run)
    else:
        with concurrent.futures.ThreadPoolExecutor(min(len(runs), 8)) as pool:
            list(pool.map(fetch, runs))
    return buffer


def _read_groups(buffer: bytearray, groups: list[int]) -> "pl.DataFrame":
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .. import schema

    if not groups:
        return schema.empty_frame()
    table = pq.ParquetFile(pa.BufferReader(pa.py_buffer(buffer))).read_row_groups(groups)
    frame = pl.from_arrow(table)
    if not isinstance(frame, pl.DataFrame) or frame.schema != schema.polars_schema():
        raise ValueError("not the contract's schema")
    return frame

