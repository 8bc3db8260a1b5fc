"""`stockstream compact`: the batch files of a month merged into one sorted Parquet file.

A year of daily runs is thousands of small files, one S3 request each to read back; a month compacted into
raw-data/compacted-YYYY-MM.parquet (sorted by symbol then date, ROW_GROUP_ROWS-row groups with statistics)
lets a symbol filter read one footer and a row group or two. It is written atomically before any batch file
is deleted, and readers keep the newest fetch of each (symbol, date), so a crash in between or a later
rerun of a compacted day loses nothing. The rules and figures are in the README (compact).
Nobody has to run it by hand: run-local, rerun-failed and the state machine's CompactClosedMonths step fold
every ended month; deletes are compare-and-delete on the version that was read, so a batch file a rerun
rewrote meanwhile stays (README, compact).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import io
from collections.abc import Callable, Iterable, Mapping

from .. import layout, schema
from ..errors import InputError

ROW_GROUP_ROWS = 4096  # about 2 symbols x 21 days fits in one; a month of the ASX is ~10 row groups
READERS = 32  # batch files read (and deleted) at once: S3 latency, not bandwidth, is what a month of small files costs


@dataclasses.dataclass(frozen=True)
class MonthPlan:
    month: str  # YYYY-MM
    batch_keys: tuple[str, ...]
    compacted: bool  # a compacted file of the month exists already (merged into the new one)
    versions: Mapping[str, str] = dataclasses.field(default_factory=dict)  # batch key -> listed version

    @property
    def key(self) -> str:
        return layout.compacted_data_key(self.month)


def parse_month(text: str) -> str:
    try:
        parsed = dt.datetime.strptime(text.strip(), "%Y-%m")
    except ValueError:
        raise InputError(f"--month {text!r} is not a month: use YYYY-MM, e.g. --month 2026-01") from None
    return parsed.strftime("%Y-%m")


def plan(keys: Iterable[str] | Mapping[str, str], *, months: Iterable[str] | None = None,
         today: dt.date) -> list[MonthPlan]:
    """The months to compact and their batch files: the months asked for, else every month before today's.
    `keys` may be a listing with versions (key -> version), which the plan keeps for the deletes."""
    versions = keys if isinstance(keys, Mapping) else {}
    wanted = None if months is None else {parse_month(m) for m in months}
    current = today.strftime("%Y-%m")
    by_month: dict[str, list[str]] = {}
    compacted: set[str] = set()
    for key in sorted(keys):
        batch = layout.parse_batch_data_key(key)
        if batch is not None:
            by_month.setdefault(batch[0].strftime("%Y-%m"), []).append(key)
        elif (month := layout.parse_compacted_data_key(key)) is not None:
            compacted.add(month)
    chosen = sorted(by_month if wanted is None else set(by_month) & wanted)
    return [MonthPlan(month, tuple(by_month[month]), month in compacted,
                      {key: versions[key] for key in by_month[month] if key in versions})
            for month in chosen if wanted is not None or month < current]


Step = Callable[[str, str], None]  # (step, month): "read", "written", "deleting"; a test's hook between steps


def compact(store, *, months: Iterable[str] | None = None, today: dt.date | None = None, dry_run: bool = False,
            note: Callable[[str], None] | None = None, step: Step | None = None) -> dict:
    """Compact the planned months; returns {"months": [per-month results], "files": n, "rows": n}.

    `today` decides which months have ended (default: today in Sydney); the pipeline passes its run's date."""
    from ..values import today_sydney

    plans = plan(store.list_versions(layout.RAW_DATA_PREFIX), months=months, today=today or today_sydney())
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
            note(f"{last['month']}: {last['files']} batch files -> {last['key']} ({last['rows']} rows){kept}")
    return {"months": results, "files": sum(r["files"] for r in results),
            "rows": sum(r["rows"] or 0 for r in results), "dry_run": dry_run}


def compact_month(store, month_plan: MonthPlan, *, step: Step | None = None) -> dict:
    """Write the month's compacted file, then delete the batch files merged into it, each only while it is
    still the version that was read (see the module's docstring)."""
    import polars as pl

    from ..datafile import read_batch_rows
    from .newest import newest_per_symbol_and_date

    keys = list(month_plan.batch_keys) + ([month_plan.key] if month_plan.compacted else [])
    with concurrent.futures.ThreadPoolExecutor(min(READERS, max(len(keys), 1))) as pool:
        frames = [frame for frame in pool.map(lambda key: read_batch_rows(store, key), keys) if frame is not None]
    combined = pl.concat(frames, how="vertical") if frames else schema.empty_frame()
    rows = newest_per_symbol_and_date(combined.lazy()).collect()
    buffer = io.BytesIO()
    rows.write_parquet(buffer, row_group_size=ROW_GROUP_ROWS, statistics=True)
    data = buffer.getvalue()
    _step(step, "read", month_plan.month)
    store.put(month_plan.key, data)
    _step(step, "written", month_plan.month)
    deletable = _unchanged(month_plan, store.list_versions(layout.RAW_DATA_PREFIX))
    _step(step, "deleting", month_plan.month)
    with concurrent.futures.ThreadPoolExecutor(READERS) as pool:
        deleted = list(pool.map(lambda item: store.delete_version(*item), deletable.items()))
    gone = {key for key, done in zip(deletable, deleted) if done}
    return {"month": month_plan.month, "key": month_plan.key, "files": len(month_plan.batch_keys),
            "rows": rows.height, "bytes": len(data), "deleted": len(gone),
            "kept": sorted(set(month_plan.batch_keys) - gone)}


def _unchanged(month_plan: MonthPlan, listed: Mapping[str, str]) -> dict[str, str]:
    """The month's batch files that the new listing shows at the version listed before they were read."""
    return {key: version for key, version in month_plan.versions.items() if listed.get(key) == version}


def _step(step: Step | None, name: str, month: str) -> None:
    if step is not None:
        step(name, month)


def compact_closed_months(store, day: dt.date, *, note: Callable[[str], None] | None = None) -> dict:
    """The pipeline's compaction step after a run of `day`: every month before day's month folded into its
    compacted file. The small record run.json and the state machine keep: {"months", "files", "rows"}."""
    result = compact(store, today=day, note=note)
    return {"months": [item["month"] for item in result["months"]], "files": result["files"],
            "rows": result["rows"], "kept": sum(len(item["kept"]) for item in result["months"])}
