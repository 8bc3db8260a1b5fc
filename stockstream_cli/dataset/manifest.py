"""The batch and backfill records in runs/D/ (batch-N.json, backfill-N.json) as one typed record: parsed once,
written once, and read by everything that decides from them (rerun-failed, status, check, backfill, the
resume rule).

A record is what makes a batch "done", so parsing refuses anything but a JSON object with a well-formed
"metadata" (a CorruptFileError naming the key) and gives a failed symbol without a recorded reason the reason
"error"; what to do with a corrupt record is each caller's policy. The JSON shape is the contract's (README:
fetch-batch, backfill, Store layout): the fields every record has are typed here, the rest (per-symbol details,
row counts) ride along in `details` in the order they were written. run.json is summary.py's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import CorruptFileError, KeyNotFound, first_line
from ..outcome import Outcome
from ..reasons import LATER, UNRECORDED

if TYPE_CHECKING:
    import polars as pl

_COUNTS = ("batch_number", "backfill_number", "symbols_processed", "symbols_fetched")
# the contract's fields, in the contract's order; everything else a record holds is kept in `details`
_TYPED = ("batch_number", "backfill_number", "start", "end", "symbols_processed", "symbols_fetched",
          "symbols_failed", "failure_reasons", "execution_time", "s3_key", "window", "symbols")


@dataclasses.dataclass(frozen=True)
class Record:
    """One runs/D/batch-N.json (batch_number set) or runs/D/backfill-N.json (backfill_number set)."""

    batch_number: int | None
    backfill_number: int | None
    symbols_processed: int
    symbols_fetched: int
    failure_reasons: dict[str, str]  # every failed symbol, sorted; one recorded without a reason: UNRECORDED
    execution_time: float | None
    s3_key: str | None
    symbols: tuple[str, ...] | None = None  # a batch's members so far; a backfill chunk's symbols
    window: tuple[dt.date, dt.date] | None = None  # the days a batch's fetch asked for
    covers: tuple[dt.date, dt.date] | None = None  # a backfill's [start, end]
    body: str = ""
    details: dict[str, Any] = dataclasses.field(default_factory=dict)  # every other field, as written

    @property
    def symbols_failed(self) -> list[str]:
        return sorted(self.failure_reasons)

    @property
    def outcome(self) -> Outcome:
        """COMPLETE when no symbol failed (or none was asked for), else PARTIAL (the failures are recorded,
        for rerun-failed or the same backfill again)."""
        return Outcome.PARTIAL if self.failure_reasons else Outcome.COMPLETE

    def later(self) -> tuple[str, ...]:
        """The symbols a batch cut short (blocked, at its deadline) left for its next attempt."""
        return tuple(sorted(s for s, reason in self.failure_reasons.items() if reason in LATER))

    def to_document(self) -> dict[str, Any]:
        """The contract's JSON document."""
        metadata: dict[str, Any] = {}
        for name in _TYPED:
            value = self._field(name)
            if value is not _ABSENT:
                metadata[name] = value
        metadata.update(self.details)
        return {"statusCode": 200, "body": self.body, "metadata": metadata}

    def _field(self, name: str) -> Any:
        if name in ("batch_number", "backfill_number"):
            value = getattr(self, name)
            return _ABSENT if value is None else value
        if name in ("start", "end"):
            return _ABSENT if self.covers is None else self.covers[name == "end"].isoformat()
        if name == "window":
            return _ABSENT if self.window is None else {"start": self.window[0].isoformat(),
                                                         "end": self.window[1].isoformat()}
        if name == "symbols":
            return _ABSENT if self.symbols is None else list(self.symbols)
        if name == "symbols_failed":
            return self.symbols_failed
        if name == "failure_reasons":
            return dict(sorted(self.failure_reasons.items()))
        return getattr(self, name)


_ABSENT = object()


def resume(record: Record | None, asked: Sequence[str] | None) -> tuple[str, ...] | None:
    """The resume rule, the one answer to "what does the next attempt of this batch fetch?" (the Map's retry,
    run-local's batch retry): after an attempt cut short (its record holds symbols left for later: blocked, or
    not reached before the deadline), those and any asked-for symbol the record never saw; everything else it
    recorded is stored, or failed for a reason a retry within the day won't heal. Otherwise what was asked
    (None: the whole batch)."""
    later = record.later() if record is not None else ()
    if not later:
        return None if asked is None else tuple(asked)
    seen = set(record.symbols or ()) | set(record.failure_reasons)
    return tuple(sorted(set(later) | {s for s in (asked or ()) if s not in seen}))


def parse(data: bytes, key: str, *, details: bool = True) -> Record:
    """A record's bytes -> the Record; CorruptFileError naming `key` otherwise. details=False leaves the
    per-symbol details out (check reads thousands of records and needs none of them)."""
    try:
        document = json.loads(data)
    except ValueError as error:
        raise CorruptFileError(key, f"not a stockstream manifest: not JSON ({first_line(error)})") from None
    problem = _problem(document)
    if problem:
        raise CorruptFileError(key, f"not a stockstream manifest: {problem}")
    return from_document(document, details=details)


def from_document(document: dict[str, Any], *, details: bool = True) -> Record:
    """A checked document (parse) -> the Record."""
    metadata = document["metadata"]
    reasons = {str(symbol): str(reason) for symbol, reason in (metadata.get("failure_reasons") or {}).items()}
    for symbol in metadata.get("symbols_failed") or []:
        reasons.setdefault(str(symbol), UNRECORDED)
    symbols = metadata.get("symbols")
    time = metadata.get("execution_time")
    return Record(
        batch_number=metadata.get("batch_number"),
        backfill_number=metadata.get("backfill_number"),
        symbols_processed=int(metadata.get("symbols_processed") or 0),
        symbols_fetched=int(metadata.get("symbols_fetched") or 0),
        failure_reasons=dict(sorted(reasons.items())),
        execution_time=float(time) if isinstance(time, (int, float)) and not isinstance(time, bool) else None,
        s3_key=metadata.get("s3_key"),
        symbols=tuple(str(s) for s in symbols) if isinstance(symbols, list) else None,
        window=_dates(metadata.get("window") or {}),
        covers=_dates(metadata),
        body=str(document.get("body") or ""),
        details={k: v for k, v in metadata.items() if k not in _TYPED} if details else {},
    )


def _dates(holder: Any) -> tuple[dt.date, dt.date] | None:
    try:
        return dt.date.fromisoformat(holder["start"]), dt.date.fromisoformat(holder["end"])
    except (KeyError, TypeError, ValueError):
        return None


def _problem(document: Any) -> str | None:
    if not isinstance(document, dict):
        return "not a JSON object"
    metadata = document.get("metadata")
    if not isinstance(metadata, dict):
        return 'no "metadata" object'
    if not isinstance(metadata.get("failure_reasons") or {}, dict):
        return "failure_reasons is not an object"
    if not isinstance(metadata.get("symbols_failed") or [], list):
        return "symbols_failed is not a list"
    for name in _COUNTS:
        value = metadata.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            return f"{name} {value!r} is not an integer"
    return None


def read(store, key: str, *, details: bool = True) -> Record | None:
    """The record stored at `key`; None when there is none, CorruptFileError when it is not a record."""
    try:
        data = store.get(key)
    except KeyNotFound:
        return None
    return parse(data, key, details=details)


def encode(record: Record) -> bytes:
    """A record as it is written."""
    return encode_json(record.to_document())


def encode_json(document: dict[str, Any]) -> bytes:
    """How every JSON file in runs/ is written: indented JSON and a final newline."""
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


# ---------------------------------------------------------------------------------------------- building


def batch_record(day: dt.date, batch_number: int, fetched: Sequence[Any], rows: "pl.DataFrame",
                 previous: Record | None, previous_rows: "pl.DataFrame | None", window: tuple[dt.date, dt.date], *,
                 execution_time: float, fetched_at: str) -> Record:
    """Batch N's record after this fetch (commit.Fetched results), merged with the stored one when there is
    one: a symbol fetched now replaces what the stored record said of it. Pure: the clock's reading comes in
    as `fetched_at`."""
    from .. import schema
    from . import layout

    now = {one.symbol for one in fetched}
    before = previous.details if previous is not None else {}
    members = sorted(now | _previous_members(previous, previous_rows))
    reasons = {s: r for s, r in (previous.failure_reasons if previous else {}).items() if s not in now}
    details = {s: d for s, d in before.get("failure_details", {}).items() if s not in now}
    dropped_by_symbol = {s: d for s, d in before.get("rows_dropped_by_symbol", {}).items() if s not in now}
    for one in fetched:
        if one.failure:
            reasons[one.symbol] = one.failure
            details[one.symbol] = one.detail
        if one.dropped:
            dropped_by_symbol[one.symbol] = one.dropped
    totals = dict.fromkeys(schema.DROP_REASONS, 0)
    for counts in dropped_by_symbol.values():
        for reason, count in counts.items():
            totals[reason] = totals.get(reason, 0) + count
    fetched_count = len(members) - len(reasons)
    data_key = layout.batch_data_key(day, batch_number)
    return Record(
        batch_number=batch_number,
        backfill_number=None,
        symbols_processed=len(members),
        symbols_fetched=fetched_count,
        failure_reasons=dict(sorted(reasons.items())),
        execution_time=round(execution_time, 3),
        s3_key=data_key,
        symbols=tuple(members),
        window=window,
        body=(f"batch {batch_number} of {day.isoformat()}: {fetched_count} of {len(members)} symbols fetched, "
              f"{len(reasons)} failed; {rows.height} rows in {data_key}"),
        details={
            "date": day.isoformat(),
            "rows": rows.height,
            "rows_dropped": totals,
            "rows_dropped_by_symbol": dict(sorted(dropped_by_symbol.items())),
            "failure_details": dict(sorted(details.items())),
            "symbols_this_run": sorted(now),
            "restated": {one.symbol: one.restated_from.isoformat() for one in fetched if one.restated_from is not None},
            "requests": sum(one.attempts for one in fetched),
            "fetched_at": fetched_at,
        },
    )


def _previous_members(previous: Record | None, previous_rows: "pl.DataFrame | None") -> set[str]:
    if previous is not None and previous.symbols is not None:
        return set(previous.symbols)
    members = set(previous.failure_reasons) if previous is not None else set()
    if previous_rows is not None:
        members |= set(previous_rows.get_column("symbol").unique().to_list())
    return members


def backfill_record(number: int, start: dt.date, end: dt.date, chunk: Sequence[str], fetched: Sequence[Any],
                    rows: "pl.DataFrame", data_key: str | None, *, execution_time: float, fetched_at: str) -> Record:
    """Backfill chunk N's record: what `check` reads and what a rerun of the backfill skips."""
    reasons = {one.symbol: one.failure for one in fetched if one.failure}
    symbols_fetched = len(chunk) - len(reasons)
    return Record(
        batch_number=None,
        backfill_number=number,
        symbols_processed=len(chunk),
        symbols_fetched=symbols_fetched,
        failure_reasons=dict(sorted(reasons.items())),
        execution_time=round(execution_time, 3),
        s3_key=data_key,
        symbols=tuple(chunk),
        covers=(start, end),
        body=(f"backfill #{number} {start}..{end}: {symbols_fetched} of {len(chunk)} symbols fetched, "
              f"{rows.height} rows" + (f" in {data_key}" if data_key else "")),
        details={
            "failure_details": {one.symbol: one.detail for one in fetched if one.failure},
            "rows": rows.height,
            "rows_by_symbol": _rows_by_symbol(rows),
            "requests": sum(one.attempts for one in fetched),
            "fetched_at": fetched_at,
        },
    )


def _rows_by_symbol(rows: "pl.DataFrame") -> dict[str, int]:
    if rows.height == 0:
        return {}
    counts = rows.group_by("symbol").len().sort("symbol")
    return dict(zip(counts["symbol"].to_list(), counts["len"].to_list()))
