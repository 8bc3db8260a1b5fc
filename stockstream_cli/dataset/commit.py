"""The one way anything is written to the dataset: a writer holds the lock its writes need, stages what it
fetched, and the commit stores it in the one safe order — rows, then actions, then repairs, then the record.

    with day_writer(store, day, "run-local") as writer:            # or batch_writer(store, day, n, ...)
        record = writer.commit_batch(day, n, fetched, window=(first, last), execution_time=s)

Why that order: the record is what makes a batch (or a backfill chunk) "done" for rerun-failed, status, check
and the resume rule, so it goes last; actions go after the rows they restate, so a crash between the two leaves
restated rows with the action unrecorded (the next fetch sees the action as new and refetches: the same
answer), never a recorded action over rows in the old units. Every put is atomic (store.py), so at any crash
a reader sees the old file or the new one.

A batch merges into what is stored (a rerun of some symbols never loses the others' rows; newest fetch wins,
newest.py) and its record merges with the stored one (manifest.batch_record). A backfill chunk is written
whole: its number is new, or reused after a crash left its data file without a record. Compaction
(compact.py) folds committed files under the day writers of the days it folds.

Locks (locks.py) are taken here and nowhere else: the writers are the only holders. No typer or rich here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

from ..errors import BatchFailed, StoreError, Unhealable
from ..reasons import TRANSIENT
from . import layout, locks, manifest
from .actions import store_actions
from .datafile import read_batch_rows, to_parquet_bytes
from .newest import merge_rows

if TYPE_CHECKING:
    import polars as pl


class Fetched(Protocol):
    """What a fetch hands the commit for one symbol (fetch.batch.SymbolResult is one)."""

    symbol: str
    rows: "pl.DataFrame | None"  # clean rows in the contract's schema; None when it failed
    actions: "pl.DataFrame | None"  # the dividends and splits its answer carried
    failure: str | None  # one of reasons.ALL
    detail: str
    attempts: int  # requests sent for it
    dropped: dict[str, int]  # rows dropped by cleaning, by reason
    restated_from: dt.date | None  # set when its stored range was fetched again (fetch/restate.py)
    repairs: "pl.DataFrame | None"  # the days it stored repaired (repairs.py), None for none


@dataclasses.dataclass(frozen=True)
class Writer:
    """The right to write what its locks cover; every write of a batch, a backfill chunk or a run summary
    goes through it."""

    store: object
    command: str

    def commit_batch(self, day: dt.date, batch_number: int, fetched: Sequence[Fetched], *,
                     window: tuple[dt.date, dt.date], execution_time: float, fetched_at: str,
                     reverified: dict[str, list[str]] | None = None) -> manifest.Record:
        """Merge `fetched` into batch N of day D: rows, actions, then the batch's record; the record stored.

        BatchFailed (nothing written) when no symbol has data and every failure is retryable: Yahoo refused
        or could not be reached, and a retry of the batch may do better. BatchFailed also when a file cannot
        be written for a reason a retry may heal; Unhealable ones (a full disk) are raised as they are."""
        data_key = layout.batch_data_key(day, batch_number)
        previous_rows = read_batch_rows(self.store, data_key)
        previous = manifest.read(self.store, layout.batch_manifest_key(day, batch_number))
        rows = merge_rows(previous_rows, [one.rows for one in fetched if one.rows is not None])
        record = manifest.batch_record(day, batch_number, fetched, rows, previous, previous_rows, window,
                                       execution_time=execution_time, fetched_at=fetched_at)
        what = f"batch {batch_number} of {day.isoformat()}"
        if whole_batch_failed(record):
            raise BatchFailed(f"{what} failed: no symbol has data and every failure is retryable "
                              f"({_reason_counts(record.failure_reasons)}); nothing was written")
        with _as_batch_failure(f"{what} could not be written"):
            self.store.put(data_key, to_parquet_bytes(rows))
        with _as_batch_failure(f"{what}: actions could not be written"):
            written = self._store_actions(fetched)
        with _as_batch_failure(f"{what}: repairs could not be written"):
            repaired = self._store_repairs(fetched)
        details = {**record.details, "actions_written": written}
        if reverified:
            details["reverified"] = reverified  # symbol -> the open suspicions its one request fetched again
        if repaired:
            details["repairs_written"] = repaired
        record = dataclasses.replace(record, details=details)
        with _as_batch_failure(f"{what} could not be written"):
            self.store.put(layout.batch_manifest_key(day, batch_number), manifest.encode(record))
        return record

    def commit_backfill(self, end: dt.date, number: int, start: dt.date, chunk: Sequence[str],
                        fetched: Sequence[Fetched], *, execution_time: float, fetched_at: str) -> manifest.Record:
        """Backfill chunk N of [start, end]: its rows (when it has any), actions, then its record."""
        rows = merge_rows(None, [one.rows for one in fetched if one.rows is not None])
        data_key = layout.backfill_data_key(end, number) if rows.height else None
        if data_key is not None:
            self.store.put(data_key, to_parquet_bytes(rows))
        self._store_actions(fetched)
        self._store_repairs(fetched)
        record = manifest.backfill_record(number, start, end, chunk, fetched, rows, data_key,
                                          execution_time=execution_time, fetched_at=fetched_at)
        self.store.put(layout.backfill_manifest_key(end, number), manifest.encode(record))
        return record

    def commit_run(self, day: dt.date, run: dict) -> None:
        """runs/D/run.json (summary.py builds it)."""
        from .summary import write_run

        write_run(self.store, day, run)

    def commit_suspicions(self, day: dt.date, suspicions: list) -> None:
        """suspicions/open.json, the quality step's (quality/reverify.py) after the run's batches."""
        from .suspicions import write_open

        write_open(self.store, day, suspicions)

    def _store_repairs(self, fetched: Iterable[Fetched]) -> list[str]:
        """Each fetched symbol's repaired days into repairs/SYMBOL.parquet (its records of the days it fetched
        replaced), where something changed; the symbols written."""
        from .repairs import repaired_symbols, store_repairs

        fetched = [one for one in fetched if one.failure is None and one.rows is not None]
        if not fetched:
            return []
        held = repaired_symbols(self.store)
        return [one.symbol for one in fetched
                if store_repairs(self.store, one.symbol, one.rows["date"].to_list(), getattr(one, "repairs", None),
                                 one.symbol in held)]

    def _store_actions(self, fetched: Iterable[Fetched]) -> list[str]:
        """The actions of every symbol fetched, merged into actions/SYMBOL.parquet where something is new;
        the symbols written."""
        return [one.symbol for one in fetched if _has_actions(one) and store_actions(self.store, one.symbol, one.actions)]


# The longest a lock left by a holder killed without releasing it (a Lambda timed out) stays live: the wait of a
# writer that runs after every other writer of its day should have ended (the deployed run's summary).
DEAD_HOLDER_WAIT = locks.STALE_AFTER_SECONDS + 2 * locks.WAIT_POLL_SECONDS


@contextlib.contextmanager
def day_writer(store, days: dt.date | Iterable[dt.date], command: str, *, wait: bool = False,
               wait_at_most: float | None = None, sleep=time.sleep) -> Iterator[Writer]:
    """A writer of whole days (run-local, rerun-failed, backfill, compact, the deployed run's summary), holding
    each day's lock: a second writer is refused (LockHeld naming the holder) or, with wait, waits (at most
    wait_at_most seconds, when given)."""
    with locks.day_lock(store, days, command, wait=wait, wait_at_most=wait_at_most, sleep=sleep):
        yield Writer(store, command)


@contextlib.contextmanager
def batch_writer(store, day: dt.date, batch_number: int, command: str, *, wait: bool = False,
                 execution: str | None = None) -> Iterator[Writer]:
    """A writer of batch N of day D alone (fetch-batch, the deployed fetcher), holding that batch's lock.
    execution: the state machine execution the deployed fetcher runs in; the lock then names it and the batch
    as its owner, so the Map's retry of an attempt that was killed takes its lock at once (locks.py)."""
    owner = locks.batch_owner(execution, batch_number)
    with locks.batch_lock(store, day, batch_number, command, wait=wait, owner=owner):
        yield Writer(store, command)


def whole_batch_failed(record: manifest.Record) -> bool:
    reasons = record.failure_reasons.values()
    return record.symbols_fetched == 0 and bool(reasons) and all(reason in TRANSIENT for reason in reasons)


@contextlib.contextmanager
def _as_batch_failure(failed: str) -> Iterator[None]:
    try:
        yield
    except StoreError as exc:
        if isinstance(exc, Unhealable):
            raise  # no retry heals it (errors.Unhealable): said once, as it is
        raise BatchFailed(f"{failed}: {exc}") from exc


def _has_actions(one: Fetched) -> bool:
    return one.failure is None and one.actions is not None and not one.actions.is_empty()


def _reason_counts(reasons: dict[str, str]) -> str:
    counts: dict[str, int] = {}
    for reason in reasons.values():
        counts[reason] = counts.get(reason, 0) + 1
    return ", ".join(f"{count} {reason}" for reason, count in sorted(counts.items()))
