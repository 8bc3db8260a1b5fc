"""One batch as the state machine's Map runs it: the fetch task, retried on failure, then caught and recorded.

Threads of one process (local.py) and worker processes (workers.py) both run batches through `run_batch`,
so a batch is retried and recorded the same way whichever runs it. No typer or rich here.
"""

from __future__ import annotations

from ..dataset import manifest
from ..errors import BatchCutShort, StockstreamError, Unhealable
from ..fetch.deadline import Deadline
from .batch import fetch_batch
from .types import BATCH_RETRIES, BatchJob, BatchOutcome, Control, Observer, StoppablePacer, backoff_waits


def run_batch(writer, day, settings, job: BatchJob, observer: Observer, control: Control,
               pacer: "StoppablePacer | None" = None) -> BatchOutcome:
    """One batch as the Map state runs it: the task, retried on failure, then caught and recorded; its
    commits go through `writer` (dataset.commit.Writer, holding the day's lock)."""
    waits = backoff_waits(settings.retry_wait, BATCH_RETRIES)

    def on_symbol(symbol: str, reason: str | None) -> None:
        observer.symbol_done(job.batch_number, symbol, reason)

    subset = job.subset
    for attempt in range(1, BATCH_RETRIES + 2):
        control.check()
        try:
            record = fetch_batch(writer, day, job.batch_number, settings,
                                 symbols=list(subset) if subset is not None else None,
                                 pacer=pacer or run_pacer(settings, control), on_symbol=on_symbol,
                                 sleep=control.wait, deadline=Deadline(stop=control.stop,
                                                                           stopped_detail=control.stopped_detail))
        except Exception as exc:  # the Map state catches States.ALL: one batch never stops the others
            if isinstance(exc, Unhealable):
                raise  # a full disk, a store that is a file: no retry heals it (the runner stops the run)
            error = _describe(exc)
            if isinstance(exc, BatchCutShort):
                subset = manifest.resume(exc.record, subset)
            control.check()  # the run is stopping (Ctrl-C, an error no retry heals): no retry to announce
            if attempt > BATCH_RETRIES:
                observer.batch_done(job.batch_number, None, error)
                return BatchOutcome(job.batch_number, None, error, attempt)
            observer.batch_retrying(job.batch_number, attempt, error)
            control.wait(waits[attempt - 1])
            continue
        observer.batch_done(job.batch_number, record, None)
        return BatchOutcome(job.batch_number, record, None, attempt)
    raise AssertionError("unreachable")


def run_pacer(settings, control: Control) -> StoppablePacer:
    """The pacer the run's workers share (--delay per worker, the --rate budget for all), its waits cut
    short when the run is stopped."""
    from ..fetch import pacing

    return StoppablePacer(pacing.pacer_for(settings, sleep=control.wait), control)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, StockstreamError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
