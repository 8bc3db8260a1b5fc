"""The footer index: each raw-data file's symbol and date range, kept in the user's cache, never stale.

A symbol or date filter needs about one file in ten of a year of batch files, but telling which means
reading every file's Parquet footer (its statistics): 4,750 footers locally, 4,750 requests on S3. The index
keeps, per data key, the min/max `symbol` and min/max `date` over the file's row groups, together with the
version token the store's listing gives for it (`Store.list_versions`: size, mtime and inode of a local
file; ETag and size of an S3 object). Every query lists the store anyway; an entry whose token differs from
the listing's is read again, and keys no longer listed are dropped, so a rewritten file (a put renames a new
file over the key: new inode and mtime; on S3 a new ETag) is always read again and the index is never stale.

It lives in the cache folder, not in the store (the store's layout is the contract):
`$STOCKSTREAM_CACHE_DIR/file-index/`, by default the user cache (`~/.cache/stockstream/file-index`), on
Lambda under /tmp; one JSON file per store, named by a hash of the store's location. A missing, unreadable
or corrupt index file is rebuilt; an unwritable folder means working without one. Writes are atomic (a
temporary file renamed over it), so concurrent processes each see a whole file; the last writer wins.

What is never pruned: a file whose footer cannot be read (the scan then names it as corrupt), a file whose
columns are not the contract's (polars rejects it, whatever the filter), a column without statistics.
"""

from __future__ import annotations

import bisect
import concurrent.futures
import datetime as dt
import functools
import hashlib
import json
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .store import S3_CONNECTIONS  # footers read at once on S3; a local disk reads faster alone

if TYPE_CHECKING:
    from ..settings import Settings
    from .store import Store

FORMAT = 1
TAIL_BYTES = 64 * 1024  # holds the footer of a batch or compacted file (a few KiB); a longer one takes a second read
_MAGIC = b"PAR1"

# (symbol min, symbol max, date min, date max); dates as YYYY-MM-DD; None where the footer does not say
Ranges = tuple[str | None, str | None, str | None, str | None]
UNKNOWN: Ranges = (None, None, None, None)


def index_folder(settings: "Settings | None" = None) -> Path:
    """file-index/ in the settings' cache folder (Settings.cache_folder: --cache-dir / STOCKSTREAM_CACHE_DIR,
    else the user cache folder; on Lambda, where only /tmp is writable, under /tmp). No settings: the
    environment's, resolved by Settings as every face resolves them."""
    if settings is None:
        from ..settings import Settings

        settings = Settings.resolve()
    return Path(settings.cache_folder) / "file-index"


def store_identity(store: "Store") -> str:
    """The store's location, absolute: a local folder's path, or its S3 URL and the endpoint boto3 talks to."""
    location = store.polars_path("")
    if "://" not in location:
        return "file://" + os.path.abspath(location)
    client = getattr(store, "client", None)
    return f"{location} at {getattr(getattr(client, 'meta', None), 'endpoint_url', None)}"


class FileIndex:
    """The index of one store; `prune` keeps the keys whose files may hold rows matching a filter."""

    def __init__(self, store: "Store", folder: Path | None = None):
        self.store = store
        self.identity = store_identity(store)
        name = hashlib.sha256(self.identity.encode()).hexdigest()[:16]
        self.path = (folder or index_folder()) / f"{name}.json"
        self._entries: dict[str, list] | None = None  # key -> [token, *Ranges], as stored
        self._lock = threading.Lock()  # one aggregator may serve several threads

    def prune(self, keys: Sequence[str], versions: Mapping[str, str], symbols: Sequence[str] | None,
              start: dt.date | None, end: dt.date | None) -> list[str]:
        """The keys (in their order) whose files may hold a row of `symbols` dated within [start, end]."""
        if symbols is None and start is None and end is None:
            return list(keys)
        ranges = self.ranges(keys, versions)
        wanted = None if symbols is None else sorted(symbols)
        first = None if start is None else start.isoformat()
        last = None if end is None else end.isoformat()
        return [key for key in keys if may_match(ranges[key], wanted, first, last)]

    def prune_known(self, keys: Sequence[str], versions: Mapping[str, str], symbols: Sequence[str] | None,
                    start: dt.date | None, end: dt.date | None) -> list[str]:
        """As prune, reading no footer: a key the index does not know at its listed version is kept (the
        reader then fetches it anyway and hands its ranges to `learn`). For S3, where a footer costs a
        request as the whole of a small file does."""
        if symbols is None and start is None and end is None:
            return list(keys)
        with self._lock:
            entries = self._load()
            known = {key: tuple(entries[key][1:]) for key in keys
                     if key in entries and entries[key][0] == versions.get(key)}
        wanted = None if symbols is None else sorted(symbols)
        first = None if start is None else start.isoformat()
        last = None if end is None else end.isoformat()
        return [key for key in keys if key not in known or may_match(known[key], wanted, first, last)]

    def learn(self, found: Mapping[str, Ranges], versions: Mapping[str, str]) -> None:
        """Keep ranges read from files' own bytes, under the version listed before they were read (a file
        rewritten in between lists under a new version next time, so it is never trusted stale)."""
        with self._lock:
            entries = self._load()
            changed = _drop_unlisted(entries, versions)
            for key, ranges in found.items():
                if key in versions and entries.get(key, [None])[0] != versions[key]:
                    entries[key] = [versions[key], *ranges]
                    changed = True
            if changed:
                self._save(entries)

    def ranges(self, keys: Iterable[str], versions: Mapping[str, str]) -> dict[str, Ranges]:
        """Each key's ranges, its footer read when the index has no entry for the listed version of it."""
        with self._lock:
            return self._current_ranges(list(keys), versions)

    def _current_ranges(self, keys: list[str], versions: Mapping[str, str]) -> dict[str, Ranges]:
        entries = self._load()
        changed = _drop_unlisted(entries, versions)
        outdated = [key for key in keys if key not in entries or entries[key][0] != versions[key]]
        for key, found in zip(outdated, self._read_footers(outdated)):
            if found is None:  # unreadable (corrupt, or gone): not pruned, tried again next time
                changed |= entries.pop(key, None) is not None
            else:
                entries[key] = [versions[key], *found]
                changed = True
        if changed:
            self._save(entries)
        return {key: tuple(entries[key][1:]) if key in entries else UNKNOWN for key in keys}

    def _read_footers(self, keys: list[str]) -> list[Ranges | None]:
        from .store import LocalStore

        if len(keys) <= 1 or isinstance(self.store, LocalStore):
            # Parsing a footer holds the GIL: threads made 4,750 local footers slower, not faster, on 2 cores.
            return [read_footer(self.store, key) for key in keys]
        with concurrent.futures.ThreadPoolExecutor(S3_CONNECTIONS) as pool:
            return list(pool.map(lambda key: read_footer(self.store, key), keys))

    def _load(self) -> dict[str, list]:
        if self._entries is None:
            self._entries = _read_index(self.path, self.identity)
        return self._entries

    def _save(self, entries: dict[str, list]) -> None:
        document = {"format": FORMAT, "store": self.identity, "files": entries}
        _write_atomically(self.path, json.dumps(document, separators=(",", ":")).encode())


def may_match(ranges: Ranges, symbols: list[str] | None, start: str | None, end: str | None) -> bool:
    """False only when the ranges rule the file out: no symbol of the (sorted) list within its symbol range,
    or its dates all before start or all after end (ISO dates compare as text)."""
    symbol_min, symbol_max, date_min, date_max = ranges
    if symbols is not None and symbol_min is not None and symbol_max is not None:
        at = bisect.bisect_left(symbols, symbol_min)
        if at == len(symbols) or symbols[at] > symbol_max:
            return False
    if start is not None and date_max is not None and date_max < start:
        return False
    if end is not None and date_min is not None and date_min > end:
        return False
    return True


# ------------------------------------------------------------------------------------------ reading a footer


def ranges_of_file(data: bytes) -> Ranges | None:
    """The ranges from a whole file's footer, in memory; None when it is not a readable Parquet file."""
    try:
        return ranges_of(_parse_footer(data[-(_footer_length(data) + 8):]))
    except Exception:
        return None


def read_footer(store: "Store", key: str) -> Ranges | None:
    """The ranges from the key's Parquet footer (read from the file's tail); None when it cannot be read."""
    try:
        return ranges_of(footer_metadata(store, key))
    except Exception:
        return None


def footer_metadata(store: "Store", key: str):
    """pyarrow's FileMetaData of the key's Parquet file, from its tail alone (a second read when the footer
    is longer than TAIL_BYTES). KeyNotFound when there is no such key; ValueError (or pyarrow's errors) when
    it is not a readable Parquet file."""
    tail = store.read_tail(key, TAIL_BYTES)
    needed = _footer_length(tail) + 8
    if needed > len(tail):
        tail = store.read_tail(key, needed)
        if needed > len(tail):
            raise ValueError("the footer claims more bytes than the file has")
    return _parse_footer(tail[-needed:])


def _footer_length(tail: bytes) -> int:
    """A Parquet file ends with the footer, its length (4 bytes, little-endian) and PAR1."""
    if len(tail) < 12 or tail[-4:] != _MAGIC:
        raise ValueError("not a Parquet file")
    return int.from_bytes(tail[-8:-4], "little")


def _parse_footer(footer: bytes):
    """pyarrow's FileMetaData of a footer (with its length and magic): PAR1 in front makes it a file to
    pyarrow, which reads a file's metadata from its end only."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pq.read_metadata(pa.py_buffer(_MAGIC + footer))


def ranges_of(metadata) -> Ranges:
    """The file's symbol and date ranges over all its row groups; UNKNOWN unless its columns are the contract's."""
    columns = _columns(metadata.schema)
    if columns != _contract_columns():
        return UNKNOWN
    names = list(columns)
    symbols = _column_range(metadata, names.index("symbol"))
    dates = _column_range(metadata, names.index("date"))
    if not all(isinstance(day, dt.date) for day in dates):
        dates = (None, None)
    return (*symbols, *(None if day is None else day.isoformat() for day in dates))


def _column_range(metadata, column: int) -> tuple:
    """(min, max) of a column over every row group; (None, None) when any row group lacks them."""
    lows, highs = [], []
    for group in range(metadata.num_row_groups):
        statistics = metadata.row_group(group).column(column).statistics
        if statistics is None or not statistics.has_min_max:
            return None, None
        lows.append(statistics.min)
        highs.append(statistics.max)
    return (min(lows), max(highs)) if lows else (None, None)


def _columns(parquet_schema) -> dict[str, tuple[str, str]]:
    """{column name: (physical type, logical type)}, what decides whether polars reads the file as ours."""
    return {column.name: (column.physical_type, str(column.logical_type))
            for column in (parquet_schema.column(i) for i in range(len(parquet_schema)))}


@functools.cache
def _contract_columns() -> dict[str, tuple[str, str]]:
    """The columns of a file in the contract's schema, as polars writes it (the one statement: schema.py)."""
    import io

    from .. import schema

    buffer = io.BytesIO()
    schema.empty_frame().write_parquet(buffer)
    data = buffer.getvalue()
    return _columns(_parse_footer(data[-(_footer_length(data) + 8):]).schema)


# ------------------------------------------------------------------------------------------ the index file


def _read_index(path: Path, identity: str) -> dict[str, list]:
    """The stored entries; none when the file is missing, unreadable, corrupt or another store's."""
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(document, dict) or document.get("format") != FORMAT or document.get("store") != identity:
        return {}
    files = document.get("files")
    if not isinstance(files, dict):
        return {}
    return {key: entry for key, entry in files.items() if _valid_entry(entry)}


def _valid_entry(entry) -> bool:
    return (isinstance(entry, list) and len(entry) == 5 and isinstance(entry[0], str)
            and all(value is None or isinstance(value, str) for value in entry[1:]))


def _drop_unlisted(entries: dict[str, list], versions: Mapping[str, str]) -> bool:
    gone = [key for key in entries if key not in versions]
    for key in gone:
        del entries[key]
    return bool(gone)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write through a temporary file renamed over the index; a folder that cannot be written is no error."""
    from .store import write_atomically

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, data)
    except OSError:
        return