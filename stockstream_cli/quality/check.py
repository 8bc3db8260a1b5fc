"""`check`: is every expected row in the store, and does what is there look right?

A dataset users run unattended for years must say which rows are missing and why (listed later, suspended,
fetch failed, unexplained, never fetched), and which look wrong (BIG_MOVE, STALE_SESSIONS, broken OHLC),
from the store alone: read_lists and read_fetches read the lists and manifests once, the rest are pure
functions over what was read. The reasons and rules are in the README (check). No typer or rich here:
run-local and the Lambda handlers call `check` / `check_day`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .. import calendar, hints, layout
from ..fetch import manifest
from ..errors import InputError, StockstreamError
from ..settings import DEFAULT_LOOKBACK_DAYS
from ..values import check_range
from .. import outcome as outcomes

if TYPE_CHECKING:
    import polars as pl

BIG_MOVE = 0.5  # a close more than 50% away from the previous close
STALE_SESSIONS = 10  # this many sessions in a row with the same close and zero volume
CONTEXT_SESSIONS = STALE_SESSIONS  # sessions read before the range so its first days can be judged
PRICE_FIELDS = ("open", "high", "low", "close", "adjusted_close")
VALUE_FIELDS = (*PRICE_FIELDS, "volume")

EXPECTED_REASONS = ("listed_after", "suspended")
UNEXPECTED_MISSING = ("fetch_failed", "unexplained", "not_fetched")
MISSING_REASONS = (*UNEXPECTED_MISSING, *EXPECTED_REASONS)
SUSPICIOUS_KINDS = ("big_move", "stale", "ohlc")


# ---------------------------------------------------------------------------------------------- entry points


def check_day(store, day: dt.date, *, lookback_days: int = DEFAULT_LOOKBACK_DAYS) -> dict:
    """The check of one day, for run-local's (or the state machine's) data-quality step."""
    return check(store, day, day, lookback_days=lookback_days)


def check(store, start: dt.date, end: dt.date, *, symbols: list[str] | None = None,
          lookback_days: int = DEFAULT_LOOKBACK_DAYS) -> dict:
    """Check the store over [start, end]; returns the `check --json` document (its "complete" says it all)."""
    from ..read.newest import newest_per_symbol_and_date

    check_range(start, end)
    sessions = calendar.sessions(start, end)
    lookback = dt.timedelta(days=max(lookback_days, 1) - 1)
    lists = read_lists(store, start, end, lookback)
    if not lists.dates and not symbols:
        raise InputError(f"no ASX list in {store.uri}: run `{hints.command('symbols')}` first, or name --symbols")
    expected = _expected(sessions, lists, symbols)
    universe = sorted({symbol for symbol, _ in expected} | set(symbols or ()))

    context_start = calendar.sessions_before(start, CONTEXT_SESSIONS)[0] if sessions else start
    raw = read_raw_rows(store, context_start, end, universe)
    newest = newest_per_symbol_and_date(raw.lazy()).collect()
    present = {(s, d) for s, d in zip(newest["symbol"].to_list(), newest["date"].to_list()) if start <= d <= end}

    missing = sorted(expected - present, key=lambda pair: (pair[0], pair[1]))
    fetches = read_fetches(store, start, end, lookback, lists.dates)
    classified = classify_missing(missing, lists, fetches, lambda names: _earliest_rows(store, names))
    found_revisions = find_revisions(raw, start, end)
    del raw  # every fetch of every row (5 per row with a 5-day lookback): let it go before the next step
    suspicious = find_suspicious(newest, start, end)
    actions = _actions_in(store, universe, context_start, end)
    revisions, restated = split_restatements(found_revisions, actions)
    document = _document(start, end, sessions, universe, expected, present, classified, suspicious, revisions,
                         symbols, lists)
    return {**document, "restated_count": len(restated), "restated": restated,
            "actions": _action_list(actions, start, end)}


def _expected(sessions: list[dt.date], lists: "ListsInForce", symbols: list[str] | None) -> set[tuple[str, dt.date]]:
    wanted = set(symbols) if symbols else None
    expected: set[tuple[str, dt.date]] = set()
    for day in sessions:
        listed = lists.symbols_on(day)
        if listed is None:  # no list in the store at all: the named symbols are expected every session
            names = wanted or set()
        else:
            names = listed if wanted is None else listed & wanted
        expected.update((symbol, day) for symbol in names)
    return expected


# ---------------------------------------------------------------------------------------------- the lists


def read_lists(store, start: dt.date, end: dt.date, lookback: dt.timedelta) -> "ListsInForce":
    """The symbols/D-symbols.csv files a check of [start, end] needs, each read once: the lists in force over
    the range, the latest list, and the lists of the run days whose fetches covered the range."""
    from ..sources.asx import from_csv

    keys = {day: key for key in store.list(layout.SYMBOLS_PREFIX) if (day := layout.parse_symbols_key(key))}
    dates = sorted(keys)
    considered = considered_dates(dates, start, end)
    needed = set(considered) | {d for d in dates if start <= d <= end + lookback}
    listings = {d: {item.symbol: item for item in from_csv(store.get(keys[d]), keys[d])} for d in sorted(needed)}
    return ListsInForce(dates, considered, listings)


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
    list are considered, so a check of a month reads about a month of lists.
    """

    def __init__(self, dates: list[dt.date], considered: list[dt.date], listings: dict[dt.date, dict[str, Any]]):
        self.dates = dates  # every list in the store
        self._considered = considered
        self._listings = listings  # list date -> symbol -> Listing, for the lists read
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
            merged: dict[str, Any] = {}
            for list_date in reversed(self._considered[index:]):
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
    last_run = end + lookback
    batches: dict[dt.date, dict[int, _Manifest]] = defaultdict(dict)
    backfills: list[tuple[str, _Manifest]] = []
    for key in store.list(layout.RUNS_PREFIX):
        if (parsed := layout.parse_batch_manifest_key(key)) and start <= parsed[0] <= last_run:
            batches[parsed[0]][parsed[1]] = _Manifest.read(store, key)
        elif parsed_backfill := layout.parse_backfill_manifest_key(key):
            label = f"backfill {parsed_backfill[0]} #{parsed_backfill[1]}"
            backfills.append((label, _Manifest.read(store, key)))
    run_days = sorted(set(batches) | {d for d in list_dates if start <= d <= last_run})
    return FetchRecord(lookback, dict(batches), backfills, run_days)


@dataclasses.dataclass(frozen=True)
class FetchRecord:
    """What the manifests (runs/D/batch-N.json, runs/D/backfill-N.json) say of how each day was fetched:
    read by read_fetches, judged here without reading anything."""

    lookback: dt.timedelta
    batches: dict[dt.date, dict[int, "_Manifest"]]
    backfills: list[tuple[str, "_Manifest"]]
    run_days: list[dt.date]

    def outcomes(self, symbol: str, day: dt.date, lists: ListsInForce) -> list[Outcome]:
        found = [o for run_day in self._runs_covering(day) if (o := self._run_outcome(symbol, run_day, lists))]
        for label, record in self.backfills:
            covers = record.backfill_range
            if covers and covers[0] <= day <= covers[1] and symbol in record.metadata.get("symbols", ()):
                found.append(Outcome(label, record.reasons.get(symbol, "ok"), covers[0]))
        return found

    def _runs_covering(self, day: dt.date) -> list[dt.date]:
        return [run_day for run_day in self.run_days if day <= run_day <= day + self.lookback]

    def _run_outcome(self, symbol: str, run_day: dt.date, lists: ListsInForce) -> Outcome | None:
        manifests = self.batches.get(run_day, {})
        for number, record in sorted(manifests.items()):
            if symbol in record.reasons:
                return Outcome(f"run {run_day} batch {number}", record.reasons[symbol],
                               self._window_start(run_day, record.metadata))
        listed = lists.exact(run_day)
        if listed is None or symbol not in listed:
            return None
        number = listed[symbol].batch_number
        if number in manifests:
            return Outcome(f"run {run_day} batch {number}", "ok", self._window_start(run_day, manifests[number].metadata))
        return Outcome(f"run {run_day} batch {number}", "batch_failed", run_day - self.lookback)

    def _window_start(self, run_day: dt.date, meta: dict) -> dt.date:
        try:
            return dt.date.fromisoformat(meta["window"]["start"])
        except (KeyError, TypeError, ValueError):
            return run_day - self.lookback


@dataclasses.dataclass(frozen=True)
class _Manifest:
    """A batch or backfill manifest as check reads it: parsed once (manifest.parse), its reasons resolved once."""

    metadata: dict  # only what check reads: "window", and a backfill's "symbols"
    reasons: dict[str, str]  # manifest.failure_reasons
    backfill_range: tuple[dt.date, dt.date] | None

    @classmethod
    def read(cls, store, key: str) -> "_Manifest":
        document = manifest.parse(store.get(key), key)
        covers = manifest.backfill_range(document)
        # a year holds ~5,000 manifests: keeping each whole (per-symbol details, drops) took ~1 GB
        kept = ("window", "symbols") if covers else ("window",)
        metadata = {name: document["metadata"][name] for name in kept if name in document["metadata"]}
        return cls(metadata, manifest.failure_reasons(document), covers)


def classify_missing(missing: Iterable[tuple[str, dt.date]], lists: ListsInForce, fetches: FetchRecord,
                     history_starts: Callable[[list[str]], dict[str, dt.date]] | None = None) -> dict[str, list[dict]]:
    """Each missing (symbol, day) under the first reason that explains it (see the module docstring).

    history_starts(symbols) -> each symbol's earliest stored date: a day a fetch asked for, before the
    symbol's stored history begins, is a day it did not trade yet (listed_after), not an unexplained gap.
    """
    classified: dict[str, list[dict]] = {reason: [] for reason in MISSING_REASONS}
    before_history: list[tuple[dict, dt.date]] = []
    for symbol, day in missing:
        reason, detail, asked_from = _reason(symbol, day, lists, fetches)
        item = {"symbol": symbol, "date": day.isoformat(), "detail": detail}
        if reason == "unexplained" and asked_from is not None and asked_from < day:
            before_history.append((item, day))
        else:
            classified[reason].append(item)
    firsts = history_starts(sorted({item["symbol"] for item, _ in before_history})) if before_history and history_starts else {}
    for item, day in before_history:
        first = firsts.get(item["symbol"])
        if first is not None and day < first:
            classified["listed_after"].append({**item, "detail": f"fetched fine; its history starts {first.isoformat()}"})
        else:
            classified["unexplained"].append(item)
    for items in classified.values():
        items.sort(key=lambda item: (item["symbol"], item["date"]))
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
    return "not_fetched", "no run or backfill covered this day", None


# ---------------------------------------------------------------------------------------------- the rows


def read_raw_rows(store, start: dt.date, end: dt.date, symbols: list[str] | None = None) -> "pl.DataFrame":
    """Every stored fetch (not only the newest) of rows dated in [start, end], of `symbols` when given.

    The files are the ones `load` reads (DataAggregator.load_fetches).
    """
    from ..read.aggregate import DataAggregator
    from ..schema import empty_frame

    if symbols is not None and not symbols:
        return empty_frame()
    return DataAggregator(store).load_fetches(symbols, start, end)


def _earliest_rows(store, symbols: list[str]) -> dict[str, dt.date]:
    from ..read.aggregate import earliest_rows

    return earliest_rows(store, symbols)


# ---------------------------------------------------------------------------------------------- suspicious data


def find_suspicious(newest: "pl.DataFrame", start: dt.date, end: dt.date) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {kind: [] for kind in SUSPICIOUS_KINDS}
    for symbol, rows in _by_symbol(newest):
        found["big_move"].extend(_big_moves(symbol, rows, start, end))
        found["stale"].extend(_stale_runs(symbol, rows, start, end))
        found["ohlc"].extend(_broken_ohlc(symbol, rows, start, end))
    return found


def _by_symbol(frame: "pl.DataFrame"):
    """(symbol, its rows as dicts in the frame's order), one symbol at a time, symbols sorted: a year of the
    full list as dicts all at once would be ~0.5 GB."""
    if frame.is_empty():
        return
    parts = frame.partition_by("symbol", maintain_order=True, as_dict=True)
    for key in sorted(parts, key=lambda k: k[0] if isinstance(k, tuple) else k):
        symbol = key[0] if isinstance(key, tuple) else key
        yield symbol, parts.pop(key).rows(named=True)


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
    runs, current = [], []
    for row in rows + [None]:
        if row is not None and row["volume"] == 0 and (not current or row["close"] == current[-1]["close"]):
            current.append(row)
            continue
        if len(current) >= STALE_SESSIONS and current[-1]["date"] >= start and current[0]["date"] <= end:
            runs.append({"symbol": symbol, "start": current[0]["date"].isoformat(), "end": current[-1]["date"].isoformat(),
                         "sessions": len(current), "close": current[0]["close"]})
        current = [row] if row is not None and row["volume"] == 0 else []
    return runs


def _broken_ohlc(symbol: str, rows: list[dict], start: dt.date, end: dt.date) -> list[dict]:
    broken = []
    for row in rows:
        if start <= row["date"] <= end and (problem := ohlc_problem(row)):
            broken.append({"symbol": symbol, "date": row["date"].isoformat(), "problem": problem})
    return broken


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
    from ..read.actions import load_actions

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


def _document(start, end, sessions, universe, expected, present, classified, suspicious, revisions,
              symbols, lists: ListsInForce) -> dict:
    failures = sum(len(classified[r]) for r in UNEXPECTED_MISSING)
    flagged = sum(len(items) for items in suspicious.values())
    unlisted = sorted(set(symbols or ()) - {s for s, _ in expected}) if lists.dates else []
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "sessions": len(sessions),
        "symbols": len(universe),
        "expected_rows": len(expected),
        "present_rows": len(expected & present),
        "complete": failures == 0 and flagged == 0,
        "missing_counts": {reason: len(classified[reason]) for reason in MISSING_REASONS},
        "missing": classified,
        "suspicious_counts": {kind: len(items) for kind, items in suspicious.items()},
        "suspicious": suspicious,
        "revisions_count": len(revisions),
        "revisions": revisions,
        "lists": sorted({d.isoformat() for day in sessions for d in lists.list_dates_used(day)}),
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
    lines = [f"stockstream check {span}: {document['present_rows']} of {document['expected_rows']} rows present."]
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
                lookback_days: int = DEFAULT_LOOKBACK_DAYS, note: Callable[[str], None] | None = None) -> dict:
    """The data-quality step after a run's aggregate: `check` of the session the run should have complete.

    Which session: calendar.session_to_check (the latest one closed when the run started, within its fetch
    window). Never raises: a check that could not run is recorded as {"session": ..., "complete": None,
    "error": "..."}, since it must not cost the run its summary. `note` hears the alert or the error.
    """
    note = note or (lambda message: None)
    started = aware_moment(run_started)
    session = None
    try:
        session = calendar.session_to_check(day, started, lookback_days)
        document = check_day(store, session, lookback_days=lookback_days) if session else None
    except Exception as error:  # noqa: BLE001 - any failure of the check is reported, never raised
        message = str(error) if isinstance(error, StockstreamError) else f"{type(error).__name__}: {error}"
        note(f"the data-quality check could not run: {message}")
        return {"session": session.isoformat() if session else None, "complete": None, "error": message}
    summary = quality_summary(session, document)
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
