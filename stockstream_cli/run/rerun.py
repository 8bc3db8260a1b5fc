"""rerun-failed: fetch again exactly what failed on a day, from the store alone, and rewrite run.json.

What to fetch is a pure plan (`plan_rerun`) over the day's batches, their manifests and which batches have
data; the batches then run as run-local runs them (local.py). `rerun-failed --remote` uses the same plan
(aws/remote.py). No typer or rich here.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from ..dataset import layout
from .. import reasons
from ..dataset import manifest
from ..dataset.commit import Writer, day_writer
from .local import batch_runner, finish_run, part_symbols
from ..dataset.summary import keep_day_run, read_manifests, run_document, same_outcome, stored_run, utc_now
from ..dataset.symbols import day_batches
from .types import BatchJob, Control, Observer, Part



def rerun_failed(store, day: dt.date, settings, *, include_all: bool = False, observer: Observer | None = None,
                 stop: threading.Event | None = None, sleep: Callable[[float], None] | None = None,
                 wait: bool = False) -> dict:
    """Fetch again exactly what failed on D, from the store alone, and rewrite run.json, under the day's lock.

    Batches of the day's list without a record are fetched whole; symbols recorded as failed with a
    retryable reason (`include_all`: any reason) are fetched and merged into their batch. When there is
    nothing to fetch and run.json already says what the store holds, no file is written.
    """
    from ..sources import http

    http.require_impersonation(settings.allow_plain_requests)  # before the list is downloaded
    with day_writer(store, day, "rerun-failed", wait=wait) as writer:
        return _rerun(writer, day, settings, include_all, observer, stop, sleep)


def _rerun(writer: Writer, day: dt.date, settings, include_all: bool, observer: Observer | None,
           stop: threading.Event | None, sleep: Callable[[float], None] | None) -> dict:
    store = writer.store
    observer = observer or Observer()
    control = Control(stop or threading.Event(), sleep)
    started = time.monotonic()
    started_at = utc_now()
    stored = stored_run(store, day)
    part = Part.from_document((stored or {}).get("part"))  # a run of part of the day: only that part
    batches, manifests, jobs = rerun_plan(store, day, include_all=include_all, observer=observer, part=part)

    observer.started({job.batch_number: len(job.to_fetch) for job in jobs})
    with batch_runner(writer, day, settings, control, jobs=len(jobs)) as run_batches:
        outcomes, interrupted = run_batches(jobs, observer)
    if jobs:
        manifests = read_manifests(store, day, batches, observer.note)
    errors = {number: outcome.error for number, outcome in outcomes.items() if outcome.error}
    run = run_document(day, batches, manifests, time.monotonic() - started, command="rerun-failed",
                       finished_at=utc_now(), started_at=started_at, batch_errors=errors, interrupted=interrupted)
    if part is not None:
        run["part"] = part.to_document()
    if not jobs and same_outcome(stored, run):
        # nothing changed: the day's run.json already says so, and stays as it is
        return {**stored, NOTHING_TO_DO: True}
    keep_day_run(run, stored)
    finished = finish_run(writer, day, settings, run, started_at, observer, interrupted, part_symbols(part, batches))
    return finished if jobs else {**finished, NOTHING_TO_DO: True}


NOTHING_TO_DO = "nothing_to_do"  # marks the run rerun_failed returns when there was nothing to fetch


def rerun_plan(store, day: dt.date, *, include_all: bool = False, observer: Observer | None = None,
               part: Part | None = None,
               ) -> tuple[dict[int, tuple[str, ...]], dict[int, manifest.Record | None], list[BatchJob]]:
    """What rerun-failed fetches for `day`, from the store alone: (the batches judged — the day's, or with
    `part` only the symbols it asked for in each of its batches —, their manifests, the jobs)."""
    listed = day_batches(store, day)
    batches = part.asked(listed) if part is not None else listed
    manifests = read_manifests(store, day, batches, (observer or Observer()).note)
    return batches, manifests, plan_rerun(batches, manifests, _batches_with_data(store, day, batches),
                                          include_all=include_all, members=listed)


def _batches_with_data(store, day: dt.date, batches: Iterable[int]) -> set[int]:
    """The batches whose rows are stored: in their batch file, or folded into the month's compacted file
    (as its record says; a compacted file from before the record: every batch, as nothing says otherwise)."""
    from ..dataset.compact import folded_batches

    batches = set(batches)
    data_keys = set(store.list(layout.batch_data_prefix(day)))
    with_files = {n for n in batches if layout.batch_data_key(day, n) in data_keys}
    month_key = layout.compacted_data_key(day.strftime("%Y-%m"))
    if with_files == batches or not store.exists(month_key):
        return with_files
    folded = folded_batches(store, month_key)
    if folded is None:
        return batches
    return with_files | (batches & set(folded.get(day.isoformat(), ())))


def plan_rerun(batches: Mapping[int, Iterable[str]], manifests: Mapping[int, manifest.Record | None],
               batches_with_data: set[int], *, include_all: bool = False,
               members: Mapping[int, Iterable[str]] | None = None) -> list[BatchJob]:
    """What rerun-failed fetches: whole batches with no (usable) result, and the retryable failed symbols.

    `batches`: the symbols asked of each batch; `members`: each batch's symbols in the day's list, when only a
    part of them was asked (a run of part of the day): a batch with no result then fetches its asked ones.
    A manifest that says symbols were fetched while the batch's data file is missing counts as no result.
    """
    jobs = []
    for number, symbols in sorted(batches.items()):
        symbols = tuple(symbols)
        whole = tuple(members[number]) if members is not None else symbols
        record = manifests.get(number)
        if record is None or (record.symbols_fetched > 0 and number not in batches_with_data):
            jobs.append(BatchJob(number, whole, None if symbols == whole else symbols))
            continue
        retry = sorted(s for s, reason in record.failure_reasons.items()
                       if s in symbols and (include_all or reason in reasons.RERUN))
        if retry:
            jobs.append(BatchJob(number, whole, tuple(retry)))
    return jobs
