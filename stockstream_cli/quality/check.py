"""`check`: is every expected row in the store, and does what is there look right?

A dataset users run unattended for years must say which rows are missing and why (listed later, suspended,
fetch failed, unexplained, never fetched), and which look wrong (BIG_MOVE, STALE_SESSIONS, broken OHLC),
from the store alone: FetchKeys lists the records once and reads a span's, read_lists a span's lists and
read_raw_rows its rows (a span of CHUNK_SESSIONS sessions at a time, so memory follows the span, not the range), the rest
are pure functions over what was read. The reasons and rules are in the README (check). No typer or rich
here: run-local and the Lambda handlers call `check` / `check_day`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .. import calendar, hints
from ..dataset import layout
from ..dataset import manifest
from ..dataset.summary import part_covers
from ..errors import InputError, StockstreamError, named
from ..settings import DEFAULT_LOOKBACK_DAYS
from ..values import check_range
from .. import outcome as outcomes
from ..thresholds import BIG_MOVE, STALE_SESSIONS

if TYPE_CHECKING:
    import polars as pl

CONTEXT_SESSIONS = STALE_SESSIONS  # sessions read before the range so its first days can be judged
CHUNK_SESSIONS = 21  # sessions judged at once (about a month): what bounds check's memory, not the range
PRICE_FIELDS = ("open", "high", "low", "close", "adjusted_close")
VALUE_FIELDS = (*PRICE_FIELDS, "volume")

EXPECTED_REASONS = ("listed_after", "suspended")
UNEXPECTED_MISSING = ("fetch_failed", "unexplained", "not_fetched")
MISSING_REASONS = (*UNEXPECTED_MISSING, *EXPECTED_REASONS)
SUSPICIOUS_KINDS = ("big_move", "stale", "ohlc")


# ---------------------------------------------------------------------------------------------- entry points


def check_day(store, day: dt.date, *, lookback_days: int = DEFAULT_LOOKBACK_DAYS,
              symbols: list[str] | None = None) -> dict:
    """The check of one day (of `symbols` alone when given), for run-local's (or the state machine's)
    data-quality step."""
    return check(store, day, day, lookback_days=lookback_days, symbols=symbols)


def check(store, start: dt.date, end: dt.date, *, symbols: list[str] | None = None,
          lookback_days: int = DEFAULT_LOOKBACK_DAYS, chunk_sessions: int = CHUNK_SESSIONS) -> dict:
    """Check the store over [start, end]; returns the `check --json` document (its "complete" says it all).

    The range is judged a span of `chunk_sessions` sessions at a time (spans_of), each reading only its own
    lists and rows; what one span hands the next (the rows the suspicious-data rules look back on, the lists
    after it) makes the document exactly what one span over the whole range gives.
    """
    from ..dataset.aggregate import DataAggregator

    check_range(start, end)
    sessions = calendar.sessions(start, end)
    lookback = dt.timedelta(days=max(lookback_days, 1) - 1)
    list_keys = read_list_keys(store)
    if not list_keys and not symbols:
        raise InputError(f"no ASX list in {store.uri}: run `{hints.command('symbols')}` first, or name {named('symbols')}")
    context_start = calendar.sessions_before(start, CONTEXT_SESSIONS)[0] if sessions else start
    spans = spans_of(sessions, context_start, end, chunk_sessions)
    considered = considered_dates(sorted(list_keys), start, end)
    list_reader = ListReader(store)
    beyond = later_listings(list_reader, list_keys, considered, [span.last for span in spans])
    fetch_keys = FetchKeys.listed(store)
    read_records: list[FetchRecord] = []  # the spans' records that were read (those of spans missing rows)
    reader = DataAggregator(store)
    found, tails, universe, listed = Findings(), {}, None, set()
    for span in spans:
        lists = read_lists(list_reader, list_keys, considered, span, lookback, beyond[span.last])
        if universe is None:
            listed = _expected_symbols(sessions[:1], lists, symbols)
            universe = sorted(listed | set(symbols or ()))
        fetches = _reading(read_records, fetch_keys.read, store, max(span.first, start), min(span.last, end),
                           lookback, list_keys)  # read only when the span misses rows: what judges them
        tails = _check_span(found, span, start, end, lists, fetches, reader, universe, symbols, tails,
                            final=span is spans[-1])
    classified = classify(found.judged, lambda names: _earliest_rows(store, names))
    actions = _actions_in(store, universe, context_start, end)
    revisions, restated = split_restatements(sorted(found.revisions, key=_symbol_and_date), actions)
    unlisted = sorted(set(symbols or ()) - listed) if list_keys else []
    document = _document(start, end, sessions, universe, unlisted, found, classified, revisions)
    # the runs asked for part of their day, where that bears on a missing row (the spans whose records were read)
    partial = {day.isoformat(): part for record in read_records for day, part in sorted(record.parts.items())
               if start <= day <= end}
    repaired = _repaired_in(store, universe, start, end)
    return {**document, "restated_count": len(restated), "restated": restated,
            "actions": _action_list(actions, start, end), "partial_runs": partial,
            "repaired_count": len(repaired), "repaired": repaired}


def _reading(kept: list, read: Callable[..., "FetchRecord"], *args) -> Callable[[], "FetchRecord"]:
    """read(*args) when called, its record kept in `kept`."""
    def reader() -> "FetchRecord":
        record = read(*args)
        kept.append(record)
        return record

    return reader


def _repaired_in(store, symbols: list[str], start: dt.date, end: dt.date) -> list[dict]:
    """The days of the range stored repaired (Yahoo's unit errors: quality/reverify.py), counted apart."""
    from ..dataset.repairs import load_repairs

    frame = load_repairs(store, symbols or None, start, end)
    return [{"symbol": s, "date": d.isoformat(), "reported_close": r, "close": c}
            for s, d, r, c in frame.select("symbol", "date", "reported_close", "close").iter_rows()]


@dataclasses.dataclass(frozen=True)
class Span:
    """A stretch of the range checked at once: its sessions, and every day whose rows it reads."""

    first: dt.date  # the range's context start for the first span, else its first session
    last: dt.date  # the day before the next span's first session; the range's end for the last span
    sessions: list[dt.date]


def spans_of(sessions: list[dt.date], context_start: dt.date, end: dt.date, size: int) -> list[Span]:
    """[context_start, end] cut into consecutive spans of `size` sessions: each day in exactly one span."""
    groups = [sessions[i:i + max(size, 1)] for i in range(0, len(sessions), max(size, 1))] or [[]]
    starts = [context_start] + [group[0] for group in groups[1:]]
    lasts = [first - dt.timedelta(days=1) for first in starts[1:]] + [end]
    return [Span(first, last, group) for first, last, group in zip(starts, lasts, groups)]


@dataclasses.dataclass
class Findings:
    """What the spans found so far, summed as check goes through them."""

    expected_rows: int = 0
    present_rows: int = 0
    judged: list["Judged"] = dataclasses.field(default_factory=list)
    suspicious: dict[str, list[dict]] = dataclasses.field(default_factory=lambda: {k: [] for k in SUSPICIOUS_KINDS})
    revisions: list[dict] = dataclasses.field(default_factory=list)
    lists_used: set[dt.date] = dataclasses.field(default_factory=set)


def _check_span(found: Findings, span: Span, start: dt.date, end: dt.date, lists: "ListsInForce",
                fetches: Callable[[], "FetchRecord"], reader, universe: list[str], symbols: list[str] | None,
                tails: dict[str, list[dict]], *, final: bool) -> dict[str, list[dict]]:
    """Adds one span's findings to `found`; returns the tails the next span's suspicious-data rules need."""
    from ..dataset.newest import newest_rows

    raw = read_raw_rows(reader, span.first, span.last, universe)
    newest = newest_rows(raw)
    found.revisions.extend(find_revisions(raw, start, end))
    del raw  # every fetch of every row (5 per row with a 5-day lookback): let it go before the next step
    expected = _expected_rows(span.sessions, lists, symbols)
    present = newest.filter(_dated_within(start, end)).select("symbol", "date")
    missing = expected.join(present, on=["symbol", "date"], how="anti")
    found.expected_rows += expected.height
    found.present_rows += expected.height - missing.height
    if missing.height:
        found.judged.extend(judge_missing(zip(missing["symbol"].to_list(), missing["date"].to_list()), lists,
                                          fetches()))
    found.lists_used.update(d for day in span.sessions for d in lists.list_dates_used(day))
    suspicious, tails = judge_rows(newest, tails, start, end, final=final)
    for kind, items in suspicious.items():
        found.suspicious[kind].extend(items)
    return tails


def _dated_within(start: dt.date, end: dt.date) -> "pl.Expr":
    import polars as pl

    return pl.col("date").is_between(start, end)


def _expected_on(day: dt.date, lists: "ListsInForce", symbols: list[str] | None) -> set[str]:
    listed = lists.symbols_on(day)
    wanted = set(symbols) if symbols else None
    if listed is None:  # no list in the store at all: the named symbols are expected every session
        return wanted or set()
    return listed if wanted is None else listed & wanted


def _expected_symbols(sessions: list[dt.date], lists: "ListsInForce", symbols: list[str] | None) -> set[str]:
    """Every symbol expected on some session of the range, from its first session (`sessions[:1]`): a symbol
    expected on a session is expected on every earlier one too (it is in a list in force then, or later)."""
    return _expected_on(sessions[0], lists, symbols) if sessions else set()


def _expected_rows(sessions: list[dt.date], lists: "ListsInForce", symbols: list[str] | None) -> "pl.DataFrame":
    """(symbol, date) of every row expected on these sessions, one each."""
    import polars as pl

    names, dates = [], []
    for day in sessions:
        expected = sorted(_expected_on(day, lists, symbols))
        names.extend(expected)
        dates.extend([day] * len(expected))
    return pl.DataFrame({"symbol": names, "date": dates}, schema={"symbol": pl.String, "date": pl.Date})


def _symbol_and_date(item: dict) -> tuple[str, str]:
    return item["symbol"], item["date"]


# ---------------------------------------------------------------------------------------------- the lists


def read_list_keys(store) -> dict[dt.date, str]:
    """list date -> its symbols/D-symbols.csv key, for every list in the store (listed, not read)."""
    return {day: key for key in store.list(layout.SYMBOLS_PREFIX) if (day := layout.parse_symbols_key(key))}


class ListReader:
    """The stored lists as one check reads them: symbol -> Listing. A day's list mostly repeats the one before
    it, so a line equal to a line of the list read last gives back that line's Listing, parsed once: a list
    then costs its split into lines, and the lists of a span share their listings instead of each holding
    1,838 of its own. Only the lines of the last list read are kept (memory does not follow the range)."""

    def __init__(self, store):
        self.store = store
        self._last: dict[bytes, Any] = {}  # line -> its Listing, of the list read last
        self._data, self._read = b"", {}  # the list read last, and what it gave

    def read(self, key: str) -> dict[str, Any]:
        data = self.store.get(key)
        if data != self._data:
            self._read = self._parse(data, key)
            self._data = data
        return self._read

    def _parse(self, data: bytes, key: str) -> dict[str, Any]:
        from ..dataset.symbols import from_csv

        header, _, body = data.partition(b"\n")
        lines = [line for line in body.split(b"\n") if line.strip()]
        if data.count(b'"') % 2 or b"\r" in data:  # a quoted line break, or CRLF: the CSV reader alone knows
            self._last = {}
            return {item.symbol: item for item in from_csv(data, key)}
        new = [line for line in lines if line not in self._last]
        if new:
            try:
                parsed = from_csv(header + b"\n" + b"\n".join(new) + b"\n", key)
            except Exception:  # noqa: BLE001 - the whole list read again names the right line
                parsed = from_csv(data, key)
            if len(parsed) != len(new):
                self._last = {}
                return {item.symbol: item for item in from_csv(data, key)}
            known = {**self._last, **dict(zip(new, parsed))}
        else:
            known = self._last
        self._last = {line: known[line] for line in lines}
        if not lines:
            from_csv(data, key)  # raises: a list without rows is corrupt
        return {listing.symbol: listing for listing in self._last.values()}


def read_lists(lists: ListReader, keys: dict[dt.date, str], considered: list[dt.date], span: "Span",
               lookback: dt.timedelta, beyond: dict[str, Any]) -> "ListsInForce":
    """The lists a span needs, each read once: the considered lists from the one in force on its first session
    to its last day, and those of the run days whose fetches covered it; `beyond`: the considered lists after
    the span, merged (later_listings)."""
    dates = sorted(keys)
    first = span.sessions[0] if span.sessions else span.first
    in_force = _in_force(dates, first)
    needed = {d for d in considered if (in_force is None or d >= in_force) and d <= span.last}
    needed |= {d for d in dates if first <= d <= span.last + lookback}
    listings = {d: lists.read(keys[d]) for d in sorted(needed)}
    return ListsInForce(dates, considered, listings, beyond=beyond, horizon=span.last)


def later_listings(lists: ListReader, keys: dict[dt.date, str], considered: list[dt.date],
                   horizons: list[dt.date]) -> dict[dt.date, dict[str, Any]]:
    """horizon -> the considered lists dated after it merged, each symbol with its earliest such list's
    details: what a span ending at the horizon knows of the lists after it without holding them all."""
    merged: dict[str, Any] = {}
    pending = sorted(set(horizons), reverse=True)
    found: dict[dt.date, dict[str, Any]] = {}
    for list_date in reversed([d for d in considered if pending and d > pending[-1]]):
        while pending and pending[0] >= list_date:
            found[pending.pop(0)] = dict(merged)
        merged.update(lists.read(keys[list_date]))
    found.update({horizon: dict(merged) for horizon in pending})
    return found


def considered_dates(dates: list[dt.date], start: dt.date, end: dt.date) -> list[dt.date]:
    """The lists that say who is expected over [start, end]: those in force over it, and the latest."""
    first = _in_force(dates, start)
    in_range = [d for d in dates if (first is None or d >= first) and d <= end]
    return sorted(set(in_range) | ({dates[-1]} if dates else set()))


def _in_force(dates: list[dt.date], day: dt.date) -> dt.date | None:
    earlier = [d for d in dates if d <= day]
    return earlier[-1] if earlier else None


class ListsInForce:
    """Who is expected on a day, from the lists read_lists read (pure: it reads nothing itself).

    The list in force on day S is the latest list dated on or before S. A symbol that is not in it but
    appears in a later list (a new listing, a company the source's list had left out, every symbol for days
    before the store's first list) is expected too, with the listing details of its first later list: its
    listing date then says whether it traded yet. Only the lists in force over the range and the latest
    list are considered, so a check of a month reads about a month of lists. A span's ListsInForce holds the
    considered lists up to its `horizon` and, merged in `beyond`, those after it.
    """

    def __init__(self, dates: list[dt.date], considered: list[dt.date], listings: dict[dt.date, dict[str, Any]],
                 *, beyond: dict[str, Any] | None = None, horizon: dt.date | None = None):
        self.dates = dates  # every list in the store
        self._considered = considered
        self._listings = listings  # list date -> symbol -> Listing, for the lists read
        self._beyond = beyond or {}  # the considered lists after `horizon`, merged (later_listings)
        self._horizon = horizon
        self._suffix: dict[int, dict[str, Any]] = {}
        self._merged: dict[tuple[dt.date | None, int], dict[str, Any]] = {}

    def in_force_date(self, day: dt.date) -> dt.date | None:
        return _in_force(self.dates, day)

    def list_dates_used(self, day: dt.date) -> list[dt.date]:
        in_force = self.in_force_date(day)
        return ([in_force] if in_force else []) + [d for d in self._considered if d > day][:1]

    def listings_of(self, list_date: dt.date) -> dict[str, Any]:
        return self._listings[list_date]

    def on(self, day: dt.date) -> dict[str, Any] | None:
        """symbol -> Listing expected on `day`; None when the store holds no list."""
        if not self.dates:
            return None
        in_force = self.in_force_date(day)
        index = self._later_index(day)
        if (in_force, index) not in self._merged:
            later = self._later_than(index)
            self._merged[(in_force, index)] = {**later, **self.listings_of(in_force)} if in_force else later
        return self._merged[(in_force, index)]

    def symbols_on(self, day: dt.date) -> set[str] | None:
        listed = self.on(day)
        return None if listed is None else set(listed)

    def _later_index(self, day: dt.date) -> int:
        return next((i for i, d in enumerate(self._considered) if d > day), len(self._considered))

    def _later_than(self, index: int) -> dict[str, Any]:
        """Symbols of the considered lists from `index` on, each with its earliest such list's details."""
        if index not in self._suffix:
            merged = dict(self._beyond)
            held = [d for d in self._considered[index:] if self._horizon is None or d <= self._horizon]
            for list_date in reversed(held):
                merged.update(self.listings_of(list_date))
            self._suffix[index] = merged
        return self._suffix[index]

    def exact(self, day: dt.date) -> dict[str, Any] | None:
        """The list written on `day` itself (batch membership of that day's run), or None."""
        return self._listings.get(day)  # read_lists read every list a run day in the window may have


# ---------------------------------------------------------------------------------------------- what was fetched


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one run or backfill made of one symbol: 'ok', a failure reason, or 'batch_failed'."""

    source: str  # "run 2026-11-03 batch 4" / "backfill 2026-11-25 #0"
    result: str
    window_start: dt.date  # the first day that fetch asked Yahoo for

    @property
    def ok(self) -> bool:
        return self.result == "ok"


def read_fetches(store, start: dt.date, end: dt.date, lookback: dt.timedelta,
                 list_dates: Iterable[dt.date]) -> "FetchRecord":
    """The manifests of the runs whose fetch window covered [start, end], and every backfill's, each read
    once; `list_dates`: the days the store has a list of (a run day even where no batch left a result)."""
    return FetchKeys.listed(store).read(store, start, end, lookback, list_dates)


@dataclasses.dataclass(frozen=True)
class FetchKeys:
    """Where the records are (runs/ listed once), and every backfill's record, read: a span's FetchRecord then
    reads only the batch records of the runs that covered it, so check holds a span's records at a time."""

    batches: dict[dt.date, dict[int, str]]  # run day -> batch number -> its record's key
    backfills: list[tuple[str, manifest.Record]]

    @classmethod
    def listed(cls, store) -> "FetchKeys":
        batches: dict[dt.date, dict[int, str]] = defaultdict(dict)
        backfills: list[tuple[str, manifest.Record]] = []
        for key in store.list(layout.RUNS_PREFIX):
            if parsed := layout.parse_batch_manifest_key(key):
                batches[parsed[0]][parsed[1]] = key
            elif parsed_backfill := layout.parse_backfill_manifest_key(key):
                label = f"backfill {parsed_backfill[0]} #{parsed_backfill[1]}"
                backfills.append((label, _read_record(store, key)))
        return cls(dict(batches), backfills)

    def read(self, store, start: dt.date, end: dt.date, lookback: dt.timedelta,
             list_dates: Iterable[dt.date]) -> "FetchRecord":
        """The FetchRecord of the days [start, end]: the batch records of the runs of [start, end + lookback]."""
        last_run = end + lookback
        batches = {day: {number: _read_record(store, key) for number, key in numbers.items()}
                   for day, numbers in self.batches.items() if start <= day <= last_run}
        run_days = sorted(set(batches) | {d for d in list_dates if start <= d <= last_run})
        return FetchRecord(lookback, batches, self.backfills, run_days, _parts(store, run_days))


def _parts(store, run_days: Iterable[dt.date]) -> dict[dt.date, dict]:
    """The run days whose run was asked for part of the day (run.json "part"): what each asked for."""
    from ..dataset.summary import asked_part, stored_run

    return {day: part for day in run_days if (part := asked_part(stored_run(store, day))) is not None}


@dataclasses.dataclass(frozen=True)
class FetchRecord:
    """What the manifests (runs/D/batch-N.json, runs/D/backfill-N.json) say of how each day was fetched:
    read by read_fetches, judged here without reading anything."""

    lookback: dt.timedelta
    batches: dict[dt.date, dict[int, manifest.Record]]
    backfills: list[tuple[str, manifest.Record]]
    run_days: list[dt.date]
    parts: dict[dt.date, dict] = dataclasses.field(default_factory=dict)  # run days that fetched a part only

    def outcomes(self, symbol: str, day: dt.date, lists: ListsInForce) -> list[Outcome]:
        found = [o for run_day in self._runs_covering(day) if (o := self._run_outcome(symbol, run_day, lists))]
        for label, record in self.backfills:
            covers = record.covers
            if covers and covers[0] <= day <= covers[1] and symbol in (record.symbols or ()):
                found.append(Outcome(label, record.failure_reasons.get(symbol, "ok"), covers[0]))
        return found

    def _runs_covering(self, day: dt.date) -> list[dt.date]:
        return [run_day for run_day in self.run_days if day <= run_day <= day + self.lookback]

    def _run_outcome(self, symbol: str, run_day: dt.date, lists: ListsInForce) -> Outcome | None:
        manifests = self.batches.get(run_day, {})
        for number, record in sorted(manifests.items()):
            if symbol in record.failure_reasons:
                return Outcome(f"run {run_day} batch {number}", record.failure_reasons[symbol],
                               self._window_start(run_day, record))
        listed = lists.exact(run_day)
        if listed is None or symbol not in listed:
            return None
        number = listed[symbol].batch_number
        if not part_covers(self.parts.get(run_day), symbol, number):
            return None  # that run was asked for part of the day only, not this symbol: it did not cover it
        if number in manifests:
            return Outcome(f"run {run_day} batch {number}", "ok", self._window_start(run_day, manifests[number]))
        return Outcome(f"run {run_day} batch {number}", "batch_failed", run_day - self.lookback)

    def _window_start(self, run_day: dt.date, record: manifest.Record) -> dt.date:
        return record.window[0] if record.window is not None else run_day - self.lookback


def _read_record(store, key: str) -> manifest.Record:
    """A batch or backfill record as check reads it: without its per-symbol details (a year holds ~5,000
    records: keeping each whole took ~1 GB), and a batch's without its members (check finds those in the
    lists; a backfill chunk's symbols are what it covered)."""
    record = manifest.parse(store.get(key), key, details=False)
    return record if record.batch_number is None else dataclasses.replace(record, symbols=None)


@dataclasses.dataclass(frozen=True)
class Judged:
    """One missing (symbol, day) under the first reason its span's lists and the manifests give."""

    reason: str
    item: dict  # {"symbol", "date", "detail"}, as the document lists it
    day: dt.date
    maybe_before_history: bool  # unexplained, though a fetch asked from before the day: did it trade yet?


def judge_missing(missing: Iterable[tuple[str, dt.date]], lists: "ListsInForce",
                  fetches: "FetchRecord") -> list[Judged]:
    judged = []
    for symbol, day in missing:
        reason, detail, asked_from = _reason(symbol, day, lists, fetches)
        item = {"symbol": symbol, "date": day.isoformat(), "detail": detail}
        before = reason == "unexplained" and asked_from is not None and asked_from < day
        judged.append(Judged(reason, item, day, before))
    return judged


def classify(judged: Iterable[Judged],
             history_starts: Callable[[list[str]], dict[str, dt.date]] | None = None) -> dict[str, list[dict]]:
    """Each missing row listed under its reason, sorted by symbol then date.

    history_starts(symbols) -> each symbol's earliest stored date: a day a fetch asked for, before the
    symbol's stored history begins, is a day it did not trade yet (listed_after), not an unexplained gap.
    """
    judged = list(judged)
    classified: dict[str, list[dict]] = {reason: [] for reason in MISSING_REASONS}
    before_history = [one for one in judged if one.maybe_before_history]
    for one in judged:
        if not one.maybe_before_history:
            classified[one.reason].append(one.item)
    names = sorted({one.item["symbol"] for one in before_history})
    firsts = history_starts(names) if before_history and history_starts else {}
    for one in before_history:
        first = firsts.get(one.item["symbol"])
        if first is not None and one.day < first:
            classified["listed_after"].append({**one.item, "detail": f"fetched fine; its history starts {first.isoformat()}"})
        else:
            classified["unexplained"].append(one.item)
    for items in classified.values():
        items.sort(key=_symbol_and_date)
    return classified


def _reason(symbol: str, day: dt.date, lists: ListsInForce,
            fetches: FetchRecord) -> tuple[str, str, dt.date | None]:
    """(reason, detail, for 'unexplained' the earliest day a successful fetch over `day` asked for)."""
    listing = (lists.on(day) or {}).get(symbol)
    if listing is not None and listing.listing_date is not None and listing.listing_date > day:
        return "listed_after", f"listed {listing.listing_date.isoformat()}", None
    if listing is not None and listing.market_cap is None:
        return "suspended", "no market cap in the list in force", None
    outcomes = fetches.outcomes(symbol, day, lists)
    fetched = [o for o in outcomes if o.ok]
    if fetched:
        asked_from = min(o.window_start for o in fetched)
        return "unexplained", f"{fetched[-1].source} fetched it without a bar for this day", asked_from
    if outcomes:
        last = outcomes[-1]
        result = "batch failed" if last.result == "batch_failed" else last.result
        return "fetch_failed", f"{result} ({last.source})", None
    partial = [run_day for run_day in fetches._runs_covering(day) if run_day in fetches.parts]
    if partial:
        return "not_fetched", f"the run of {partial[-1].isoformat()} was asked for part of that day only", None
    return "not_fetched", "no run or backfill covered this day", None


# ---------------------------------------------------------------------------------------------- the rows


def read_raw_rows(reader, start: dt.date, end: dt.date, symbols: list[str] | None = None) -> "pl.DataFrame":
    """Every stored fetch (not only the newest) of rows dated in [start, end], of `symbols` when given.

    `reader`: the store's DataAggregator (its footer index kept from one span to the next); the files are
    the ones `load` reads (DataAggregator.load_fetches).
    """
    from ..schema import empty_frame

    if symbols is not None and not symbols:
        return empty_frame()
    return reader.load_fetches(symbols, start, end)


def _earliest_rows(store, symbols: list[str]) -> dict[str, dt.date]:
    from ..dataset.aggregate import earliest_rows

    return earliest_rows(store, symbols)


# ---------------------------------------------------------------------------------------------- suspicious data


def judge_rows(newest: "pl.DataFrame", tails: dict[str, list[dict]], start: dt.date, end: dt.date, *,
               final: bool) -> tuple[dict[str, list[dict]], dict[str, list[dict]]]:
    """The suspicious rows of one span of the newest rows, and the tails the next span needs.

    tails: symbol -> its rows before the span that the rules still look at: the run of zero-volume rows with
    one close it ended on (a stale run that may go on), or else its last row (what a big move compares to).
    A run still open at the span's end is judged by the span that ends it, or by the last (`final`).
    """
    import polars as pl

    found: dict[str, list[dict]] = {kind: [] for kind in SUSPICIOUS_KINDS}
    found["ohlc"] = _broken_ohlc(newest, start, end)
    tails = dict(tails)
    doubtful = _doubtful_symbols(newest, tails)
    for symbol, rows in _by_symbol(newest.filter(pl.col("symbol").is_in(doubtful))):
        judged, tails[symbol] = _judge_symbol(symbol, tails.get(symbol, []), rows, start, end, final=final)
        for kind, items in judged.items():
            found[kind].extend(items)
    plain = newest.filter(~pl.col("symbol").is_in(doubtful))
    for row in plain.group_by("symbol", maintain_order=True).last().rows(named=True):
        tails[row["symbol"]] = [row]  # what _judge_symbol leaves of a symbol with nothing to judge: its last row
    if final:
        for symbol, tail in tails.items():  # a run left open by a symbol without rows in the last span ends here
            found["stale"].extend(_stale_runs(symbol, tail, start, end))
        tails = {}
    return found, tails


def _doubtful_symbols(newest: "pl.DataFrame", tails: dict[str, list[dict]]) -> list[str]:
    """The symbols of the span whose rows the rules must look at one by one: a zero volume (a stale run may
    start), a close that moved more than BIG_MOVE from the row before (or that polars cannot compare), or a
    tail the span goes on from (an open run, or a move from the tail's close). Every other symbol has nothing
    to find, and only its last row is handed on: judging a year of the full list row by row took seconds."""
    import polars as pl

    if newest.is_empty():
        return []
    change = (pl.col("close") / pl.col("close").shift(1).over("symbol") - 1).abs()
    doubtful = set(newest.filter((pl.col("volume") == 0).fill_null(False) | (change > BIG_MOVE).fill_null(False)
                                 | ~change.is_finite().fill_null(True) & pl.col("close").shift(1).over("symbol").is_not_null())
                   ["symbol"].to_list())
    firsts = newest.group_by("symbol", maintain_order=True).first()
    for symbol, close in zip(firsts["symbol"].to_list(), firsts["close"].to_list()):
        tail = tails.get(symbol)
        if tail and (tail[-1]["volume"] == 0 or _moved(tail[-1]["close"], close)):
            doubtful.add(symbol)
    return sorted(doubtful)


def _moved(previous, close) -> bool:
    """Whether _big_moves may find a move from `previous` to `close` (True when it cannot be told here)."""
    try:
        return not previous or previous <= 0 or close is None or abs(close / previous - 1) > BIG_MOVE
    except (TypeError, ZeroDivisionError):
        return True


def sorted_suspicious(found: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """By symbol, then date (a stale run: its start), as one pass over the rows sorted by symbol lists them."""
    return {kind: sorted(items, key=lambda item: (item["symbol"], item.get("date") or item["start"]))
            for kind, items in found.items()}


def _judge_symbol(symbol: str, tail: list[dict], rows: list[dict], start: dt.date, end: dt.date, *,
                  final: bool) -> tuple[dict[str, list[dict]], list[dict]]:
    """One symbol's big moves and stale runs in a span (after its `tail`, judged before), and its tail after it."""
    judged = tail + rows
    runs = _zero_volume_runs(judged)
    still_open = not final and judged[-1]["volume"] == 0  # the last row is in the last run, which may go on
    closed = runs[:-1] if still_open else runs
    found = {
        "big_move": _big_moves(symbol, tail[-1:] + rows, start, end),
        "stale": [_stale_run(symbol, run) for run in closed if _is_stale(run, start, end)],
    }
    return found, [] if final else (runs[-1] if still_open else judged[-1:])


def _by_symbol(frame: "pl.DataFrame"):
    """(symbol, its rows as dicts in order) of a frame sorted by symbol, one symbol at a time: a year of the
    full list as dicts all at once would be ~0.5 GB."""
    if frame.is_empty():
        return
    runs = frame["symbol"].rle()
    offset = 0
    for length, symbol in zip(runs.struct.field("len").to_list(), runs.struct.field("value").to_list()):
        yield symbol, frame.slice(offset, length).rows(named=True)
        offset += length


def _big_moves(symbol: str, rows: list[dict], start: dt.date, end: dt.date) -> list[dict]:
    moves = []
    for before, row in zip(rows, rows[1:]):
        previous, close = before["close"], row["close"]
        if not (start <= row["date"] <= end) or not previous or previous <= 0 or close is None:
            continue
        change = close / previous - 1
        if abs(change) > BIG_MOVE:
            moves.append({"symbol": symbol, "date": row["date"].isoformat(), "previous_date": before["date"].isoformat(),
                          "previous_close": previous, "close": close, "change": round(change, 4)})
    return moves


def _stale_runs(symbol: str, rows: list[dict], start: dt.date, end: dt.date) -> list[dict]:
    """Runs of >= STALE_SESSIONS consecutive rows with one close and zero volume, overlapping the range."""
    return [_stale_run(symbol, run) for run in _zero_volume_runs(rows) if _is_stale(run, start, end)]


def _zero_volume_runs(rows: list[dict]) -> list[list[dict]]:
    """The longest runs of consecutive rows with zero volume and one close, in order (the last may end the rows)."""
    runs, current = [], []
    for row in rows:
        if row["volume"] == 0 and current and row["close"] == current[-1]["close"]:
            current.append(row)
            continue
        if current:
            runs.append(current)
        current = [row] if row["volume"] == 0 else []
    return runs + [current] if current else runs


def _is_stale(run: list[dict], start: dt.date, end: dt.date) -> bool:
    return len(run) >= STALE_SESSIONS and run[-1]["date"] >= start and run[0]["date"] <= end


def _stale_run(symbol: str, run: list[dict]) -> dict:
    return {"symbol": symbol, "start": run[0]["date"].isoformat(), "end": run[-1]["date"].isoformat(),
            "sessions": len(run), "close": run[0]["close"]}


def _broken_ohlc(newest: "pl.DataFrame", start: dt.date, end: dt.date) -> list[dict]:
    """The rows of the range that break ohlc_problem's rule; only rows polars cannot tell are plainly valid
    are handed to it (the rule itself stays in one place)."""
    doubtful = newest.filter(_dated_within(start, end) & ~_plainly_valid())
    return [{"symbol": row["symbol"], "date": row["date"].isoformat(), "problem": problem}
            for row in doubtful.rows(named=True) if (problem := ohlc_problem(row))]


def _plainly_valid() -> "pl.Expr":
    """True only for a row ohlc_problem passes: four finite prices above 0, low <= min(open, close),
    max(open, close) <= high, a volume null or not negative (null, NaN and infinity are never plainly valid)."""
    import polars as pl

    prices = [pl.col(name) for name in ("open", "high", "low", "close")]
    finite = pl.all_horizontal([price.is_finite().fill_null(False) for price in prices])
    ordered = ((pl.min_horizontal(prices) > 0) & (pl.col("low") <= pl.min_horizontal("open", "close"))
               & (pl.max_horizontal("open", "close") <= pl.col("high")))
    volume = pl.col("volume").is_null() | (pl.col("volume") >= 0)
    return (finite & ordered.fill_null(False) & volume.fill_null(False)).fill_null(False)


def ohlc_problem(row: dict) -> str | None:
    """What is wrong with a stored row's prices and volume, or None (schema.ohlc_problem: the rule clean_bars keeps)."""
    from ..schema import ohlc_problem as bar_problem

    return bar_problem(row["open"], row["high"], row["low"], row["close"], row.get("volume"))


# ---------------------------------------------------------------------------------------------- revisions


def find_revisions(raw: "pl.DataFrame", start: dt.date, end: dt.date) -> list[dict]:
    """(symbol, date) pairs whose stored fetches disagree: which fields changed, oldest and newest value."""
    import polars as pl

    in_range = raw.filter(pl.col("date").is_between(start, end))
    distinct = in_range.unique(subset=["symbol", "date", *VALUE_FIELDS])
    revised = distinct.group_by(["symbol", "date"]).len().filter(pl.col("len") > 1).select("symbol", "date")
    if revised.is_empty():
        return []
    rows = in_range.join(revised, on=["symbol", "date"]).sort(["symbol", "date", "fetch_timestamp"])
    revisions = []
    for (symbol, day), group in rows.group_by(["symbol", "date"], maintain_order=True):
        oldest, newest = group.row(0, named=True), group.row(-1, named=True)
        changed = [f for f in VALUE_FIELDS if group[f].n_unique() > 1]
        revisions.append({
            "symbol": symbol, "date": day.isoformat(), "fetches": group.height, "fields": changed,
            "oldest": {f: oldest[f] for f in changed}, "newest": {f: newest[f] for f in changed},
        })
    return revisions


# ---------------------------------------------------------------------------------------------- restatements
# A restatement is not a revision: Yahoo restating history through a split or dividend (what
# fetch/restate.py stores on purpose) changes earlier rows in a known way, so it is counted apart.

RESTATEMENT_TOLERANCE = 1e-6  # relative: prices moved by one factor, within this


def _actions_in(store, symbols: list[str], start: dt.date, end: dt.date) -> "pl.DataFrame":
    from ..dataset.actions import load_actions

    return load_actions(store, symbols or None, start, None)  # actions after `end` restate rows of the range too


def split_restatements(revisions: list[dict], actions: "pl.DataFrame") -> tuple[list[dict], list[dict]]:
    """(revisions, restatements): a revised row is a restatement when the symbol has an action going ex after
    the row's date and the change is what such an action does: only adjusted_close changed (a dividend, or
    any action), or open/high/low/close all moved by one factor and a split goes ex after the row."""
    after: dict[str, list[tuple[dt.date, str]]] = defaultdict(list)
    for symbol, day, kind in zip(actions["symbol"].to_list(), actions["date"].to_list(), actions["kind"].to_list()):
        after[symbol].append((day, kind))
    kept, restated = [], []
    for revision in revisions:
        day = dt.date.fromisoformat(revision["date"])
        kinds = {kind for ex_date, kind in after.get(revision["symbol"], []) if ex_date > day}
        (restated if kinds and _explained(revision, kinds) else kept).append(revision)
    return kept, restated


def _explained(revision: dict, kinds: set[str]) -> bool:
    changed = set(revision["fields"])
    if changed <= {"adjusted_close"}:
        return True
    prices = {"open", "high", "low", "close"}
    if "split" not in kinds or not changed & prices:
        return False
    factors = [revision["newest"][f] / revision["oldest"][f] for f in changed & prices
               if revision["oldest"].get(f) and revision["newest"].get(f) is not None]
    unchanged_prices = prices - changed
    return (bool(factors) and not unchanged_prices
            and max(factors) - min(factors) <= RESTATEMENT_TOLERANCE * max(abs(f) for f in factors))


def _action_list(actions: "pl.DataFrame", start: dt.date, end: dt.date) -> list[dict]:
    return [{"symbol": s, "date": d.isoformat(), "kind": k, "value": v}
            for s, d, k, v in zip(actions["symbol"].to_list(), actions["date"].to_list(), actions["kind"].to_list(),
                                  actions["value"].to_list()) if start <= d <= end]


# ---------------------------------------------------------------------------------------------- the report


def _document(start: dt.date, end: dt.date, sessions: list[dt.date], universe: list[str], unlisted: list[str],
              found: Findings, classified: dict[str, list[dict]], revisions: list[dict]) -> dict:
    suspicious = sorted_suspicious(found.suspicious)
    failures = sum(len(classified[r]) for r in UNEXPECTED_MISSING)
    flagged = sum(len(items) for items in suspicious.values())
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "sessions": len(sessions),
        "symbols": len(universe),
        "expected_rows": found.expected_rows,
        "present_rows": found.present_rows,
        "complete": failures == 0 and flagged == 0,
        "missing_counts": {reason: len(classified[reason]) for reason in MISSING_REASONS},
        "missing": classified,
        "suspicious_counts": {kind: len(items) for kind, items in suspicious.items()},
        "suspicious": suspicious,
        "revisions_count": len(revisions),
        "revisions": revisions,
        "lists": sorted(d.isoformat() for d in found.lists_used),
        "unlisted_symbols": unlisted,
    }


def alert_message(document: dict) -> str | None:
    """One paragraph for an alert (SNS, a log line) when the check found the range incomplete, else None.

    For a data-quality step after the aggregate: `alert_message(check_day(store, day))`.
    """
    if document["complete"]:
        return None
    span = document["start"] if document["start"] == document["end"] else f"{document['start']}..{document['end']}"
    missing = [f"{n} {reason}" for reason, n in document["missing_counts"].items() if n and reason in UNEXPECTED_MISSING]
    flagged = [f"{n} {kind}" for kind, n in document["suspicious_counts"].items() if n]
    examples = [f"{i['symbol']} {i['date']}" for reason in UNEXPECTED_MISSING for i in document["missing"][reason]][:10]
    lines = [f"stockstream check {span}: {document['present_rows']:,} of {document['expected_rows']:,} rows present."]
    if missing:
        lines.append(f"Missing: {', '.join(missing)} (e.g. {', '.join(examples)}).")
    if flagged:
        lines.append(f"Suspicious: {', '.join(flagged)}.")
    lines.append(f"Details: {hints.command('check', '--start', document['start'], '--end', document['end'])}")
    return " ".join(lines)


def quality_summary(session: dt.date | None, document: dict | None) -> dict:
    """The small block a run records (run.json "quality") and the state machine branches on.

    session None (no session closed in the run's window): nothing checked, counted complete.
    """
    if session is None or document is None:
        return {"session": None, "complete": True, "missing": 0, "suspicious": 0, "alert": None}
    return {
        "session": session.isoformat(),
        "complete": document["complete"],
        "missing": sum(document["missing_counts"][reason] for reason in UNEXPECTED_MISSING),
        "suspicious": sum(document["suspicious_counts"].values()),
        "expected_rows": document["expected_rows"],
        "present_rows": document["present_rows"],
        "alert": alert_message(document),
    }


def run_quality(store, day: dt.date, run_started: "dt.datetime | str", *,
                lookback_days: int = DEFAULT_LOOKBACK_DAYS, note: Callable[[str], None] | None = None,
                symbols: list[str] | None = None, checked: Callable[[dt.date, dict], None] | None = None) -> dict:
    """The data-quality step after a run's aggregate: `check` of the session the run should have complete.

    Which session: calendar.session_to_check (the latest one closed when the run started, within its fetch
    window). Never raises: a check that could not run is recorded as {"session": ..., "complete": None,
    "error": "..."}, since it must not cost the run its summary. `note` hears the alert or the error;
    `symbols`: a run of part of the day is judged on what it was asked for; `checked(session, document)` gets
    the whole check (quality/reverify.py opens its suspicions).
    """
    note = note or (lambda message: None)
    started = aware_moment(run_started)
    session = None
    try:
        session = calendar.session_to_check(day, started, lookback_days)
        document = check_day(store, session, lookback_days=lookback_days, symbols=symbols) if session else None
    except Exception as error:  # noqa: BLE001 - any failure of the check is reported, never raised
        message = str(error) if isinstance(error, StockstreamError) else f"{type(error).__name__}: {error}"
        note(f"the data-quality check could not run: {message}")
        return {"session": session.isoformat() if session else None, "complete": None, "error": message}
    summary = quality_summary(session, document)
    if checked is not None and document is not None:
        checked(session, document)
    if summary["alert"]:
        note(f"data incomplete: {summary['alert']}")
    return summary


def aware_moment(moment: "dt.datetime | str") -> dt.datetime:
    """An ISO timestamp ("2026-11-25T20:00:00.123Z", as Step Functions and run.json write it) or a datetime."""
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment.strip().replace(" ", "T"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def outcome(document: dict) -> "outcomes.Outcome":
    """COMPLETE, or PARTIAL when something is missing (for a failure reason) or suspicious."""
    return outcomes.Outcome.COMPLETE if document["complete"] else outcomes.Outcome.PARTIAL
