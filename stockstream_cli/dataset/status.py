"""What the store holds for a day: the list, batches done and missing, symbols fetched and failed, the run.

Read from the store alone: the batches a day should have come from symbols/D-symbols.csv (its batch_number
column), a batch is done when its manifest runs/D/batch-N.json is there, and the manifests say which
symbols failed and why. runs/D/run.json, when present, adds the run's duration and outcome.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from .. import hints
from . import layout
from . import manifest
from ..outcome import Outcome
from .summary import read_run
from ..errors import CorruptFileError, InputError, KeyNotFound, first_line


RUN_DETAILS = ("command", "started_at", "finished_at", "batch_errors", "day_run", "error", "part")


@dataclasses.dataclass(frozen=True)
class DayStatus:
    date: dt.date
    store: str
    has_symbols_list: bool
    total_symbols: int
    batches: list[int]  # every batch the day should have
    batches_done: list[int]
    symbols_fetched: int
    failure_reasons: dict[str, str]  # symbol -> reason, sorted by symbol
    run: dict[str, Any] | None  # runs/D/run.json as written, None when absent

    @property
    def batches_missing(self) -> list[int]:
        return sorted(set(self.batches) - set(self.batches_done))

    @property
    def failed_by_reason(self) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for symbol, reason in self.failure_reasons.items():
            grouped.setdefault(reason, []).append(symbol)
        return {reason: sorted(grouped[reason]) for reason in sorted(grouped, key=lambda r: (-len(grouped[r]), r))}

    @property
    def complete(self) -> bool:
        return not self.batches_missing and not self.failure_reasons

    @property
    def outcome(self) -> Outcome:
        """PARTIAL when batches are missing or symbols failed (`rerun-failed --date D` finishes the day)."""
        return Outcome.COMPLETE if self.complete else Outcome.PARTIAL

    @property
    def run_outcome(self) -> str | None:
        """From run.json: succeeded, partial (some symbols or batches failed), failed (nothing fetched) or
        interrupted (stopped part way, e.g. Ctrl-C)."""
        if self.run is None:
            return None
        if self.run.get("interrupted"):
            return "interrupted"
        if self.run.get("total_symbols") and not self.run.get("symbols_fetched"):
            return "failed"
        if self.run.get("batches_failed") or self.run.get("symbols_failed"):
            return "partial"
        return "succeeded"

    def to_json(self) -> dict[str, Any]:
        run = None
        if self.run is not None:
            run = {
                "outcome": self.run_outcome,
                "execution_time": self.run.get("execution_time"),
                "batches_failed": self.run.get("batches_failed", []),
                "key": layout.run_summary_key(self.date),
            }
            # What run-local and rerun-failed add to the contract's summary, when present.
            run.update({name: self.run[name] for name in RUN_DETAILS if name in self.run})
        return {
            "date": self.date.isoformat(),
            "store": self.store,
            "complete": self.complete,
            "symbols_list": layout.symbols_key(self.date) if self.has_symbols_list else None,
            "total_symbols": self.total_symbols,
            "num_batches": len(self.batches),
            "batches_done": self.batches_done,
            "batches_missing": self.batches_missing,
            "symbols_fetched": self.symbols_fetched,
            "symbols_failed": sorted(self.failure_reasons),
            "failure_reasons": self.failure_reasons,
            "failed_by_reason": self.failed_by_reason,
            "run": run,
        }


def store_days(store) -> list[dt.date]:
    """Days with a symbols list or run records (batch manifests or run.json), oldest first."""
    days = {day for key in store.list(layout.SYMBOLS_PREFIX) if (day := layout.parse_symbols_key(key))}
    for key in store.list(layout.RUNS_PREFIX):
        manifest = layout.parse_batch_manifest_key(key)
        if manifest is not None:
            days.add(manifest[0])
        elif (day := layout.parse_run_summary_key(key)) is not None:
            days.add(day)
    return sorted(days)


def latest_day(store, days: list[dt.date] | None = None) -> dt.date:
    """The latest day in the store (store_days): what `status` and `check` report when no date is given."""
    days = store_days(store) if days is None else days
    if not days:
        raise InputError(
            f"the store {store.uri} holds no days yet: run `{hints.command('run-local')}` (or `{hints.command('symbols')}`) first"
        )
    return days[-1]


def day_status(store, day: dt.date | None = None) -> DayStatus:
    """The status of `day` (default: the latest day in the store); InputError when the store has no such day."""
    days = store_days(store)
    if day is None:
        day = latest_day(store, days)
    elif day not in days:
        raise InputError(f"the store {store.uri} has nothing for {day.isoformat()}; {describe_days(days)}")
    return _status_of(store, day)


def describe_days(days: list[dt.date]) -> str:
    if not days:
        return "it holds no days yet"
    if len(days) <= 8:
        return "it has " + ", ".join(day.isoformat() for day in days)
    latest = ", ".join(day.isoformat() for day in reversed(days[-5:]))
    return f"it has {len(days)} days from {days[0].isoformat()} to {days[-1].isoformat()} (latest: {latest})"


def _status_of(store, day: dt.date) -> DayStatus:
    listing = _batch_members(store, day)
    records = _batch_records(store, day)
    run = read_run(store, day)
    if listing is not None:
        batches = sorted(set(listing.values()) | set(records))
        total = len(listing)
    elif run is not None and isinstance(run.get("num_batches"), int):
        batches = sorted(set(range(run["num_batches"])) | set(records))
        total = int(run.get("total_symbols") or sum(record.symbols_processed for record in records.values()))
    else:
        # No list and no run summary (fetch-batch --symbols): only the batches that reported are known.
        batches = sorted(records)
        total = sum(record.symbols_processed for record in records.values())
    reasons: dict[str, str] = {}
    for record in records.values():
        reasons.update(record.failure_reasons)
    return DayStatus(
        date=day,
        store=store.uri,
        has_symbols_list=listing is not None,
        total_symbols=total,
        batches=batches,
        batches_done=sorted(records),
        symbols_fetched=sum(record.symbols_fetched for record in records.values()),
        failure_reasons=dict(sorted(reasons.items())),
        run=run,
    )


def _batch_members(store, day: dt.date) -> dict[str, int] | None:
    """symbol -> batch_number from symbols/D-symbols.csv, None when the day has no list."""
    from .symbols import from_csv

    key = layout.symbols_key(day)
    try:
        data = store.get(key)
    except KeyNotFound:
        return None
    return {listing.symbol: listing.batch_number for listing in from_csv(data, key)}


def _batch_records(store, day: dt.date) -> dict[int, manifest.Record]:
    records = {}
    for key in store.list(layout.run_prefix(day)):
        parsed = layout.parse_batch_manifest_key(key)
        if parsed is not None:
            records[parsed[1]] = batch_record(store.get(key), key)
    return records


def batch_record(data: bytes, key: str) -> manifest.Record:
    """A runs/D/batch-N.json as status needs it (without its per-symbol details); CorruptFileError naming the
    key otherwise."""
    record = manifest.parse(data, key, details=False)
    if record.batch_number is None:
        raise CorruptFileError(key, "not a fetch-batch result: no 'batch_number' field")
    return record
