"""One batch, end to end: its symbols from the day's stored list, fetched (fetch/batch.py), restated where a
new action shows (fetch/restate.py), then committed (dataset/commit.py): what `fetch-batch`, each deployed
fetcher and every batch of run-local run. No typer or rich here.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .. import schema
from ..dataset import manifest
from ..dataset.actions import symbols_with_news
from ..dataset.aggregate import earliest_rows
from ..dataset.symbols import batch_codes
from ..fetch import restate
from ..dataset.suspicions import open_dates
from ..fetch.batch import fetch_symbols, lookback_window
from ..fetch.reverify import widened_starts

if TYPE_CHECKING:
    from ..dataset.commit import Writer


def fetch_batch(writer: "Writer", day: dt.date, batch_number: int, settings, *,
                symbols: Iterable[str] | None = None, **options) -> manifest.Record:
    """Fetch batch `batch_number` of `day` (or just `symbols` of it: a rerun, the state machine's item) and
    commit it through `writer`; its stored record. A batch cut short (a deadline, a suspected block) is
    committed first, then BatchInterrupted or BatchBlocked (or the stop's own exception) is raised, carrying
    the record. `options` are fetch.batch.fetch_symbols' (pacer, on_symbol, sleep, fetcher, rng, requests,
    now, deadline)."""
    started = time.monotonic()
    store = writer.store
    codes = batch_codes(store, day, batch_number, symbols)
    suspected = open_dates(store)  # re-verification: the same one request per symbol reaches back over them
    starts = widened_starts(suspected, codes, lookback_window(day, settings.lookback_days)[0]) if suspected else {}
    fetched = fetch_symbols(codes, day, batch_number, settings, starts=starts, **options)
    window_first = fetched.window[0]
    news = symbols_with_news(store, restate.with_actions(fetched.results))
    firsts = earliest_rows(store, sorted(news)) if news else {}
    results = restate.restate(fetched.results, window_first, day, news=news, first_dates=firsts,
                              refetch=fetched.refetch).results
    record = writer.commit_batch(day, batch_number, results, window=fetched.window,
                                 execution_time=time.monotonic() - started, fetched_at=schema.utc_timestamp(),
                                 reverified=reverified(results, suspected))
    fetched.progress.raise_if_cut_short(record, batch_number, day)
    return record


def fetch_batch_locked(store, day: dt.date, batch_number: int, settings, *, command: str, wait: bool = False,
                       **options) -> manifest.Record:
    """fetch_batch under batch N's own lock (fetch-batch, the deployed fetcher): a second writer of the batch,
    or of its whole day, is refused (LockHeld naming the holder) or, with wait, waited for. Taking the lock is
    also the store's write probe: a store that cannot be written fails here, before any request to Yahoo."""
    from ..dataset.commit import batch_writer

    with batch_writer(store, day, batch_number, command, wait=wait) as writer:
        return fetch_batch(writer, day, batch_number, settings, **options)


def reverified(results, suspected: dict[str, list[dt.date]]) -> dict[str, list[str]]:
    """{symbol: the dates of its open suspicions its fetch answered again}, for the batch's record."""
    found = {}
    for result in results:
        dates = suspected.get(result.symbol)
        if dates and result.rows is not None:
            fetched = set(result.rows["date"].to_list())
            again = sorted(day.isoformat() for day in dates if day in fetched)
            if again:
                found[result.symbol] = again
    return found
