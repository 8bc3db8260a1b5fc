"""One batch's symbols fetched: pace, retry, fetch, clean, report — symbols and a window in, rows, actions and
outcomes out, nothing stored (run/batch.py commits them through dataset/commit.py).

Each symbol is fetched through yahoo.fetch with the pacer's delay and backoff and cleaned (schema.clean_bars);
a deadline or a suspected block cuts the batch short (cut_short.py). The README (fetch-batch) has the retry
and cleaning rules.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import schema
from ..calendar import last_final_day
from ..errors import BatchInterrupted, InputError, YahooUnreachable
from ..reasons import INTERRUPTED, INVALID_DATA, NO_DATA, RATE_LIMITED, TIMEOUT
from ..sources import yahoo
from .cut_short import BatchProgress

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
    actions: "pl.DataFrame | None" = None  # dividends and splits the answer carried (dataset/actions.py's columns)
    restated_from: dt.date | None = None  # set when its stored range was fetched again (fetch/restate.py)
    repairs: "pl.DataFrame | None" = None  # the unmistakable 100x days it stored repaired (fetch/unit_errors.py)


def lookback_window(day: dt.date, lookback_days: int) -> tuple[dt.date, dt.date]:
    """The `lookback_days` calendar days ending at `day`, `day` included: (first, last)."""
    if lookback_days < 1:
        raise InputError(f"must be at least 1, got {lookback_days}", parameter="lookback_days")
    return day - dt.timedelta(days=lookback_days - 1), day


@dataclasses.dataclass
class FetchedBatch:
    """One batch's symbols as fetched (fetch_symbols): nothing stored yet."""

    results: list[SymbolResult]
    window: tuple[dt.date, dt.date]  # the days asked for
    progress: BatchProgress  # whether the batch was cut short (raise_if_cut_short once it is committed)
    refetch: Callable[[str, dt.date, dt.date], SymbolResult]  # one symbol again over other days (restate.py)


def fetch_symbols(
    codes: list[str],
    day: dt.date,
    batch_number: int,
    settings,
    *,
    pacer: "Pacer | None" = None,
    on_symbol: OnSymbol | None = None,
    sleep: Callable[[float], None] | None = None,
    fetcher: Fetcher | None = None,
    rng: Callable[[], float] = random.random,
    requests: "RequestCounts | None" = None,
    now: dt.datetime | None = None,
    deadline: "Deadline | None" = None,
    starts: dict[str, dt.date] | None = None,
) -> FetchedBatch:
    """Fetch and clean batch `batch_number`'s symbols over the lookback window ending at `day`. Pure of the
    store: rows, actions and outcomes out; the commit (dataset/commit.py) stores them.

    pacer: shared pacing (default: the fixed delay of this worker). on_symbol(symbol, reason or None):
    called after each symbol. sleep, fetcher, rng: the edges, swappable in tests (fetcher defaults to
    yahoo.fetch). requests: a sources.http.RequestCounts that gets every HTTP request the batch sends, by kind.
    now: the moment of the fetch (default: this machine's clock), for the live-bar rule (calendar.last_final_day).
    deadline: a fetch.deadline.Deadline; once due, no new symbol is taken and the rest is recorded as
    `interrupted`; a suspected block (fetch/block.py) likewise records the rest as `blocked`. Either way the
    results are returned, to be committed before progress.raise_if_cut_short raises what the orchestrator retries.
    starts: {symbol: an earlier first day} for the symbols whose one chart request must reach before the window
    (re-verification of their open suspicions: fetch/reverify.py); the window's end stays.
    """
    from ..sources import http
    from . import pacing

    first, last = lookback_window(day, settings.lookback_days)
    final_through = last_final_day(last, now or dt.datetime.now(dt.timezone.utc))
    sleep = sleep or time.sleep
    pacer = pacer or pacing.pacer_from_settings(settings, sleep=sleep)
    if fetcher is None:
        yahoo.prepare(codes, settings.cache_dir, allow_plain_requests=settings.allow_plain_requests)
        fetcher = yahoo.fetch

    run = BatchProgress(deadline, lambda code, reason, detail: SymbolResult(code, None, reason, detail, 0, {}))

    starts = starts or {}

    def fetch_one(code: str, start: dt.date | None = None, end: dt.date = last, *,
                  report: bool = True) -> SymbolResult | None:
        start = start or min(first, starts.get(code, first))
        if report and workers > 1 and deadline is not None and deadline.due():
            return None  # the deadline came while this symbol waited for a thread: not fetched (judged below)
        with http.paced(None, requests):  # per thread: the tally follows the request's thread
            result = fetch_symbol(code, start, end, batch_number, settings, pacer=pacer, sleep=sleep,
                                  fetcher=fetcher, rng=rng, final_through=final_through, deadline=deadline)
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
                    result = SymbolResult(chunk[offset], None, INTERRUPTED, deadline.detail(), 0, {})
                if run.add(result, codes[index + offset + 1:]):
                    stop = True
                    break
            if stop:
                break
    results = run.finish(pacer, settings)
    if (run.stop_error is not None or run.interrupted) and all(r.rows is None for r in results):
        # stopped (Ctrl-C, the run stopping, the deadline) before anything was fetched: nothing to commit
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
            why = deadline.detail() if deadline is not None else "not fetched: the batch was stopped"
            return SymbolResult(code, None, INTERRUPTED, why.replace("not fetched", "not refetched", 1), 0, {})

    return FetchedBatch(results, (first, last), run, refetch)


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
    deadline: "Deadline | None" = None,
) -> SymbolResult:
    """One symbol: up to settings.retries + 1 attempts, then clean rows or a classified failure.

    final_through: the last session whose bar is final (calendar.last_final_day); a later bar (today's, during
    the session) is dropped as outside the window. Default: `last`.
    deadline: with a time limit, each attempt's timeout (and each of its HTTP requests) is cut to the time left
    and a backoff wait is taken only if an attempt fits after it (fetch/deadline.py); a symbol cut short so is
    `interrupted`, fetched again by the batch's next attempt.

    A fetcher that sends its requests through sources.http's session (`paced_per_request`, as yahoo.fetch)
    is paced there, each HTTP request (cookie, crumb, resend) taking a slot and reporting its answer; any
    other fetcher (a test's) is paced here, one slot per attempt.
    """
    from .pacing import backoff_wait
    from ..sources import http

    per_request = getattr(fetcher, "paced_per_request", False)
    limited = deadline is not None and deadline.limited
    attempts = 0
    last_failure = ""
    while True:
        timeout = deadline.attempt_timeout(settings.timeout) if limited else settings.timeout
        if timeout is None:
            return _cut_short(code, attempts, last_failure)
        if not per_request:
            pacer.wait()
        attempts += 1
        with http.paced(pacer if per_request else None), http.within(deadline.time_left if limited else None):
            outcome = fetcher(code, first, last, timeout)
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
        last_failure = f"{outcome.reason}: {outcome.detail}"
        if limited and outcome.reason == TIMEOUT and (timeout < settings.timeout
                                                      or deadline.attempt_timeout(settings.timeout) is None):
            return _cut_short(code, attempts, last_failure)  # the deadline's timeout, not Yahoo's silence alone
        if not outcome.retryable or attempts > settings.retries:
            return SymbolResult(code, None, outcome.reason, outcome.detail, attempts, {})
        wait = backoff_wait(settings.retry_wait, attempts, rng=rng)
        if limited and not deadline.allows_wait(wait):
            return _cut_short(code, attempts, last_failure)
        if wait > 0:
            sleep(wait)


def _cut_short(code: str, attempts: int, last_failure: str) -> SymbolResult:
    """A symbol whose next attempt (or retry wait) the fetcher's deadline left no time for."""
    detail = f"not fetched: the fetcher's deadline came after {attempts} attempt(s)"
    return SymbolResult(code, None, INTERRUPTED, f"{detail} (last: {last_failure})" if last_failure else detail,
                        attempts, {})


def _cleaned(code: str, raw: "pl.DataFrame", first: dt.date, last: dt.date, batch_number: int,
             attempts: int) -> SymbolResult:
    fetched_at = schema.utc_timestamp()
    rows, dropped = schema.clean_bars(raw, symbol=code, batch_number=batch_number,
                                      fetch_timestamp=fetched_at, first_day=first, last_day=last)
    dropped = {reason: count for reason, count in dropped.items() if count}
    if rows.height:
        from .unit_errors import repair_unit_errors

        rows, repairs = repair_unit_errors(rows)
        actions = schema.actions_from_raw(raw, symbol=code, fetch_timestamp=fetched_at, first_day=first, last_day=last)
        return SymbolResult(code, rows, None, "", attempts, dropped, actions, repairs=repairs)
    if dropped.get("invalid"):
        return SymbolResult(code, None, INVALID_DATA, f"{raw.height} bars, none valid ({dropped})", attempts, dropped)
    return SymbolResult(code, None, NO_DATA, f"no traded bars in {first}..{last} ({dropped})", attempts, dropped)
