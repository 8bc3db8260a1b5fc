"""One batch: pace, retry, fetch, clean, merge, write, report (`stockstream fetch-batch` and the Lambda).

The batch is the unit the state machine's Map retries, so everything about it lives here: each symbol is
fetched through yahoo.fetch with the pacer's delay and backoff, cleaned (schema.clean_bars), merged into what
is stored (a rerun of some symbols never loses the others' rows) and written data first, manifest last (the
manifest is the "done" mark). A batch fails as a whole (errors.BatchFailed) only when its files cannot be
written or Yahoo refused every symbol for a retryable reason; the README (fetch-batch) has the retry, cleaning
and merging rules.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import random
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .. import hints, layout, schema
from . import manifest, restate
from .cut_short import BatchProgress
from ..calendar import last_final_day
from ..read.actions import actions_from_raw
from ..sources import yahoo
from ..errors import BatchFailed, BatchInterrupted, InputError, StoreError, Unhealable, YahooUnreachable
from ..datafile import read_batch_rows, to_parquet_bytes
from ..read.newest import merge_rows
from ..reasons import INTERRUPTED, INVALID_DATA, NO_DATA, RATE_LIMITED, TIMEOUT, TRANSIENT
from ..values import check_batch_number, check_symbol

if TYPE_CHECKING:
    import polars as pl

    from .deadline import Deadline
    from .pacing import Pacer
    from ..sources.http import RequestCounts

OnSymbol = Callable[[str, "str | None"], None]
Fetcher = Callable[[str, dt.date, dt.date, float], "yahoo.FetchOutcome"]


@dataclasses.dataclass
class SymbolResult:
    symbol: str
    rows: "pl.DataFrame | None"  # clean rows in the contract's schema; None when it failed
    failure: str | None  # one of reasons.ALL
    detail: str
    attempts: int  # requests sent for it
    dropped: dict[str, int]
    actions: "pl.DataFrame | None" = None  # dividends and splits the answer carried (read/actions.py's columns)
    restated_from: dt.date | None = None  # set when its stored range was fetched again (fetch/restate.py)


def lookback_window(day: dt.date, lookback_days: int) -> tuple[dt.date, dt.date]:
    """The `lookback_days` calendar days ending at `day`, `day` included: (first, last)."""
    if lookback_days < 1:
        raise InputError(f"--lookback-days must be at least 1, got {lookback_days}")
    return day - dt.timedelta(days=lookback_days - 1), day


def batch_codes(store, day: dt.date, batch_number: int, symbols: Iterable[str] | None = None) -> list[str]:
    """The symbols to fetch: those given (checked, sorted, unique), else batch N of symbols/D-symbols.csv."""
    check_batch_number(batch_number)
    if symbols is not None:
        codes = sorted({check_symbol(code) for code in symbols})
        if not codes:
            raise InputError("no symbols were given: name at least one, e.g. --symbols BHP CBA")
        return codes
    from ..sources.asx import batch_symbols, read_symbols

    return batch_symbols(read_symbols(store, day), batch_number)


def batches_of(store, day: dt.date, symbols: Iterable[str], batch_number: int | None) -> dict[int, list[str]]:
    """{batch number: its symbols} that `fetch-batch --symbols` fetches, checked against the day's list before
    any request: with a batch number, every symbol must be in that batch (InputError naming the right one);
    without, each symbol is filed under its own batch. A day with no list: only with a batch number, as given."""
    from ..sources.asx import read_symbols

    codes = batch_codes(store, day, 0 if batch_number is None else batch_number, symbols)
    try:
        listings = read_symbols(store, day)
    except InputError:
        if batch_number is None:
            raise InputError(f"no ASX list for {day.isoformat()} in {store.uri} to find the symbols' batches in: "
                             "give --batch-number, or run `" + hints.command("symbols", "--date", day.isoformat())
                             + "` first") from None
        return {batch_number: codes}
    home = {listing.symbol: listing.batch_number for listing in listings}
    unlisted = [code for code in codes if code not in home]
    if unlisted:
        raise InputError(f"not in the ASX list of {day.isoformat()}: {' '.join(unlisted)}")
    if batch_number is not None:
        elsewhere = {code: home[code] for code in codes if home[code] != batch_number}
        if elsewhere:
            where = ", ".join(f"{code} is in batch {number}" for code, number in elsewhere.items())
            raise InputError(f"not in batch {batch_number} of {day.isoformat()}: {where}; give that --batch-number, "
                             "or leave --batch-number out to file each symbol under its own batch")
        return {batch_number: codes}
    grouped: dict[int, list[str]] = {}
    for code in codes:
        grouped.setdefault(home[code], []).append(code)
    return dict(sorted(grouped.items()))


def fetch_batch(
    store,
    day: dt.date,
    batch_number: int,
    settings,
    *,
    symbols: Iterable[str] | None = None,
    pacer: "Pacer | None" = None,
    on_symbol: OnSymbol | None = None,
    sleep: Callable[[float], None] | None = None,
    fetcher: Fetcher | None = None,
    rng: Callable[[], float] = random.random,
    requests: "RequestCounts | None" = None,
    now: dt.datetime | None = None,
    deadline: "Deadline | None" = None,
) -> dict:
    """Fetch, clean and store batch `batch_number` of `day`; return its manifest (the contract's JSON).

    symbols: fetch these (a rerun, or the state machine's item) instead of the batch read from the store.
    pacer: shared pacing (default: the fixed --delay of this worker). on_symbol(symbol, reason or None):
    called after each symbol. sleep, fetcher, rng: the edges, swappable in tests (fetcher defaults to
    yahoo.fetch). requests: a sources.http.RequestCounts that gets every HTTP request the batch sends, by kind.
    now: the moment of the fetch (default: this machine's clock), for the live-bar rule (calendar.last_final_day).
    deadline: a fetch.deadline.Deadline; once due, no new symbol is taken, what was fetched is written and the
    rest recorded as `interrupted` (then the stop's exception is raised again, or BatchInterrupted).
    A suspected block (fetch/block.py) is written likewise, then raises BatchBlocked.
    """
    from ..sources import http
    from . import pacing

    started = time.monotonic()
    codes = batch_codes(store, day, batch_number, symbols)
    first, last = lookback_window(day, settings.lookback_days)
    final_through = last_final_day(last, now or dt.datetime.now(dt.timezone.utc))
    sleep = sleep or time.sleep
    pacer = pacer or pacing.pacer_from_settings(settings, sleep=sleep)
    if fetcher is None:
        yahoo.prepare(codes, settings.cache_dir, allow_plain_requests=settings.allow_plain_requests)
        fetcher = yahoo.fetch

    run = BatchProgress(deadline, lambda code, reason, detail: SymbolResult(code, None, reason, detail, 0, {}))

    def fetch_one(code: str, start: dt.date = first, end: dt.date = last, *, report: bool = True) -> SymbolResult | None:
        if report and workers > 1 and deadline is not None and deadline.due():
            return None  # the deadline came while this symbol waited for a thread: not fetched (judged below)
        with http.paced(None, requests):  # per thread: the tally follows the request's thread
            result = fetch_symbol(code, start, end, batch_number, settings, pacer=pacer, sleep=sleep,
                                  fetcher=fetcher, rng=rng, final_through=final_through)
        if report and on_symbol is not None:
            on_symbol(code, result.failure)  # on the fetching thread, as soon as it is known
        return result

    workers = max(1, min(getattr(settings, "workers", 1), len(codes) or 1))
    with symbol_threads(workers, f"fetch-batch-{batch_number}") as pool:
        for index in range(0, len(codes), workers):  # `workers` symbols at a time, judged in order
            if run.stopped_before(codes[index:]):
                break
            chunk = codes[index:index + workers]
            try:
                chunk_results = list(pool.map(fetch_one, chunk)) if pool else [fetch_one(chunk[0])]
            except BaseException as exc:
                if not run.stopped_by(exc, codes[index:]):
                    raise
                break
            stop = False
            for offset, result in enumerate(chunk_results):
                if result is None:  # this one and every later one not fetched: the rest is interrupted
                    stop = run.stopped_before(codes[index + offset:])
                    if stop:
                        break
                    result = SymbolResult(chunk[offset], None, INTERRUPTED, "not fetched: the fetcher's deadline came",
                                          0, {})
                if run.add(result, codes[index + offset + 1:]):
                    stop = True
                    break
            if stop:
                break
    results = run.finish(pacer, settings)
    if (run.stop_error is not None or run.interrupted) and all(r.rows is None for r in results):
        # stopped (Ctrl-C, the run stopping, the deadline) before anything was fetched: nothing to keep or write
        raise run.stop_error or BatchInterrupted(f"batch {batch_number} of {day.isoformat()} stopped before any "
                                                 "symbol was fetched; nothing was written")

    def refetch(code: str, start: dt.date, end: dt.date) -> SymbolResult:
        # a batch cut short sends nothing more: the symbol is then restate_failed, stored nowhere, retried
        if run.interrupted or run.blocked or run.stop_error is not None:
            return SymbolResult(code, None, INTERRUPTED, "not refetched: the batch was cut short", 0, {})
        try:
            return fetch_one(code, start, end, report=False)
        except BaseException as exc:
            if not run.stopped_by(exc, []):
                raise
            return SymbolResult(code, None, INTERRUPTED, "not refetched: the fetcher's deadline came", 0, {})

    results = restate.restate(store, results, first, day, refetch=refetch).results

    data_key = layout.batch_data_key(day, batch_number)
    manifest_key = layout.batch_manifest_key(day, batch_number)
    previous_rows = read_batch_rows(store, data_key)
    previous = manifest.read(store, manifest_key)
    rows = merge_rows(previous_rows, [r.rows for r in results if r.rows is not None])
    document = build_manifest(day, batch_number, results, rows, previous, previous_rows, first, last,
                              execution_time=time.monotonic() - started, fetched_at=schema.utc_timestamp())
    if _whole_batch_failed(document):
        raise BatchFailed(
            f"batch {batch_number} of {day.isoformat()} failed: no symbol has data and every failure is retryable "
            f"({_reason_counts(document['metadata']['failure_reasons'])}); nothing was written"
        )
    # data before actions before the manifest: see fetch/restate.py (never an action over unrestated rows)
    _write(store, data_key, to_parquet_bytes(rows), batch_number, day)
    try:
        document["metadata"]["actions_written"] = restate.write_actions(store, results)
    except StoreError as exc:
        if isinstance(exc, Unhealable):
            raise
        raise BatchFailed(f"batch {batch_number} of {day.isoformat()}: actions could not be written: {exc}") from exc
    _write(store, manifest_key, manifest.encode(document), batch_number, day)
    run.raise_if_cut_short(document, batch_number, day)
    return document


@contextlib.contextmanager
def symbol_threads(workers: int, name: str):
    """Threads for `workers` symbols at once (None for one: the batch runs on this thread).

    Threads share the batch's pacer: each keeps its own --delay (FixedDelayPacer is per thread) and all
    draw from the one --rate budget, so W workers at a 2 s delay send up to W/2 requests/s. They let one
    Lambda invocation do the work of several without paying for their sleep several times over (Lambda
    bills wall time), while a failure still isolates the batch.
    """
    if workers == 1:
        yield None
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        yield pool


def fetch_symbol(
    code: str,
    first: dt.date,
    last: dt.date,
    batch_number: int,
    settings,
    *,
    pacer: "Pacer",
    sleep: Callable[[float], None],
    fetcher: Fetcher,
    rng: Callable[[], float] = random.random,
    final_through: dt.date | None = None,
) -> SymbolResult:
    """One symbol: up to settings.retries + 1 attempts, then clean rows or a classified failure.

    final_through: the last session whose bar is final (calendar.last_final_day); a later bar (today's, during
    the session) is dropped as outside the window. Default: `last`.

    A fetcher that sends its requests through sources.http's session (`paced_per_request`, as yahoo.fetch)
    is paced there, each HTTP request (cookie, crumb, resend) taking a slot and reporting its answer; any
    other fetcher (a test's) is paced here, one slot per attempt.
    """
    from .pacing import backoff_wait
    from ..sources import http

    per_request = getattr(fetcher, "paced_per_request", False)
    attempts = 0
    while True:
        if not per_request:
            pacer.wait()
        attempts += 1
        with http.paced(pacer if per_request else None):
            outcome = fetcher(code, first, last, settings.timeout)
        if not isinstance(outcome, yahoo.Failure):
            if not per_request:
                pacer.on_success()
            return _cleaned(code, outcome, first, min(last, final_through or last), batch_number, attempts)
        if outcome.unreachable:
            raise YahooUnreachable(outcome.detail)  # no retry heals it soon; every symbol would fail alike
        if per_request:
            pass  # the session told the pacer of every answer
        elif outcome.reason == RATE_LIMITED:
            pacer.on_rate_limited()
        elif outcome.reason != TIMEOUT:
            pacer.on_success()  # answered, without a 429
        if not outcome.retryable or attempts > settings.retries:
            return SymbolResult(code, None, outcome.reason, outcome.detail, attempts, {})
        wait = backoff_wait(settings.retry_wait, attempts, rng=rng)
        if wait > 0:
            sleep(wait)


def _cleaned(code: str, raw: "pl.DataFrame", first: dt.date, last: dt.date, batch_number: int,
             attempts: int) -> SymbolResult:
    fetched_at = schema.utc_timestamp()
    rows, dropped = schema.clean_bars(raw, symbol=code, batch_number=batch_number,
                                      fetch_timestamp=fetched_at, first_day=first, last_day=last)
    dropped = {reason: count for reason, count in dropped.items() if count}
    if rows.height:
        actions = actions_from_raw(raw, symbol=code, fetch_timestamp=fetched_at, first_day=first, last_day=last)
        return SymbolResult(code, rows, None, "", attempts, dropped, actions)
    if dropped.get("invalid"):
        return SymbolResult(code, None, INVALID_DATA, f"{raw.height} bars, none valid ({dropped})", attempts, dropped)
    return SymbolResult(code, None, NO_DATA, f"no traded bars in {first}..{last} ({dropped})", attempts, dropped)


# ---------------------------------------------------------------------------------------------- the files


def _write(store, key: str, data: bytes, batch_number: int, day: dt.date) -> None:
    try:
        store.put(key, data)
    except StoreError as exc:
        if isinstance(exc, Unhealable):
            raise  # no retry heals it (errors.Unhealable): said once, as it is
        raise BatchFailed(f"batch {batch_number} of {day.isoformat()} could not be written: {exc}") from exc


# ---------------------------------------------------------------------------------------------- the manifest


def build_manifest(
    day: dt.date,
    batch_number: int,
    results: list[SymbolResult],
    rows: "pl.DataFrame",
    previous: dict | None,
    previous_rows: "pl.DataFrame | None",
    first: dt.date,
    last: dt.date,
    *,
    execution_time: float,
    fetched_at: str,
) -> dict:
    """The contract's document for the whole batch, merged with the stored one when there is one. Pure: the
    clock's reading comes in as `fetched_at`."""
    before = (previous or {}).get("metadata", {})
    now = {r.symbol for r in results}
    before_reasons = manifest.failure_reasons(previous) if previous else {}
    members = sorted(now | _previous_members(before, before_reasons, previous_rows))

    reasons = {s: r for s, r in before_reasons.items() if s not in now}
    details = {s: d for s, d in before.get("failure_details", {}).items() if s not in now}
    dropped_by_symbol = {s: d for s, d in before.get("rows_dropped_by_symbol", {}).items() if s not in now}
    for result in results:
        if result.failure:
            reasons[result.symbol] = result.failure
            details[result.symbol] = result.detail
        if result.dropped:
            dropped_by_symbol[result.symbol] = result.dropped
    reasons = dict(sorted(reasons.items()))
    totals = dict.fromkeys(schema.DROP_REASONS, 0)
    for counts in dropped_by_symbol.values():
        for reason, count in counts.items():
            totals[reason] = totals.get(reason, 0) + count

    fetched = len(members) - len(reasons)
    failed = sorted(reasons)
    metadata: dict[str, Any] = {
        "batch_number": batch_number,
        "symbols_processed": len(members),
        "symbols_fetched": fetched,
        "symbols_failed": failed,
        "failure_reasons": reasons,
        "execution_time": round(execution_time, 3),
        "s3_key": layout.batch_data_key(day, batch_number),
        "date": day.isoformat(),
        "window": {"start": first.isoformat(), "end": last.isoformat()},
        "rows": rows.height,
        "rows_dropped": totals,
        "rows_dropped_by_symbol": dict(sorted(dropped_by_symbol.items())),
        "failure_details": dict(sorted(details.items())),
        "symbols": members,
        "symbols_this_run": sorted(now),
        "restated": {r.symbol: r.restated_from.isoformat() for r in results if r.restated_from is not None},
        "requests": sum(r.attempts for r in results),
        "fetched_at": fetched_at,
    }
    body = (f"batch {batch_number} of {day.isoformat()}: {fetched} of {len(members)} symbols fetched, "
            f"{len(failed)} failed; {rows.height} rows in {metadata['s3_key']}")
    return {"statusCode": 200, "body": body, "metadata": metadata}


def _previous_members(before: dict, before_reasons: dict[str, str], previous_rows: "pl.DataFrame | None") -> set[str]:
    if isinstance(before.get("symbols"), list):
        return set(before["symbols"])
    members = set(before_reasons)
    if previous_rows is not None:
        members |= set(previous_rows.get_column("symbol").unique().to_list())
    return members


def _whole_batch_failed(document: dict) -> bool:
    metadata = document["metadata"]
    reasons = metadata["failure_reasons"].values()
    return metadata["symbols_fetched"] == 0 and bool(reasons) and all(r in TRANSIENT for r in reasons)


def _reason_counts(reasons: dict[str, str]) -> str:
    counts: dict[str, int] = {}
    for reason in reasons.values():
        counts[reason] = counts.get(reason, 0) + 1
    return ", ".join(f"{count} {reason}" for reason, count in sorted(counts.items()))
