"""run-local and rerun-failed: the state machine's semantics on threads.

The orchestration decides order, concurrency and retries, never rows: the symbols step (symbols.py) and each
batch (batch.py) commit through the day's writer (dataset/commit.py), taken here. It mirrors infra/asl.json:

- the symbols step is retried on failure (MaxAttempts 3 after the first try, BackoffRate 2); when it still
  fails the run stops (the local stand-in for the SNS alert);
- the batches run with at most `settings.concurrency` at once; a batch whose task fails is retried
  (MaxAttempts 2, BackoffRate 2) and then recorded as failed, never stopping the others;
- the aggregate writes runs/D/run.json: the contract's summary plus what a later `status` wants to know,
  and the data-quality step's "quality" block (quality.run_quality, as the state machine's CheckDataQuality);
- then every day before D is folded into its month's compacted file, D's month included (read/compact.py,
  as the state machine's CompactEarlierDays), under those days' locks: run.json's "compaction" block; a
  failure there, or a day another process holds, is a warning, never a failed run.

Ctrl-C: the main thread sets a stop event; every worker's pacer raises `RunCancelled` before its next
request, so a batch in flight is dropped before anything of it is written (a batch is committed only at
its end, atomically) and finished batches stay. No typer or rich here.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable

from .. import hints
from ..errors import InputError, Interrupted, StockstreamError, Unhealable, first_line
from ..dataset.commit import Writer, day_writer
from ..dataset.summary import read_manifests, run_document, utc_now
from .task import run_batch, run_pacer
from .types import (SYMBOLS_STEP_RETRIES, BatchJob, BatchOutcome, Control, Observer, RunCancelled, SymbolSource, backoff_waits)

SIGNAL_CHECK_SECONDS = 0.1  # how often the main thread wakes up to notice a Ctrl-C

# ---------------------------------------------------------------------------------------------- entry points


def asx_source(*, from_file: str | None = None, force: bool = False) -> SymbolSource:
    """The symbols step as run-local runs it: symbols.update_symbols with the CLI's --from-file and --force."""

    def update(store, day: dt.date, settings, *, note: Callable[[str], None]) -> dict:
        from .symbols import update_symbols

        return update_symbols(store, day, settings, from_file=from_file, force=force, note=note).to_document()

    return update


def run_local(store, day: dt.date, settings, *, source: SymbolSource | None = None,
              observer: Observer | None = None, stop: threading.Event | None = None,
              sleep: Callable[[float], None] | None = None, command: str = "run-local", wait: bool = False) -> dict:
    """The whole pipeline for day D, under the day's lock: symbols step, batches, aggregate. Returns the run
    document (run.json).

    Raises SourceError/StoreError when the symbols step fails after its retries (exit 1), InputError for
    bad input (exit 2; LockHeld when another writer holds the day, unless `wait`), Interrupted on Ctrl-C
    (exit 130; finished batches are kept).
    """
    from ..sources import http

    http.require_impersonation(settings.allow_plain_requests)  # before the list is downloaded
    with day_writer(store, day, command, wait=wait) as writer:
        return _run_day(writer, day, settings, source, observer, stop, sleep)


def _run_day(writer: Writer, day: dt.date, settings, source: SymbolSource | None, observer: Observer | None,
             stop: threading.Event | None, sleep: Callable[[float], None] | None) -> dict:
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
        batches = {item["batchNumber"]: tuple(item["symbols"]) for item in document["symbolBatches"]}
        jobs = [BatchJob(number, symbols) for number, symbols in sorted(batches.items())]
        observer.started({job.batch_number: len(job.to_fetch) for job in jobs})
        try:
            outcomes, interrupted = run_batches(jobs, observer)
        except Unhealable as error:
            if not isinstance(error, InputError):
                _record_stopped_run(writer, day, batches, time.monotonic() - started, started_at, error, observer)
            raise
    records = {number: outcome.record for number, outcome in outcomes.items() if outcome.record}
    errors = {number: outcome.error for number, outcome in outcomes.items() if outcome.error}
    run = run_document(day, batches, records, time.monotonic() - started, command=writer.command,
                       finished_at=utc_now(), started_at=started_at, batch_errors=errors, interrupted=interrupted)
    return finish_run(writer, day, settings, run, started_at, observer, interrupted)


def finish_run(writer: Writer, day: dt.date, settings, run: dict, started_at: str, observer: Observer,
               interrupted: bool) -> dict:
    """The aggregate's last steps: the data-quality check and the compaction of earlier days (unless stopped),
    run.json, Interrupted when stopped."""
    if not interrupted:
        run["quality"], reverified = _quality_step(writer, day, settings, started_at, observer)
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


def _quality_step(writer: Writer, day: dt.date, settings, started_at: str, observer: Observer) -> tuple[dict, dict | None]:
    """After the aggregate, as the state machine's CheckDataQuality: run.json's "quality" and "reverify"
    blocks (the re-verification of what looks suspicious: quality/reverify.py); an incomplete day is a warning on stderr
    (observer.note), never a change of the exit code."""
    from ..quality.reverify import quality_step

    return quality_step(writer.store, day, started_at, lookback_days=settings.lookback_days, note=observer.note,
                        commit=writer.commit_suspicions)


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
                control.stop.set()
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
        control.stop.set()
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
    done = run["batches_succeeded"]
    return (
        f"interrupted: {done} of {run['num_batches']} batches of {day.isoformat()} finished and are kept; "
        f"run `{hints.command('rerun-failed', '--date', day.isoformat())}` to fetch the rest"
    )

