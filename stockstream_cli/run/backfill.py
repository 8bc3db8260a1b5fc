"""`backfill`: fetch the history of symbols that lack it, into raw-data/D-backfill-N.parquet.

Which symbols: those named, else the ones the latest ASX list in the store added against the list before it
and whose stored history does not reach back to `start` (to their listing date when that is later).

How: `settings.concurrency` symbols at a time (each worker with its own --delay, all sharing the run's --rate
budget, as run-local's batches) through fetch.fetch_symbol, the same pacing, retries, cleaning and failure
reasons as any batch. The symbols are fetched in chunks of `settings.batch_size`; each chunk is written as
raw-data/D-backfill-N.parquet (D = `end`, the contract's schema, each row's `batch_number` its symbol's batch
in the latest list) and then, last, its record runs/D/backfill-N.json (what `check` reads, and what makes the
backfill resumable), all through one commit (dataset/commit.py) under the lock of day D:

- a symbol recorded as fetched, or failed for a final reason (not_found, no_data, invalid_data), by a
  backfill whose range covers [start, end] is skipped: a rerun after an interruption fetches only the rest;
- an interrupted chunk leaves no record; its number is reused by the rerun, so a data file that was written
  without its record is overwritten, never duplicated.

`load` reads backfill files like batch files; where a backfill row and a daily row share (symbol, date),
the newest fetch wins. The dividends and splits a chunk's answers carry are stored in actions/ (after its
data file), and a new one restates the symbol's stored rows before `start` the way the daily fetch does
(fetch/restate.py). No typer or rich here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from .. import calendar, hints, schema
from ..dataset import layout, manifest
from ..dataset.commit import Writer, day_writer
from ..dataset.symbols import read_symbols
from ..sources import yahoo
from ..errors import CorruptFileError, InputError, Interrupted, named
from ..outcome import Outcome
from ..reasons import FINAL
from ..values import check_range



class Observer:
    """What a backfill reports while it goes. Does nothing."""

    def note(self, message: str) -> None: ...

    def started(self, total: int) -> None: ...

    def symbol_done(self, symbol: str, reason: str | None) -> None: ...


@dataclasses.dataclass(frozen=True)
class Plan:
    start: dt.date
    end: dt.date
    asked: list[str]  # the symbols named, or chosen by default
    done: list[str]  # already backfilled over [start, end]: skipped
    todo: list[str]
    chosen_by: str  # "--symbols" or "added in symbols/D-symbols.csv"


# ---------------------------------------------------------------------------------------------- planning


def default_end(store) -> dt.date:
    """The day of the latest ASX list in the store (history meets the daily runs there), else today."""
    from ..values import today_sydney

    days = [d for key in store.list(layout.SYMBOLS_PREFIX) if (d := layout.parse_symbols_key(key))]
    return max(days) if days else today_sydney()


def plan(store, start: dt.date, end: dt.date, symbols: list[str] | None = None, *, missing: bool = False) -> Plan:
    check_range(start, end)
    if missing:
        asked, chosen_by = never_fetched(store, start, end, symbols), "--missing (check's not_fetched)"
    elif symbols:
        asked, chosen_by = sorted(set(symbols)), "--symbols"
    else:
        asked, chosen_by = added_without_history(store, start)
    done_already = done_symbols(store, start, end)
    return Plan(start, end, asked, [s for s in asked if s in done_already], [s for s in asked if s not in done_already],
                chosen_by)


def never_fetched(store, start: dt.date, end: dt.date, symbols: list[str] | None = None) -> list[str]:
    """The symbols `check` reports as not_fetched over [start, end] (no run or backfill covered the day)."""
    from ..quality.check import check

    document = check(store, start, end, symbols=symbols)
    return sorted({item["symbol"] for item in document["missing"]["not_fetched"]})


def added_without_history(store, start: dt.date) -> tuple[list[str], str]:
    """The symbols the latest list added against the previous one whose history does not reach `start`."""
    from ..dataset.aggregate import earliest_rows
    from ..dataset.symbols import from_csv, previous_symbols
    from ..sources.asx import diff_symbols

    days = sorted(d for key in store.list(layout.SYMBOLS_PREFIX) if (d := layout.parse_symbols_key(key)))
    if not days:
        raise InputError(f"no ASX list in {store.uri}: run `{hints.command('symbols')}` first, or name {named('symbols')}")
    latest_key = layout.symbols_key(days[-1])
    latest = {item.symbol: item for item in from_csv(store.get(latest_key), latest_key)}
    previous_key, previous = previous_symbols(store, days[-1])
    if previous_key is None:
        return [], f"added in {latest_key} (no earlier list to compare with)"
    added = diff_symbols(previous, latest)["added"]
    first_rows = earliest_rows(store, added)
    lacking = [s for s in added if not _reaches(first_rows.get(s), _history_starts(start, latest[s].listing_date))]
    return lacking, f"added in {latest_key} against {previous_key}"


def _history_starts(start: dt.date, listing_date: dt.date | None) -> dt.date:
    """The first session a complete history from `start` holds (not before the listing date)."""
    first = max(start, listing_date) if listing_date else start
    return calendar.session_on_or_after(first)


def _reaches(earliest: dt.date | None, first_session: dt.date) -> bool:
    return earliest is not None and earliest <= first_session


def done_symbols(store, start: dt.date, end: dt.date) -> set[str]:
    """Symbols a recorded backfill covering [start, end] fetched, or failed for a final reason. A chunk whose
    rows are not stored (its data file neither in raw-data/ nor folded into its month's compacted file, as
    that file's record says: dataset/compact.py) counts only for the symbols it failed for a final reason."""
    done: set[str] = set()
    stored = _stored_chunks(store)
    for key, record in backfill_records(store):
        covers = record.covers
        if covers is None:
            raise CorruptFileError(key, "no start/end dates in a backfill record")
        if covers[0] <= start and end <= covers[1]:
            reasons = record.failure_reasons
            rows_kept = record.s3_key is None or stored(record.s3_key)
            done.update(s for s in record.symbols or ()
                        if (reasons.get(s) is None and rows_kept) or reasons.get(s) in FINAL)
    return done


def _stored_chunks(store) -> Callable[[str], bool]:
    """Whether a backfill chunk's data file is stored: listed, or folded into its month's compacted file (a
    compacted file with no record of what it folded: assumed to hold it, as rerun-failed does)."""
    from ..dataset.compact import folded_backfill

    listed = set(store.list(layout.RAW_DATA_PREFIX))
    records: dict[str, dict[str, list[int]] | None] = {}

    def stored(data_key: str) -> bool:
        if data_key in listed:
            return True
        parsed = layout.parse_backfill_data_key(data_key)
        if parsed is None:
            return True  # not a key this version writes: nothing to say about it
        month_key = layout.compacted_data_key(parsed[0].strftime("%Y-%m"))
        if month_key not in listed:
            return False
        if month_key not in records:
            records[month_key] = folded_backfill(store, month_key)
        folded = records[month_key]
        return folded is None or parsed[1] in folded.get(parsed[0].isoformat(), ())

    return stored


def backfill_records(store) -> list[tuple[str, manifest.Record]]:
    """(key, record) of every runs/D/backfill-N.json; CorruptFileError for one that is not a record."""
    return [(key, manifest.parse(store.get(key), key))
            for key in store.list(layout.RUNS_PREFIX) if layout.parse_backfill_manifest_key(key)]


def next_number(store, day: dt.date) -> int:
    """The next chunk number of day D: after the last recorded one (an unrecorded data file is overwritten)."""
    numbers = [parsed[1] for key in store.list(layout.run_prefix(day))
               if (parsed := layout.parse_backfill_manifest_key(key)) and parsed[0] == day]
    return max(numbers) + 1 if numbers else 0


# ---------------------------------------------------------------------------------------------- fetching


SKIPPED_SHOWN = 10  # symbols a resumed backfill names as skipped before "and N more"


def backfill(
    store,
    start: dt.date,
    end: dt.date | None,
    settings,
    *,
    symbols: list[str] | None = None,
    missing: bool = False,
    observer: Observer | None = None,
    fetcher: Callable | None = None,
    sleep: Callable[[float], None] | None = None,
    pacer=None,
    wait: bool = False,
) -> "Report":
    """Plan, then fetch and commit chunk after chunk, under the lock of the day its records are filed under
    (`end`); what it did (Report; its to_document() is the `backfill --json` document).

    fetcher, sleep, pacer: the edges (default yahoo.fetch, time.sleep, the settings' pacer).
    """
    end = end or default_end(store)
    check_range(start, end)
    with day_writer(store, end, "backfill", wait=wait) as writer:
        return _backfill(writer, start, end, settings, symbols, missing, observer, fetcher, sleep, pacer)


def _backfill(writer: Writer, start: dt.date, end: dt.date, settings, symbols: list[str] | None, missing: bool,
              observer: "Observer | None", fetcher: Callable | None, sleep: Callable[[float], None] | None,
              pacer) -> "Report":
    from ..fetch import pacing

    store = writer.store
    started = time.monotonic()
    observer = observer or Observer()
    work = plan(store, start, end, symbols, missing=missing)
    if work.done:
        shown = " ".join(work.done[:SKIPPED_SHOWN])
        more = f" and {len(work.done) - SKIPPED_SHOWN} more" if len(work.done) > SKIPPED_SHOWN else ""
        observer.note(f"{len(work.done)} symbol{'' if len(work.done) == 1 else 's'} already backfilled over "
                      f"{start}..{end}, skipped: {shown}{more}")
    sleep = sleep or time.sleep
    pacer = pacer or pacing.pacer_for(settings, sleep=sleep)
    if fetcher is None and work.todo:
        yahoo.prepare(work.todo, settings.cache_dir, allow_plain_requests=settings.allow_plain_requests)
        fetcher = yahoo.fetch

    observer.started(len(work.todo))
    records: list[manifest.Record] = []
    homes = home_batches(store, end)
    try:
        for chunk in _chunks(work.todo, settings.batch_size):
            records.append(_fetch_chunk(writer, work, chunk, settings, homes, pacer=pacer, sleep=sleep,
                                        fetcher=fetcher, observer=observer))
    except KeyboardInterrupt:
        recorded = sum(len(record.symbols or ()) for record in records)
        raise Interrupted(
            f"backfill interrupted: {recorded:,} of {len(work.todo):,} symbols done and recorded "
            f"(runs/{work.end.isoformat()}/backfill-N.json); run the same command again to fetch the rest"
        ) from None
    return Report(work, records, time.monotonic() - started)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for index in range(0, len(items), size):
        yield items[index:index + size]


def _fetch_chunk(writer: Writer, work: Plan, chunk: list[str], settings, homes: dict[str, int], *, pacer, sleep,
                 fetcher, observer: Observer) -> manifest.Record:
    from ..dataset.actions import symbols_with_news
    from ..dataset.aggregate import earliest_rows
    from ..fetch import restate
    from ..fetch.batch import fetch_symbol

    started = time.monotonic()
    number = next_number(writer.store, work.end)
    reported = threading.Lock()  # symbol_done is called from the fetching threads, one at a time

    def fetch(code: str, first: dt.date, last: dt.date):
        # a row keeps its symbol's own batch (the latest list's); a symbol no list holds, the chunk's number
        return fetch_symbol(code, first, last, homes.get(code, number), settings, pacer=pacer, sleep=sleep,
                            fetcher=fetcher)

    def fetch_one(code: str):
        result = fetch(code, work.start, work.end)
        with reported:
            observer.symbol_done(code, result.failure)
        return result

    results = _fetch_all(chunk, fetch_one, min(settings.concurrency, len(chunk)), f"backfill-{number}")
    # an action the store did not know, with rows stored before the backfill's range: those are fetched
    # again too, as the daily fetch does (fetch/restate.py); the commit stores the actions after the rows
    news = symbols_with_news(writer.store, restate.with_actions(results))
    firsts = earliest_rows(writer.store, sorted(news)) if news else {}
    results = restate.restate(results, work.start, work.end, news=news, first_dates=firsts, refetch=fetch).results
    return writer.commit_backfill(work.end, number, work.start, chunk, results,
                                  execution_time=time.monotonic() - started, fetched_at=schema.utc_timestamp())


def home_batches(store, day: dt.date) -> dict[str, int]:
    """{symbol: its batch} in the latest ASX list up to `day` (none: empty)."""
    days = sorted(d for key in store.list(layout.SYMBOLS_PREFIX) if (d := layout.parse_symbols_key(key)) and d <= day)
    if not days:
        return {}
    return {listing.symbol: listing.batch_number for listing in read_symbols(store, days[-1])}


def _fetch_all(codes: list[str], fetch_one: Callable, workers: int, name: str) -> list:
    """fetch_one of every code, `workers` at a time (each worker keeps its own --delay; all share the run's
    --rate budget), in the order of `codes`. On an interruption the symbols not started are dropped; those
    in flight finish, so what was fetched is whole."""
    from ..fetch.batch import symbol_threads

    with symbol_threads(workers, name) as pool:
        if pool is None:
            return [fetch_one(code) for code in codes]
        futures = [pool.submit(fetch_one, code) for code in codes]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise


@dataclasses.dataclass(frozen=True)
class Report:
    """What a backfill did: its plan and the records of the chunks it committed."""

    plan: Plan
    records: list[manifest.Record]
    execution_time: float

    @property
    def failure_reasons(self) -> dict[str, str]:
        reasons: dict[str, str] = {}
        for record in self.records:
            reasons.update(record.failure_reasons)
        return dict(sorted(reasons.items()))

    @property
    def symbols_fetched(self) -> int:
        return sum(record.symbols_fetched for record in self.records)

    @property
    def rows_written(self) -> int:
        return sum(record.details.get("rows", 0) for record in self.records)

    @property
    def data_keys(self) -> list[str]:
        return [record.s3_key for record in self.records if record.s3_key]

    @property
    def outcome(self) -> Outcome:
        """PARTIAL when some symbol failed (recorded: the same command fetches it again), else COMPLETE."""
        return Outcome.PARTIAL if self.failure_reasons else Outcome.COMPLETE

    def to_document(self) -> dict:
        """The `backfill --json` document."""
        work = self.plan
        reasons = self.failure_reasons
        return {
            "statusCode": 200,
            "symbols": work.todo,
            "metadata": {
                "start": work.start.isoformat(),
                "end": work.end.isoformat(),
                "chosen_by": work.chosen_by,
                "symbols_asked": work.asked,
                "skipped_done": work.done,
                "symbols_fetched": self.symbols_fetched,
                "symbols_failed": sorted(reasons),
                "failure_reasons": reasons,
                "rows_written": self.rows_written,
                "s3_keys": self.data_keys,
                "records": [layout.backfill_manifest_key(work.end, record.backfill_number) for record in self.records],
                "execution_time": round(self.execution_time, 3),
            },
        }
