"""One batch: pace, retry, fetch, clean, merge, write, report (`stockstream fetch-batch` and the Lambda).

`fetch_batch` fetches each symbol of batch N of day D through yahoo.fetch, one after another, with the
pacer's delay before every request and retries with exponential backoff for the retryable failures
(rate_limited, timeout, error); not_found, no_data and invalid_data are final. It cleans the bars
(schema.clean_bars), then writes raw-data/D-batch-N.parquet and, last, runs/D/batch-N.json (the manifest
is the batch's "done" mark), and returns the manifest: the contract's JSON document.

Rerun (a subset of the batch's symbols, e.g. from rerun-failed) merges into what is stored:
- rows of symbols not fetched now are kept; a refetched symbol's new rows replace its stored rows of the same
  (symbol, date); a symbol that failed again keeps the rows it had; one row per (symbol, date) always;
- the manifest describes the whole batch: a symbol that now succeeded leaves symbols_failed, the others stay,
  symbols_processed counts every symbol the batch has ever processed.

The whole batch fails (errors.BatchFailed, which the state machine's Map retries) when its files cannot be
written, or when no symbol of the batch has data and every failure is retryable (Yahoo refusing or
unreachable, most likely for all of them): nothing is written then. A batch where only some symbols failed,
or where every symbol failed for a final reason (all delisted, say), is a result: it is written and returned.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .. import layout, schema
from . import manifest
from ..sources import yahoo
from ..errors import BatchFailed, InputError, StoreError
from ..datafile import read_batch_rows, to_parquet_bytes
from ..read.newest import merge_rows
from ..reasons import INVALID_DATA, NO_DATA, RATE_LIMITED, TIMEOUT, TRANSIENT
from ..values import check_batch_number, check_symbol

if TYPE_CHECKING:
    import polars as pl

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
) -> dict:
    """Fetch, clean and store batch `batch_number` of `day`; return its manifest (the contract's JSON).

    symbols: fetch these (a rerun, or the state machine's item) instead of the batch read from the store.
    pacer: shared pacing (default: the fixed --delay of this worker). on_symbol(symbol, reason or None):
    called after each symbol. sleep, fetcher, rng: the edges, swappable in tests (fetcher defaults to
    yahoo.fetch). requests: a sources.http.RequestCounts that gets every HTTP request the batch sends, by kind.
    """
    from ..sources import http
    from . import pacing

    started = time.monotonic()
    codes = batch_codes(store, day, batch_number, symbols)
    first, last = lookback_window(day, settings.lookback_days)
    sleep = sleep or time.sleep
    pacer = pacer or pacing.pacer_from_settings(settings, sleep=sleep)
    if fetcher is None:
        yahoo.prepare(codes, settings.cache_dir, allow_plain_requests=settings.allow_plain_requests)
        fetcher = yahoo.fetch

    def fetch_one(code: str) -> SymbolResult:
        with http.paced(None, requests):  # per thread: the tally follows the request's thread
            result = fetch_symbol(code, first, last, batch_number, settings, pacer=pacer, sleep=sleep,
                                  fetcher=fetcher, rng=rng)
        if on_symbol is not None:
            on_symbol(code, result.failure)
        return result

    results = _fetch_all(codes, fetch_one, workers=getattr(settings, "workers", 1), batch_number=batch_number)

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
    _write(store, data_key, to_parquet_bytes(rows), batch_number, day)
    _write(store, manifest_key, manifest.encode(document), batch_number, day)
    return document


def _fetch_all(codes: list[str], fetch_one: Callable[[str], SymbolResult], *, workers: int,
               batch_number: int) -> list[SymbolResult]:
    """Every symbol's result, in the order of `codes`: one after another, or on `workers` threads.

    Threads share the batch's pacer: each keeps its own --delay (FixedDelayPacer is per thread) and all
    draw from the one --rate budget, so W workers at a 2 s delay send up to W/2 requests/s. They let one
    Lambda invocation do the work of several without paying for their sleep several times over (Lambda
    bills wall time), while a failure still isolates the batch.
    """
    workers = max(1, min(workers, len(codes)))
    if workers == 1:
        return [fetch_one(code) for code in codes]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"fetch-batch-{batch_number}") as pool:
        return list(pool.map(fetch_one, codes))


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
) -> SymbolResult:
    """One symbol: up to settings.retries + 1 attempts, then clean rows or a classified failure.

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
            return _cleaned(code, outcome, first, last, batch_number, attempts)
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
    rows, dropped = schema.clean_bars(raw, symbol=code, batch_number=batch_number,
                                      fetch_timestamp=schema.utc_timestamp(), first_day=first, last_day=last)
    dropped = {reason: count for reason, count in dropped.items() if count}
    if rows.height:
        return SymbolResult(code, rows, None, "", attempts, dropped)
    if dropped.get("invalid"):
        return SymbolResult(code, None, INVALID_DATA, f"{raw.height} bars, none valid ({dropped})", attempts, dropped)
    return SymbolResult(code, None, NO_DATA, f"no traded bars in {first}..{last} ({dropped})", attempts, dropped)


# ---------------------------------------------------------------------------------------------- the files


def _write(store, key: str, data: bytes, batch_number: int, day: dt.date) -> None:
    try:
        store.put(key, data)
    except StoreError as exc:
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
