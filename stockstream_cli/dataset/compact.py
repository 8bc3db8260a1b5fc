"""`stockstream compact`: the data files of a month (its batch files and backfill chunks) merged into one
sorted Parquet file.

A year of daily runs is thousands of small files, one S3 request each to read back; a month compacted into
raw-data/compacted-YYYY-MM.parquet (sorted by symbol then date, ROW_GROUP_ROWS-row groups with statistics)
lets a symbol filter read one footer and a row group or two. It is written atomically before any batch file
is deleted, and readers keep the newest fetch of each (symbol, date), so a crash in between or a later
rerun of a compacted day loses nothing. The rules and figures are in the README (compact).
Nobody has to run it by hand: run-local, rerun-failed and the state machine's CompactEarlierDays step fold
every day before the run's into its month's file (the current month's too), so a store the pipeline feeds
holds one file a month and the last day's batch files: a cold read then needs no footer per batch file.
Deletes are compare-and-delete on the version that was read, so a batch file a rerun rewrote meanwhile
stays; and whoever compacts holds the day lock of every day it folds (`compact_locked`), so two compactors
never rewrite one month's file from different reads (the last writer would drop rows the other had
deleted the batch files of). The pipeline's step takes them without waiting and folds nothing when one is
held: the next run folds it (README, compact).
The compacted file records in its Parquet metadata (FOLDED_METADATA) which days' batches it holds, so that
rerun-failed still tells a batch whose rows are stored from one whose file was lost after its manifest; and
(FOLDED_BACKFILL_METADATA) which backfill chunks, so that backfill does the same for its records.
A backfill chunk raw-data/D-backfill-N.parquet is folded like a batch file of day D (its key's day, the
backfill's `end`, whose day lock backfill holds while it writes): into D's month, superseded rows dropped.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import io
import json
from collections.abc import Callable, Collection, Iterable, Mapping

from . import layout
from .store import S3_CONNECTIONS  # batch files read (and deleted) at once: S3 latency, not bandwidth, is the cost
from .. import schema
from ..errors import InputError

FOLDED_METADATA = "stockstream.folded"  # {"YYYY-MM-DD": [batch numbers]} folded into the compacted file
FOLDED_BACKFILL_METADATA = "stockstream.folded_backfill"  # {"YYYY-MM-DD": [backfill chunk numbers]} folded into it
ROW_GROUP_ROWS = 4096  # about 2 symbols x 21 days fits in one; a month of the ASX is ~10 row groups
ZSTD_LEVEL = 10  # written once a day, read for years: 6 % fewer bytes than polars' default level, same read speed


@dataclasses.dataclass(frozen=True)
class MonthPlan:
    month: str  # YYYY-MM
    batch_keys: tuple[str, ...]  # the data files folded: the days' batch files and backfill chunks, in key order
    compacted: bool  # a compacted file of the month exists already (merged into the new one)
    versions: Mapping[str, str] = dataclasses.field(default_factory=dict)  # batch key -> listed version

    @property
    def key(self) -> str:
        return layout.compacted_data_key(self.month)


def parse_month(text: str) -> str:
    try:
        parsed = dt.datetime.strptime(text.strip(), "%Y-%m")
    except ValueError:
        raise InputError(f"{text!r} is not a month: use YYYY-MM, e.g. 2026-01", parameter="month") from None
    return parsed.strftime("%Y-%m")


def plan(keys: Iterable[str] | Mapping[str, str], *, months: Iterable[str] | None = None,
         today: dt.date | None = None, before: dt.date | None = None,
         days: Collection[dt.date] | None = None) -> list[MonthPlan]:
    """The months to compact and their batch files: those of the months asked for and, with `before`, of
    the days before it (its own month's included: the pipeline's rule); asked for neither, every month
    before today's. `days` keeps only those days' files (the days whose locks are held). `keys` may be a
    listing with versions (key -> version), which the plan keeps for the deletes."""
    versions = keys if isinstance(keys, Mapping) else {}
    wanted = None if months is None else {parse_month(m) for m in months}
    if wanted is None and before is None and today is None:
        raise TypeError("plan() needs months, before or today")
    by_month: dict[str, list[str]] = {}
    compacted: set[str] = set()
    for key in sorted(keys):
        folded = folded_file(key)
        if folded is not None:
            day = folded[1]
            if _chosen(day, wanted, before, today) and (days is None or day in days):
                by_month.setdefault(day.strftime("%Y-%m"), []).append(key)
        elif (month := layout.parse_compacted_data_key(key)) is not None:
            compacted.add(month)
    return [MonthPlan(month, tuple(by_month[month]), month in compacted,
                      {key: versions[key] for key in by_month[month] if key in versions})
            for month in sorted(by_month)]


def _chosen(day: dt.date, wanted: set[str] | None, before: dt.date | None, today: dt.date | None) -> bool:
    month = day.strftime("%Y-%m")
    if wanted is None and before is None:
        return month < today.strftime("%Y-%m")
    return (wanted is None or month in wanted) and (before is None or day < before)


def folded_file(key: str) -> tuple[str, dt.date, int] | None:
    """("batch" or "backfill", the key's day, its number) of a data file compaction folds; None for any other key."""
    if (batch := layout.parse_batch_data_key(key)) is not None:
        return "batch", *batch
    if (chunk := layout.parse_backfill_data_key(key)) is not None:
        return "backfill", *chunk
    return None


def folded_days(plans: Iterable[MonthPlan]) -> set[dt.date]:
    """The days whose data files (batch files, backfill chunks) the plans fold."""
    return {parsed[1] for month_plan in plans for key in month_plan.batch_keys if (parsed := folded_file(key))}


Step = Callable[[str, str], None]  # (step, month): "read", "written", "deleting"; a test's hook between steps


def compact(store, *, months: Iterable[str] | None = None, today: dt.date | None = None,
            before: dt.date | None = None, days: Collection[dt.date] | None = None, dry_run: bool = False,
            note: Callable[[str], None] | None = None, step: Step | None = None) -> dict:
    """Compact the planned months (`plan`); returns {"months": [per-month results], "files": n, "rows": n}.

    `today` decides which months have ended (default: today in Sydney). No locks: see `compact_locked`."""
    from ..values import today_sydney

    plans = plan(store.list_versions(layout.RAW_DATA_PREFIX), months=months, today=today or today_sydney(),
                 before=before, days=days)
    results = []
    for month_plan in plans:
        if dry_run:
            results.append({"month": month_plan.month, "key": month_plan.key, "files": len(month_plan.batch_keys),
                            "rows": None, "bytes": None})
            continue
        results.append(compact_month(store, month_plan, step=step))
        if note is not None:
            last = results[-1]
            kept = f"; {len(last['kept'])} rewritten meanwhile, kept for next time" if last["kept"] else ""
            note(f"{last['month']}: {last['files']} data files -> {last['key']} ({last['rows']} rows){kept}")
    return {"months": results, "files": sum(r["files"] for r in results),
            "rows": sum(r["rows"] or 0 for r in results), "dry_run": dry_run}


def compact_month(store, month_plan: MonthPlan, *, step: Step | None = None) -> dict:
    """Write the month's compacted file, then delete the batch files merged into it, each only while it is
    still the version that was read (see the module's docstring)."""
    import polars as pl

    from .datafile import read_batch_rows
    from .newest import newest_rows

    keys = list(month_plan.batch_keys) + ([month_plan.key] if month_plan.compacted else [])
    with concurrent.futures.ThreadPoolExecutor(min(S3_CONNECTIONS, max(len(keys), 1))) as pool:
        frames = [frame for frame in pool.map(lambda key: read_batch_rows(store, key), keys) if frame is not None]
    combined = pl.concat(frames, how="vertical") if frames else schema.empty_frame()
    rows = newest_rows(combined)
    data = compacted_bytes(rows, _folded_record(store, month_plan))
    _step(step, "read", month_plan.month)
    store.put(month_plan.key, data)
    _step(step, "written", month_plan.month)
    deletable = _unchanged(month_plan, store.list_versions(layout.RAW_DATA_PREFIX))
    _step(step, "deleting", month_plan.month)
    with concurrent.futures.ThreadPoolExecutor(S3_CONNECTIONS) as pool:
        deleted = list(pool.map(lambda item: store.delete_version(*item), deletable.items()))
    gone = {key for key, done in zip(deletable, deleted) if done}
    return {"month": month_plan.month, "key": month_plan.key, "files": len(month_plan.batch_keys),
            "rows": rows.height, "bytes": len(data), "deleted": len(gone),
            "kept": sorted(set(month_plan.batch_keys) - gone)}


def compacted_bytes(rows, record: "FoldedRecord | None") -> bytes:
    """A compacted file's bytes: `rows` (sorted by symbol then date) in ROW_GROUP_ROWS-row groups with
    statistics, and the record of what it folds in its metadata (none when unknown)."""
    buffer = io.BytesIO()
    rows.write_parquet(buffer, compression="zstd", compression_level=ZSTD_LEVEL, row_group_size=ROW_GROUP_ROWS,
                       statistics=True, metadata=None if record is None else record.metadata())
    return buffer.getvalue()


@dataclasses.dataclass(frozen=True)
class FoldedRecord:
    """What a compacted file holds: {"YYYY-MM-DD": [numbers]} of the batch files and of the backfill chunks
    folded into it."""

    batches: dict[str, list[int]]
    backfill: dict[str, list[int]]

    def metadata(self) -> dict[str, str]:
        return {FOLDED_METADATA: json.dumps(self.batches, sort_keys=True),
                FOLDED_BACKFILL_METADATA: json.dumps(self.backfill, sort_keys=True)}

    def adding(self, key: str) -> "FoldedRecord":
        """This record with the data file `key` folded in too."""
        kind, day, number = folded_file(key)
        record = {"batch": self.batches, "backfill": self.backfill}[kind]
        added = {**record, day.isoformat(): sorted(set(record.get(day.isoformat(), [])) | {number})}
        return dataclasses.replace(self, **{"batches" if kind == "batch" else "backfill": added})


def folded_record(store, key: str) -> FoldedRecord | None:
    """What the compacted file `key` holds (read from its footer alone); None when there is no such file, or it
    was written before the record was kept (then nothing is known of its days). A file recorded before backfill
    chunks were folded holds none."""
    from ..errors import CorruptFileError, KeyNotFound
    from .file_index import footer_metadata

    try:
        metadata = footer_metadata(store, key)
    except KeyNotFound:
        return None
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds for a broken file
        raise CorruptFileError(key, f"not a readable Parquet file: {exc}") from None
    found = metadata.metadata or {}
    batches = found.get(FOLDED_METADATA.encode())
    if batches is None:
        return None
    return FoldedRecord(json.loads(batches), json.loads(found.get(FOLDED_BACKFILL_METADATA.encode(), b"{}")))


def folded_batches(store, key: str) -> dict[str, list[int]] | None:
    """{"YYYY-MM-DD": [batch numbers]} the compacted file `key` holds the rows of (folded_record)."""
    record = folded_record(store, key)
    return None if record is None else record.batches


def folded_backfill(store, key: str) -> dict[str, list[int]] | None:
    """{"YYYY-MM-DD": [backfill chunk numbers]} the compacted file `key` holds the rows of (folded_record)."""
    record = folded_record(store, key)
    return None if record is None else record.backfill


def _folded_record(store, month_plan: MonthPlan) -> FoldedRecord | None:
    """The record the new compacted file carries: the old file's and the data files folded now. None when
    the old file has no record (its days are unknown, so a record would claim too little)."""
    record = FoldedRecord({}, {})
    if month_plan.compacted:
        record = folded_record(store, month_plan.key)
        if record is None:
            return None
    for key in month_plan.batch_keys:
        record = record.adding(key)
    return record


def _unchanged(month_plan: MonthPlan, listed: Mapping[str, str]) -> dict[str, str]:
    """The month's batch files that the new listing shows at the version listed before they were read."""
    return {key: version for key, version in month_plan.versions.items() if listed.get(key) == version}


def _step(step: Step | None, name: str, month: str) -> None:
    if step is not None:
        step(name, month)


def compact_locked(store, *, command: str, months: Iterable[str] | None = None, today: dt.date | None = None,
                   before: dt.date | None = None, wait: bool = False,
                   note: Callable[[str], None] | None = None, step: Step | None = None) -> dict:
    """`compact` as the writer of every day it folds: plan the days, take their locks (commit.day_writer:
    LockHeld while another process holds one, or a live batch lock of one, unless `wait`), then compact
    only those days' batch files, re-listed under the locks (a day that appeared meanwhile waits its turn).
    The `compact` command and the pipeline's step (`compact_earlier_days`) both come through here."""
    from .commit import day_writer
    from ..values import today_sydney

    today = today or today_sydney()
    days = folded_days(plan(store.list(layout.RAW_DATA_PREFIX), months=months, today=today, before=before))
    if not days:
        return {"months": [], "files": 0, "rows": 0, "dry_run": False}
    with day_writer(store, days, command, wait=wait) as writer:
        return compact(writer.store, months=months, today=today, before=before, days=days, note=note, step=step)


def compact_earlier_days(store, day: dt.date, *, command: str, note: Callable[[str], None] | None = None,
                         step: Step | None = None) -> dict:
    """The pipeline's compaction step after a run of `day` (run-local, rerun-failed, the state machine's
    CompactEarlierDays): every day before `day` folded into its month's compacted file, `day`'s own month
    included, under those days' locks, taken without waiting. When another process holds one, nothing is
    folded this time and "skipped" says who holds it (the next run folds it); the run never fails for it.
    The small record run.json and the state machine keep: {"months", "files", "rows", "kept", "skipped"}."""
    from .locks import LockHeld

    try:
        result = compact_locked(store, command=command, before=day, today=day, note=note, step=step)
    except LockHeld as held:
        if note is not None:
            note(f"compacting skipped: {held.held_by}; the next run folds those days")
        return {"months": [], "files": 0, "rows": 0, "kept": 0, "skipped": held.held_by}
    return {"months": [item["month"] for item in result["months"]], "files": result["files"],
            "rows": result["rows"], "kept": sum(len(item["kept"]) for item in result["months"]), "skipped": None}
