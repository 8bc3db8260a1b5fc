"""The deployed pipeline's last step: the day's run summary (runs/D/run.json) and its data-quality check.

run-local and rerun-failed build the run document as they go (summary.run_document) and add the check
(quality.run_quality). A Step Functions execution has no such process: its CheckDataQuality step invokes
the stock-data-fetcher function with {"action": "finalize", ...}, which lands here and rebuilds the same
document from the store (the day's list and the batch manifests), so run.json has one shape and one author
whoever ran the day. No typer or rich here.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping

from ..settings import DEFAULT_LOOKBACK_DAYS


DEPLOYED_COMMAND = "stock-data-pipeline"  # run.json "command" of a run the state machine finished


def finalize_day(store, day: dt.date, *, run_started: dt.datetime, lookback_days: int = DEFAULT_LOOKBACK_DAYS,
                 execution: str | None = None, batch_errors: Mapping[int, str] | None = None,
                 now: dt.datetime | None = None, sleep: Callable[[float], None] = time.sleep) -> dict:
    """Write runs/D/run.json for a run that started at `run_started`, with its "quality" block; return it.

    Every batch of the day's list counts, as in rerun-failed: a rerun execution that carried only the
    failed batches still leaves the summary of the whole day. Written under the day's lock, as every writer
    of a day writes: the Map's batches have ended, but one killed by Lambda leaves its batch lock live for up
    to DEAD_HOLDER_WAIT; another process writing the day (run-local, rerun-failed) for longer is LockHeld,
    naming it.
    """
    from ..dataset.commit import DEAD_HOLDER_WAIT, day_writer
    from ..dataset.summary import read_manifests, run_document
    from ..dataset.symbols import day_batches
    from .types import Observer
    from ..quality.reverify import quality_step
    from ..schema import utc_timestamp

    with day_writer(store, day, DEPLOYED_COMMAND, wait=True, wait_at_most=DEAD_HOLDER_WAIT, sleep=sleep) as writer:
        batches = day_batches(store, day)
        manifests = read_manifests(store, day, batches, Observer().note)
        finished = now or dt.datetime.now(dt.timezone.utc)
        run = run_document(day, batches, manifests, max((finished - run_started).total_seconds(), 0.0),
                           command=DEPLOYED_COMMAND, finished_at=utc_timestamp(finished),
                           started_at=utc_timestamp(run_started), batch_errors=batch_errors)
        if execution:
            run["execution"] = execution
        run["quality"], reverified = quality_step(store, day, run_started, lookback_days=lookback_days,
                                                  note=lambda message: None, commit=writer.commit_suspicions)
        if reverified is not None:
            run["reverify"] = reverified
        writer.commit_run(day, run)
    return run
