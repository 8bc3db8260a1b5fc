"""run-local and rerun-failed: the state machine's semantics on threads.

The orchestration decides order, concurrency and retries, never rows: the symbols step (symbols.py) and each
batch (batch.py) commit through the day's writer (dataset/commit.py), taken here. It mirrors infra/asl.json:

- the symbols step is retried on failure (MaxAttempts 3 after the first try, BackoffRate 2); when it still
  fails the run stops (the local stand-in for the SNS alert);
- the batches run with at most `settings.concurrency` at once; a batch whose task fails is retried
  (MaxAttempts 2, BackoffRate 2) and then recorded as failed, never stopping the others;
- the aggregate writes runs/D/run.json: the contract's summary plus what a later `status` wants to know,
  and the data-quality step's "quality" block (quality.run_quality, as the state machine's CheckDataQuality);
- then every day before D is folded into its month's compacted file, D's month included (dataset/compact.py,
  as the state machine's CompactEarlierDays), under those days' locks: run.json's "compaction" block; a
  failure there, or a day another process holds, is a warning, never a failed run.

Ctrl-C (and SIGTERM, which the CLI turns into one): the main thread sets a stop event; every batch in flight
takes no new symbol, commits what it fetched (the rest recorded as `interrupted`, worded as a stop, not a
deadline) unless it fetched nothing, and finished batches stay. run.json and the message are then built from
the stored records, so they say what `status` and `rerun-failed` find. No typer or rich here.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable

from .. import hints
from ..errors import InputError, Interrupted, StockstreamError, Unhealable, first_line, named
from ..dataset.commit import Writer, day_writer
from ..dataset.summary import read_manifests, run_document, utc_now
from .task import run_batch, run_pacer
from .types import (SYMBOLS_STEP_RETRIES, BatchJob, BatchOutcome, Control, Observer, Part, RunCancelled, SymbolSource,
                    backoff_waits)

SIGNAL_CHECK_SECONDS = 0.1  # how often the main thread wakes up to notice a Ctrl-C

# ---------------------------------------------------------------------------------------------- entry points


def asx_source(*, from_file: str | None = None, force: bool = False) -> SymbolSource:
    """The symbols step as run-local runs it: symbols.update_symbols with the CLI's --from-file and --force."""

    def update(store, day: dt.date, settings, *, note: Callable[[str], None]) -> dict:
        from .symbols import update_symbols

        return update_symbols(store, day, settings, from_file=from_file, force=force, note=note).to_document()

    return update


def stored_or_asx_source(*, from_file: str | None = None, force: bool = False, refresh: bool = False,
                        part: Part | None = None) -> SymbolSource:
    """run-local's symbols step: the day's list already in the store (from `symbols`, or an earlier run) is used
    as it is, said in one note (after `part` is checked against it: bad input is its one line alone);
    otherwise, or with `refresh` or a list file, asx_source."""
    fetch = asx_source(from_file=from_file, force=force)

    def update(store, day: dt.date, settings, *, note: Callable[[str], None]) -> dict:
        from .symbols import stored_list

        if not refresh and from_file is None:
            listed = stored_list(store, day)
            if listed is not None:
                if part is not None:
                    part.check({item["batchNumber"]: tuple(item["symbols"]) for item in listed.batches},
                               day.isoformat())
                note(f"using the stored ASX list {listed.key} ({len(listed.symbols):,} symbols, "
                     f"{len(listed.batches)} batches); {named('refresh_list')} downloads it again")
                return listed.to_document()
        return fetch(store, day, settings, note=note)

    return update


def run_local(store, day: dt.date, settings, *, source: SymbolSource | None = None,
              observer: Observer | None = None, stop: threading.Event | None = None,
              sleep: Callable[[float], None] | None = None, command: str = "run-local", wait: bool = False,
              part: Part | None = None) -> dict:
    """The whole pipeline for day D, under the day's lock: symbols step, batches, aggregate. Returns the run
    document (run.json). `part`: only these symbols or batches of the day (types.Part), recorded in run.json
    as "part" so rerun-failed and check know what was asked.

    Raises SourceError/StoreError when the symbols step fails after its retries (exit 1), InputError for
    bad input (exit 2; LockHeld when another writer holds the day, unless `wait`; a part the day's list does
    not have, before any request to Yahoo), Interrupted on Ctrl-C (exit 130; finished batches are kept).
    """
    from ..sources import http

    http.require_impersonation(settings.allow_plain_requests)  # before the list is downloaded
    with day_writer(store, day, command, wait=wait) as writer:
        return _run_day(writer, day, settings, source, observer, stop, sleep, part)


def _run_day(writer: Writer, day: dt.date, settings, source: SymbolSource | None, observer: Observer | None,
             stop: threading.Event | None, sleep: Callable[[float], None] | None, part: Part | None) -> dict:
    store = writer.store
    observer = observer or Observer()
    control = Control(stop or threading.Event(), sleep)
    started = time.monotonic()
    started_at = utc_now()
    source = source or asx_source()
    with batch_runner(writer, day, settings, control) as run_batches:  # worker processes start now, if any
        try:
            document = _symbols_step(store, day, settings, source, observer, control)
        except (KeyboardInterrupt, RunCancelled):
            raise Interrupted(
                f"interrupted during the symbols step of {day.isoformat()}: nothing was fetched; "
                f"run `{hints.command('run-local', '--date', day.isoformat())}` again"
            ) from None
        day_batches = {item["batchNumber"]: tuple(item["symbols"]) for item in document["symbolBatches"]}
        if part is not None:
            part.check(day_batches, day.isoformat())  # before any request to Yahoo
        jobs = part.jobs(day_batches) if part is not None else [
            BatchJob(number, symbols) for number, symbols in sorted(day_batches.items())]
        batches = part.asked(day_batches) if part is not None else day_batches
        observer.started({job.batch_number: len(job.to_fetch) for job in jobs})
        try:
            outcomes, interrupted = run_batches(jobs, observer)
        except Unhealable as error:
            if not isinstance(error, InputError):
                _record_stopped_run(writer, day, batches, time.monotonic() - started, started_at, error, observer)
            raise
    # the stored records, not the outcomes: a batch cut short by a stop has no outcome, yet it committed what
    # it fetched, and run.json must say what status and rerun-failed will find
    records = read_manifests(store, day, batches, observer.note)
    errors = {number: outcome.error for number, outcome in outcomes.items() if outcome.error}
    run = run_document(day, batches, records, time.monotonic() - started, command=writer.command,
                       finished_at=utc_now(), started_at=started_at, batch_errors=errors, interrupted=interrupted)
    if part is not None:
        run["part"] = part.to_document()
    return finish_run(writer, day, settings, run, started_at, observer, interrupted, part_symbols(part, batches))


def finish_run(writer: Writer, day: dt.date, settings, run: dict, started_at: str, observer: Observer,
               interrupted: bool, judged: list[str] | None = None) -> dict:
    """The aggregate's last steps: the data-quality check (of the `judged` symbols alone, for a part of the day)
    and the compaction of earlier days (unless stopped), run.json, Interrupted when stopped."""
    if not interrupted:
        run["quality"], reverified = _quality_step(writer, day, settings, started_at, observer, judged)
        if reverified is not None:
            run["reverify"] = reverified
        run["compaction"] = _compaction_step(writer.store, day, run["command"], observer)
    writer.commit_run(day, run)
    if interrupted:
        raise Interrupted(_interrupted_message(day, run))
    return run


def _record_stopped_run(writer: Writer, day: dt.date, batches: dict, seconds: float, started_at: str,
                        error: Unhealable, observer: Observer) -> None:
    """run.json of a run stopped by an error no retry heals (Yahoo unreachable, a full disk): the batches
    the store holds, and the error ("error"). Best effort: the store itself may be what failed."""
    with contextlib.suppress(StockstreamError):
        manifests = read_manifests(writer.store, day, batches, observer.note)
        missing = {number: first_line(error) for number, record in manifests.items() if record is None}
        run = run_document(day, batches, manifests, seconds, command=writer.command, finished_at=utc_now(),
                           started_at=started_at, batch_errors=missing)
        run["error"] = first_line(error)
        writer.commit_run(day, run)


# ---------------------------------------------------------------------------------------------- pure parts


# ---------------------------------------------------------------------------------------------- the store


def part_symbols(part: Part | None, asked: dict[int, tuple[str, ...]]) -> list[str] | None:
    """The symbols a part of the day asked for (None: the whole day)."""
    return None if part is None else sorted({symbol for members in asked.values() for symbol in members})


def _quality_step(writer: Writer, day: dt.date, settings, started_at: str, observer: Observer,
                  symbols: list[str] | None = None) -> tuple[dict, dict | None]:
    """After the aggregate, as the state machine's CheckDataQuality: run.json's "quality" and "reverify"
    blocks (the re-verification of what looks suspicious: quality/reverify.py); an incomplete day is a warning
    on stderr (observer.note), never a change of the exit code. A part of the day (`symbols`) is judged on
    what was asked."""
    from ..quality.reverify import quality_step

    return quality_step(writer.store, day, started_at, lookback_days=settings.lookback_days, note=observer.note,
                        commit=writer.commit_suspicions, symbols=symbols)


def _compaction_step(store, day: dt.date, command: str, observer: Observer) -> dict:
    """Fold every day before `day` into its month's compacted file, so reading back stays fast with nobody
    running `compact`; a failure is a note (the data is fetched, and the next run compacts what is left).
    The command holds `day`'s lock itself; the step takes the earlier days' (compact_earlier_days)."""
    from ..dataset.compact import compact_earlier_days

    try:
        return compact_earlier_days(store, day, command=command, note=observer.note)
    except StockstreamError as error:
        observer.note(f"compacting the days before {day.isoformat()} failed: {error}; the next run tries again")
        return {"error": str(error)}


# ---------------------------------------------------------------------------------------------- orchestration


def _symbols_step(store, day, settings, source: SymbolSource, observer: Observer, control: Control) -> dict:
    waits = backoff_waits(settings.retry_wait, SYMBOLS_STEP_RETRIES)
    for attempt in range(1, SYMBOLS_STEP_RETRIES + 2):
        control.check()
        try:
            return source(store, day, settings, note=observer.note)
        except (InputError, Unhealable):
            raise  # retrying cannot help: one line, now
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
def batch_runner(writer: Writer, day: dt.date, settings, control: "Control", jobs: int | None = None):
    """How the batches run: `run(jobs, observer) -> (outcomes, interrupted)`, on threads of this process,
    or in worker processes (started on entering, stopped on leaving) when the rate needs them (workers.py);
    they commit through `writer`, whose day lock this process holds."""
    from . import workers

    spec = workers.reopenable(writer.store)
    processes = workers.planned_processes(settings, jobs) if spec is not None else 1
    if processes <= 1:
        yield lambda batch_jobs, observer: _run_batches(writer, day, settings, batch_jobs, observer, control)
        return
    with workers.WorkerPool(spec, day, settings, processes, control, command=writer.command) as pool:
        # this process idles while the workers fetch: build the trading calendar the quality step needs meanwhile
        threading.Thread(target=_warm_calendar, args=(day,), name="stockstream-calendar", daemon=True).start()
        yield pool.run


def _warm_calendar(day: dt.date) -> None:
    from .. import calendar

    with contextlib.suppress(Exception):  # only a head start: the quality step builds it (and reports) anyway
        calendar.sessions(day, day)


def _run_batches(writer: Writer, day, settings, jobs: list[BatchJob], observer: Observer,
                 control: Control) -> tuple[dict[int, BatchOutcome], bool]:
    """Run the jobs, at most settings.concurrency at once. Returns the outcomes and whether it was stopped."""
    outcomes: dict[int, BatchOutcome] = {}
    if not jobs:
        return outcomes, False
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(settings.concurrency, len(jobs)),
                                                 thread_name_prefix="stockstream-batch")
    pacer = run_pacer(settings, control)  # one budget for every worker of the run
    fatal: list[Unhealable] = []  # an error no retry heals, seen by a batch: it stops the run (_run_or_stop)
    futures = [pool.submit(_run_or_stop, fatal, writer, day, settings, job, observer, control, pacer) for job in jobs]
    interrupted = False
    try:
        for future in _as_completed(futures):
            if future.exception() is not None:
                control.fail()
                raise future.exception()
            outcome = future.result()
            outcomes[outcome.batch_number] = outcome
    except (KeyboardInterrupt, RunCancelled):
        interrupted = True
        control.stop.set()
        if not fatal:
            observer.stopping()
        pool.shutdown(wait=False, cancel_futures=True)
        _wait_for_workers(futures)
        if fatal:  # the other batches stopped because of it: its one line is what the user is told
            raise fatal[0] from None
        for future in futures:
            if future.done() and not future.cancelled() and future.exception() is None:
                outcome = future.result()
                outcomes[outcome.batch_number] = outcome
    finally:
        pool.shutdown(wait=True)
    return outcomes, interrupted


def _run_or_stop(fatal: list, writer: Writer, day, settings, job: BatchJob, observer: Observer, control: Control,
                 pacer) -> BatchOutcome:
    """run_batch, stopping the run at once on an error no retry heals (every batch would fail the same way)."""
    try:
        return run_batch(writer, day, settings, job, observer, control, pacer)
    except Unhealable as error:
        fatal.append(error)  # before the stop, so whoever sees the stop sees why
        control.fail()
        raise


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


def _interrupted_message(day: dt.date, run: dict) -> str:
    """What a stopped run kept, in run.json's numbers (which are the stored records')."""
    from ..reasons import INTERRUPTED

    with_result = run["num_batches"] - len(run["batches_failed"])
    left = sum(1 for reason in run["failure_reasons"].values() if reason == INTERRUPTED)
    cut = f", {left:,} of their symbols recorded as interrupted" if left else ""
    return (
        f"interrupted: {run['symbols_fetched']:,} of {run['total_symbols']:,} symbols of {day.isoformat()} are "
        f"stored, in {with_result} of {run['num_batches']} batches{cut}; "
        f"run `{hints.command('rerun-failed', '--date', day.isoformat())}` to fetch the rest"
    )
