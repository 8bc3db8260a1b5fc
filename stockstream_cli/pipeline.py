"""run-local and rerun-failed: the state machine's semantics on threads.

The orchestration decides order, concurrency and retries, never rows: the symbols step (asx.py) and each
batch (fetch.py) read and write the store themselves. It mirrors infra/asl.json:

- the symbols step is retried on failure (MaxAttempts 3 after the first try, BackoffRate 2); when it still
  fails the run stops (the local stand-in for the SNS alert);
- the batches run with at most `settings.concurrency` at once; a batch whose task fails is retried
  (MaxAttempts 2, BackoffRate 2) and then recorded as failed, never stopping the others;
- the aggregate writes runs/D/run.json: the contract's summary plus what a later `status` wants to know,
  and the data-quality step's "quality" block (quality.run_quality, as the state machine's CheckDataQuality).

Ctrl-C: the main thread sets a stop event; every worker's pacer raises `RunCancelled` before its next
request, so a batch in flight is dropped before anything of it is written (fetch.py writes a batch only at
its end, atomically) and finished batches stay. No typer or rich here.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from . import layout, manifest, yahoo
from .errors import CorruptFileError, InputError, Interrupted, StockstreamError

SYMBOLS_STEP_RETRIES = 3  # infra/asl.json UpdateASXSymbols: MaxAttempts 3
BATCH_RETRIES = 2  # infra/asl.json FetchStockData on States.TaskFailed: MaxAttempts 2
BACKOFF_RATE = 2.0
SIGNAL_CHECK_SECONDS = 0.1  # how often the main thread wakes up to notice a Ctrl-C

# What rerun-failed fetches again: the transient failures and invalid data (Yahoo corrects bad bars);
# not_found and no_data only with `rerun-failed --all`.
RETRYABLE_REASONS = yahoo.RETRYABLE | {yahoo.INVALID_DATA}

EXIT_OK, EXIT_FAILED, EXIT_PARTIAL = 0, 1, 3
SUMMARY_KEYS = (
    "date",
    "total_symbols",
    "num_batches",
    "batches_succeeded",
    "batches_failed",
    "symbols_fetched",
    "symbols_failed",
    "execution_time",
)

SymbolSource = Callable[..., dict]  # (store, day, settings, *, note) -> the `symbols --json` document


class RunCancelled(BaseException):
    """Raised inside a worker when the run is being stopped.

    A BaseException, like KeyboardInterrupt, so no `except Exception` between the pacer and the worker
    (in fetch.py or yfinance) can swallow it.
    """


class Observer:
    """What a run reports while it goes; every method may be called from a worker thread. Does nothing."""

    def note(self, message: str) -> None: ...

    def started(self, batches: Mapping[int, int]) -> None:
        """The batches about to run: {batch_number: symbols it will fetch}."""

    def symbol_done(self, batch_number: int, symbol: str, reason: str | None) -> None: ...

    def batch_retrying(self, batch_number: int, attempt: int, error: str) -> None: ...

    def batch_done(self, batch_number: int, document: dict | None, error: str | None) -> None: ...

    def stopping(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class BatchJob:
    """One batch to fetch: all of it (`subset` None) or only `subset`, merged into what is stored."""

    batch_number: int
    symbols: tuple[str, ...]  # every symbol of the batch, from the day's list
    subset: tuple[str, ...] | None = None

    @property
    def to_fetch(self) -> tuple[str, ...]:
        return self.symbols if self.subset is None else self.subset


@dataclasses.dataclass(frozen=True)
class BatchOutcome:
    batch_number: int
    document: dict | None  # the fetcher's result (None when the batch failed)
    error: str | None = None
    attempts: int = 1


# ---------------------------------------------------------------------------------------------- entry points


def asx_source(*, from_file: str | None = None, force: bool = False) -> SymbolSource:
    """The symbols step as run-local runs it: asx.update_symbols with the CLI's --from-file and --force."""

    def update(store, day: dt.date, settings, *, note: Callable[[str], None]) -> dict:
        from . import asx

        return asx.update_symbols(store, day, settings, from_file=from_file, force=force, note=note)

    return update


def run_local(store, day: dt.date, settings, *, source: SymbolSource | None = None,
              observer: Observer | None = None, stop: threading.Event | None = None,
              sleep: Callable[[float], None] | None = None) -> dict:
    """The whole pipeline for day D: symbols step, batches, aggregate. Returns the run document (run.json).

    Raises SourceError/StoreError when the symbols step fails after its retries (exit 1), InputError for
    bad input (exit 2), Interrupted on Ctrl-C (exit 130; finished batches are kept).
    """
    from .sources import http

    http.require_impersonation(settings.allow_plain_requests)  # before the list is downloaded
    observer = observer or Observer()
    control = _Control(stop or threading.Event(), sleep)
    started = time.monotonic()
    started_at = _utc_now()
    source = source or asx_source()
    with _batch_runner(store, day, settings, control) as run_batches:  # worker processes start now, if any
        try:
            document = _symbols_step(store, day, settings, source, observer, control)
        except (KeyboardInterrupt, RunCancelled):
            raise Interrupted(
                f"interrupted during the symbols step of {day.isoformat()}: nothing was fetched; "
                f"run `stockstream run-local --date {day.isoformat()}` again"
            ) from None
        batches = {item["batchNumber"]: tuple(item["symbols"]) for item in document["symbolBatches"]}
        jobs = [BatchJob(number, symbols) for number, symbols in sorted(batches.items())]
        observer.started({job.batch_number: len(job.to_fetch) for job in jobs})
        outcomes, interrupted = run_batches(jobs, observer)
    manifests = {number: outcome.document for number, outcome in outcomes.items() if outcome.document}
    errors = {number: outcome.error for number, outcome in outcomes.items() if outcome.error}
    run = run_document(day, batches, manifests, time.monotonic() - started, command="run-local",
                       started_at=started_at, batch_errors=errors, interrupted=interrupted)
    return _finish(store, day, settings, run, started_at, observer, interrupted)


def rerun_failed(store, day: dt.date, settings, *, include_all: bool = False, observer: Observer | None = None,
                 stop: threading.Event | None = None, sleep: Callable[[float], None] | None = None) -> dict:
    """Fetch again exactly what failed on D, from the store alone, and rewrite run.json.

    Batches of the day's list without a manifest are fetched whole; symbols recorded as failed with a
    retryable reason (`include_all`: any reason) are fetched and merged into their batch. When there is
    nothing to fetch and run.json already says what the store holds, no file is written.
    """
    from .sources import http

    http.require_impersonation(settings.allow_plain_requests)
    observer = observer or Observer()
    control = _Control(stop or threading.Event(), sleep)
    started = time.monotonic()
    started_at = _utc_now()
    batches, manifests, jobs = rerun_plan(store, day, include_all=include_all, observer=observer)

    observer.started({job.batch_number: len(job.to_fetch) for job in jobs})
    with _batch_runner(store, day, settings, control, jobs=len(jobs)) as run_batches:
        outcomes, interrupted = run_batches(jobs, observer)
    if jobs:
        manifests = read_manifests(store, day, batches, observer)
    errors = {number: outcome.error for number, outcome in outcomes.items() if outcome.error}
    run = run_document(day, batches, manifests, time.monotonic() - started, command="rerun-failed",
                       started_at=started_at, batch_errors=errors, interrupted=interrupted)
    stored = _read_run(store, day)
    if not jobs and _same_outcome(stored, run):
        return stored  # nothing changed: the day's run.json already says so, and stays as it is
    return _finish(store, day, settings, run, started_at, observer, interrupted)


def _finish(store, day: dt.date, settings, run: dict, started_at: str, observer: Observer, interrupted: bool) -> dict:
    """The aggregate's last steps: the data-quality check (unless stopped), run.json, Interrupted when stopped."""
    if not interrupted:
        run["quality"] = _quality_step(store, day, settings, started_at, observer)
    manifest.write_run(store, day, run)
    if interrupted:
        raise Interrupted(_interrupted_message(day, run))
    return run


def day_batches(store, day: dt.date) -> dict[int, tuple[str, ...]]:
    """{batch_number: its symbols}: every batch of symbols/D-symbols.csv."""
    from . import asx

    listings = asx.read_symbols(store, day)
    return {n: tuple(asx.batch_symbols(listings, n)) for n in asx.batch_numbers(listings)}


def rerun_plan(store, day: dt.date, *, include_all: bool = False, observer: Observer | None = None,
               ) -> tuple[dict[int, tuple[str, ...]], dict[int, dict | None], list[BatchJob]]:
    """What rerun-failed fetches for `day`, from the store alone: (the day's batches, their manifests, the jobs)."""
    batches = day_batches(store, day)
    manifests = read_manifests(store, day, batches, observer or Observer())
    return batches, manifests, plan_rerun(batches, manifests, _batches_with_data(store, day, batches),
                                          include_all=include_all)


def _batches_with_data(store, day: dt.date, batches: Iterable[int]) -> set[int]:
    """The batches whose rows are stored: in their batch file, or folded into the month's compacted file."""
    if store.exists(layout.compacted_data_key(day.strftime("%Y-%m"))):
        return set(batches)
    data_keys = set(store.list(f"{layout.RAW_DATA_PREFIX}{day.isoformat()}-batch-"))
    return {n for n in batches if layout.batch_data_key(day, n) in data_keys}


# ---------------------------------------------------------------------------------------------- pure parts


def plan_rerun(batches: Mapping[int, Iterable[str]], manifests: Mapping[int, dict | None],
               batches_with_data: set[int], *, include_all: bool = False) -> list[BatchJob]:
    """What rerun-failed fetches: whole batches with no (usable) result, and the retryable failed symbols.

    A manifest that says symbols were fetched while the batch's data file is missing counts as no result.
    """
    jobs = []
    for number, symbols in sorted(batches.items()):
        symbols = tuple(symbols)
        document = manifests.get(number)
        if document is None or (manifest.count(document, "symbols_fetched") > 0 and number not in batches_with_data):
            jobs.append(BatchJob(number, symbols))
            continue
        retry = sorted(s for s, reason in manifest.failure_reasons(document).items()
                       if s in symbols and (include_all or reason in RETRYABLE_REASONS))
        if retry:
            jobs.append(BatchJob(number, symbols, tuple(retry)))
    return jobs


def run_document(day: dt.date, batches: Mapping[int, Iterable[str]], manifests: Mapping[int, dict | None],
                 execution_time: float, *, command: str, started_at: str = "",
                 batch_errors: Mapping[int, str] | None = None, interrupted: bool = False) -> dict:
    """runs/D/run.json: the contract's summary first, then the failure reasons and batch errors.

    A batch without a manifest failed as a whole: its symbols count as failed (total = fetched + failed).
    """
    failed_symbols: set[str] = set()
    reasons: dict[str, str] = {}
    failed_batches: list[int] = []
    total = 0
    for number, symbols in sorted(batches.items()):
        symbols = set(symbols)
        total += len(symbols)
        document = manifests.get(number)
        if document is None:
            failed_batches.append(number)
            failed_symbols |= symbols
            continue
        for symbol, reason in manifest.failure_reasons(document).items():
            if symbol in symbols:
                failed_symbols.add(symbol)
                reasons[symbol] = reason
    errors = {str(n): e for n, e in sorted((batch_errors or {}).items()) if n in failed_batches}
    return {
        "date": day.isoformat(),
        "total_symbols": total,
        "num_batches": len(batches),
        "batches_succeeded": len(batches) - len(failed_batches),
        "batches_failed": failed_batches,
        "symbols_fetched": total - len(failed_symbols),
        "symbols_failed": sorted(failed_symbols),
        "execution_time": round(execution_time, 2),
        "failure_reasons": dict(sorted(reasons.items())),
        "batch_errors": errors,
        "command": command,
        "started_at": started_at,
        "finished_at": _utc_now(),
        "interrupted": interrupted,
    }


def summary(run: Mapping[str, Any]) -> dict:
    """The contract's `run-local --json` document: exactly its keys, in its order."""
    return {key: run[key] for key in SUMMARY_KEYS}


def exit_code(run: Mapping[str, Any]) -> int:
    """0 everything fetched, 1 nothing useful (no symbol fetched), 3 partial failures."""
    if run["symbols_fetched"] == 0 and run["total_symbols"] > 0:
        return EXIT_FAILED
    if run["batches_failed"] or run["symbols_failed"]:
        return EXIT_PARTIAL
    return EXIT_OK


def backoff_waits(first_wait: float, retries: int, rate: float = BACKOFF_RATE) -> list[float]:
    """The wait before each retry, as Step Functions computes it: first, first*rate, first*rate**2, ..."""
    return [first_wait * rate**k for k in range(retries)]


# ---------------------------------------------------------------------------------------------- the store


def read_manifests(store, day: dt.date, batches: Iterable[int], observer: Observer) -> dict[int, dict | None]:
    """Each batch's stored result; None for a batch with none, or with a corrupt one (noted: fetched again)."""
    present = set(store.list(layout.run_prefix(day)))
    manifests: dict[int, dict | None] = {}
    for number in batches:
        key = layout.batch_manifest_key(day, number)
        manifests[number] = _read_manifest(store, key, observer) if key in present else None
    return manifests


def _read_manifest(store, key: str, observer: Observer) -> dict | None:
    try:
        return manifest.read(store, key)
    except CorruptFileError:
        observer.note(f"{key} is not a batch result: the batch is fetched again")
        return None


def _read_run(store, day: dt.date) -> dict | None:
    """The stored run.json; a corrupt one counts as none (rerun-failed writes it again)."""
    try:
        return manifest.read_run(store, day)
    except CorruptFileError:
        return None


def _quality_step(store, day: dt.date, settings, started_at: str, observer: Observer) -> dict:
    """After the aggregate, as the state machine's CheckDataQuality: run.json's "quality" block; an
    incomplete day is a warning on stderr (observer.note), never a change of the exit code."""
    from .quality import run_quality

    return run_quality(store, day, started_at, lookback_days=settings.lookback_days, note=observer.note)


def _same_outcome(stored: dict | None, run: dict) -> bool:
    """Whether run.json already records this outcome (timings aside)."""
    if stored is None or stored.get("interrupted"):
        return False
    keys = [k for k in SUMMARY_KEYS if k != "execution_time"] + ["failure_reasons"]
    return all(stored.get(k) == run[k] for k in keys)


# ---------------------------------------------------------------------------------------------- orchestration


class _Control:
    """The stop event and the waits of one run: every wait ends early when the run is stopped."""

    def __init__(self, stop: threading.Event, sleep: Callable[[float], None] | None):
        self.stop = stop
        self._sleep = sleep

    def check(self) -> None:
        if self.stop.is_set():
            raise RunCancelled()

    def wait(self, seconds: float) -> None:
        if seconds > 0:
            if self._sleep is not None:
                self._sleep(seconds)
            else:
                self.stop.wait(seconds)
        self.check()


class StoppablePacer:
    """Wraps fetch.py's pacer: before each request, raise RunCancelled once the run is being stopped."""

    def __init__(self, inner, control: _Control):
        self._inner = inner
        self._control = control

    def wait(self) -> None:
        self._control.check()
        self._inner.wait()
        self._control.check()

    def on_success(self) -> None:
        self._inner.on_success()

    def on_rate_limited(self, retry_after: float | None = None) -> None:
        self._inner.on_rate_limited(retry_after)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


def _symbols_step(store, day, settings, source: SymbolSource, observer: Observer, control: _Control) -> dict:
    waits = backoff_waits(settings.retry_wait, SYMBOLS_STEP_RETRIES)
    for attempt in range(1, SYMBOLS_STEP_RETRIES + 2):
        control.check()
        try:
            return source(store, day, settings, note=observer.note)
        except InputError:
            raise
        except StockstreamError as error:
            if attempt > SYMBOLS_STEP_RETRIES:
                raise type(error)(
                    f"the symbols step failed {attempt} times, so nothing was fetched for {day.isoformat()}: {error}"
                ) from None
            observer.note(f"the symbols step failed (attempt {attempt} of {SYMBOLS_STEP_RETRIES + 1}): {error}; "
                          f"retrying in {waits[attempt - 1]:g} s")
            control.wait(waits[attempt - 1])
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _batch_runner(store, day: dt.date, settings, control: "_Control", jobs: int | None = None):
    """How the batches run: `run(jobs, observer) -> (outcomes, interrupted)`, on threads of this process,
    or in worker processes (started on entering, stopped on leaving) when the rate needs them (workers.py)."""
    from . import workers

    spec = workers.reopenable(store)
    processes = workers.planned_processes(settings, jobs) if spec is not None else 1
    if processes <= 1:
        yield lambda batch_jobs, observer: _run_batches(store, day, settings, batch_jobs, observer, control)
        return
    with workers.WorkerPool(spec, day, settings, processes, control) as pool:
        # this process idles while the workers fetch: build the trading calendar the quality step needs meanwhile
        threading.Thread(target=_warm_calendar, args=(day,), name="stockstream-calendar", daemon=True).start()
        yield pool.run


def _warm_calendar(day: dt.date) -> None:
    from . import calendar

    with contextlib.suppress(Exception):  # only a head start: the quality step builds it (and reports) anyway
        calendar.sessions(day, day)


def _run_batches(store, day, settings, jobs: list[BatchJob], observer: Observer,
                 control: _Control) -> tuple[dict[int, BatchOutcome], bool]:
    """Run the jobs, at most settings.concurrency at once. Returns the outcomes and whether it was stopped."""
    outcomes: dict[int, BatchOutcome] = {}
    if not jobs:
        return outcomes, False
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(settings.concurrency, len(jobs)),
                                                 thread_name_prefix="stockstream-batch")
    pacer = _run_pacer(settings, control)  # one budget for every worker of the run
    futures = [pool.submit(run_batch, store, day, settings, job, observer, control, pacer) for job in jobs]
    interrupted = False
    try:
        for future in _as_completed(futures):
            if future.exception() is not None:
                raise future.exception()
            outcome = future.result()
            outcomes[outcome.batch_number] = outcome
    except (KeyboardInterrupt, RunCancelled):
        interrupted = True
        control.stop.set()
        observer.stopping()
        pool.shutdown(wait=False, cancel_futures=True)
        _wait_for_workers(futures)
        for future in futures:
            if future.done() and not future.cancelled() and future.exception() is None:
                outcome = future.result()
                outcomes[outcome.batch_number] = outcome
    finally:
        pool.shutdown(wait=True)
    return outcomes, interrupted


def _as_completed(futures):
    """concurrent.futures.as_completed, waking up often so the main thread sees a Ctrl-C at once.

    The kernel may hand SIGINT to any thread; Python runs its handler only in the main thread, which,
    blocked without a timeout, would notice only when the next batch completed.
    """
    pending = set(futures)
    while pending:
        done, pending = concurrent.futures.wait(pending, timeout=SIGNAL_CHECK_SECONDS,
                                                return_when=concurrent.futures.FIRST_COMPLETED)
        yield from done


def _wait_for_workers(futures) -> None:
    """Let every batch in flight finish or drop out; a second Ctrl-C does not leave a half-written file."""
    # a future cancelled by shutdown(cancel_futures=True) never counts as done for wait(): skip those
    running = [future for future in futures if not future.cancelled()]
    while True:
        try:
            for _ in _as_completed(running):
                pass
            return
        except KeyboardInterrupt:
            continue


def run_batch(store, day, settings, job: BatchJob, observer: Observer, control: _Control,
               pacer: "StoppablePacer | None" = None) -> BatchOutcome:
    """One batch as the Map state runs it: the task, retried on failure, then caught and recorded."""
    from . import fetch

    waits = backoff_waits(settings.retry_wait, BATCH_RETRIES)

    def on_symbol(symbol: str, reason: str | None) -> None:
        observer.symbol_done(job.batch_number, symbol, reason)

    for attempt in range(1, BATCH_RETRIES + 2):
        control.check()
        try:
            document = fetch.fetch_batch(store, day, job.batch_number, settings,
                                         symbols=list(job.subset) if job.subset is not None else None,
                                         pacer=pacer or _run_pacer(settings, control), on_symbol=on_symbol,
                                         sleep=control.wait)
        except Exception as exc:  # the Map state catches States.ALL: one batch never stops the others
            error = _describe(exc)
            if attempt > BATCH_RETRIES:
                observer.batch_done(job.batch_number, None, error)
                return BatchOutcome(job.batch_number, None, error, attempt)
            observer.batch_retrying(job.batch_number, attempt, error)
            control.wait(waits[attempt - 1])
            continue
        observer.batch_done(job.batch_number, document, None)
        return BatchOutcome(job.batch_number, document, None, attempt)
    raise AssertionError("unreachable")


def _run_pacer(settings, control: _Control) -> StoppablePacer:
    """The pacer the run's workers share (--delay per worker, the --rate budget for all), its waits cut
    short when the run is stopped."""
    from . import pacing

    return StoppablePacer(pacing.pacer_for(settings, sleep=control.wait), control)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, StockstreamError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _interrupted_message(day: dt.date, run: dict) -> str:
    done = run["batches_succeeded"]
    return (
        f"interrupted: {done} of {run['num_batches']} batches of {day.isoformat()} finished and are kept; "
        f"run `stockstream rerun-failed --date {day.isoformat()}` to fetch the rest"
    )


def _utc_now() -> str:
    from .schema import utc_timestamp

    return utc_timestamp()
