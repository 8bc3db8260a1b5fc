"""The symbols step, the state machine's first state: the ASX list from its source, guarded against the
previous stored list, split into batches and stored (the Lambda symbol updater and run-local run it).
No typer or rich here."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

from ..dataset import symbols as stored
from ..settings import MARKIT_URL, Settings
from ..sources import asx

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ListUpdate:
    """What the symbols step stored: the day's list, its batches, and how it changed since the previous list."""

    symbols: list[str]
    batches: list[dict[str, Any]]  # the state machine's items: {"symbols": [...], "batchNumber": N}
    key: str  # where the list is stored
    changes: dict[str, list[str]]  # {"added": [...], "removed": [...]} against the previous list
    previous_key: str | None  # the previous list's key (None: no earlier list, and no changes)

    def to_document(self) -> dict[str, Any]:
        """The contract's `symbols --json` document (also the symbol updater's output)."""
        return {
            "statusCode": 200,
            "symbols": self.symbols,
            "symbolBatches": self.batches,
            "metadata": {
                "total_symbols": len(self.symbols),
                "num_batches": len(self.batches),
                "s3_key": self.key,
                "changes": self.changes,
                "previous_key": self.previous_key,
            },
        }


def update_symbols(store, day: dt.date, settings: Settings, *, from_file: str | None = None, force: bool = False,
                   http_get: asx.HttpGet | None = None, note: asx.Note | None = None) -> ListUpdate:
    """The whole `symbols` step: fetch, validate, guard, diff, batch, write.

    Raises InputError for bad input (before any I/O), SourceError when the source gives no usable list
    (nothing written, the previous list untouched).
    """
    note = note or log.warning
    if from_file is None:
        asx.check_source_url(settings.source_url)
    else:
        asx.check_from_file(from_file)
    previous_key, previous = stored.previous_symbols(store, day)
    floor = asx.required_size(previous, is_default_source=from_file is None and settings.source_url == MARKIT_URL)

    parsed = asx.fetch_guarded(settings, from_file, floor, force, previous_key, http_get, note)
    for line in parsed.skipped:
        note(f"left out of the ASX list: {line}")
    listings = stored.assign_batches(parsed.companies, settings.batch_size)
    key = stored.write_symbols(store, day, listings)

    symbols = [item.symbol for item in listings]
    changes = asx.diff_symbols(previous, symbols) if previous is not None else {"added": [], "removed": []}
    return ListUpdate(symbols, stored.symbol_batches(listings), key, changes, previous_key)


def stored_list(store, day: dt.date) -> ListUpdate | None:
    """The day's list as `symbols` (or an earlier run) stored it, with its batches as stored; None when the store
    has no list for the day. Nothing is downloaded."""
    from ..dataset import layout

    key = layout.symbols_key(day)
    if not store.exists(key):
        return None
    listings = stored.read_symbols(store, day)
    return ListUpdate([item.symbol for item in listings], stored.symbol_batches(listings), key,
                      {"added": [], "removed": []}, None)
