"""runs/D/run.json: the day's summary, built from the day's list and its batch manifests, and read back.

Whoever runs the day (run-local, rerun-failed, the deployed state machine's last step, rerun-failed
--remote) builds the document here, so run.json has one shape and one author. No typer or rich here.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from . import layout
from ..errors import CorruptFileError, KeyNotFound, first_line
from . import manifest
from ..outcome import Outcome

SUMMARY_KEYS = (
    "date",
    "total_symbols",
    "num_batches",
    "batches_succeeded",
    "batches_failed",
    "symbols_fetched",
    "symbols_failed",
    "execution_time",
)


def run_document(day: dt.date, batches: Mapping[int, Iterable[str]], manifests: Mapping[int, manifest.Record | None],
                 execution_time: float, *, command: str, finished_at: str, started_at: str = "",
                 batch_errors: Mapping[int, str] | None = None, interrupted: bool = False) -> dict:
    """runs/D/run.json: the contract's summary first, then the failure reasons and batch errors.

    `finished_at` is the caller's reading of the clock (ISO UTC): nothing here reads it.

    A batch without a record failed as a whole: its symbols count as failed (total = fetched + failed).
    """
    failed_symbols: set[str] = set()
    reasons: dict[str, str] = {}
    failed_batches: list[int] = []
    total = 0
    for number, symbols in sorted(batches.items()):
        symbols = set(symbols)
        total += len(symbols)
        record = manifests.get(number)
        if record is None:
            failed_batches.append(number)
            failed_symbols |= symbols
            continue
        for symbol, reason in record.failure_reasons.items():
            if symbol in symbols:
                failed_symbols.add(symbol)
                reasons[symbol] = reason
    errors = {str(n): e for n, e in sorted((batch_errors or {}).items()) if n in failed_batches}
    return {
        "date": day.isoformat(),
        "total_symbols": total,
        "num_batches": len(batches),
        "batches_succeeded": len(batches) - len(failed_batches),
        "batches_failed": failed_batches,
        "symbols_fetched": total - len(failed_symbols),
        "symbols_failed": sorted(failed_symbols),
        "execution_time": round(execution_time, 2),
        "failure_reasons": dict(sorted(reasons.items())),
        "batch_errors": errors,
        "command": command,
        "started_at": started_at,
        "finished_at": finished_at,
        "interrupted": interrupted,
    }


DAY_RUN_KEYS = ("command", "execution_time", "started_at", "finished_at")


def keep_day_run(run: dict, stored: Mapping[str, Any] | None) -> dict:
    """A rerun's run.json keeps the day's own run apart ("day_run": its command, duration, start and end), so
    the day's duration is not lost under the rerun's few seconds; later reruns carry it on."""
    if stored is None:
        return run
    day_run = stored.get("day_run")
    if not isinstance(day_run, dict) and stored.get("command") not in (None, run.get("command")):
        day_run = {key: stored[key] for key in DAY_RUN_KEYS if key in stored}
    if isinstance(day_run, dict):
        run["day_run"] = day_run
    return run


def summary(run: Mapping[str, Any]) -> dict:
    """The contract's `run-local --json` document: exactly its keys, in its order."""
    return {key: run[key] for key in SUMMARY_KEYS}


def outcome(run: Mapping[str, Any]) -> Outcome:
    """COMPLETE everything fetched, FAILED nothing useful (no symbol fetched), PARTIAL some failures."""
    if run["symbols_fetched"] == 0 and run["total_symbols"] > 0:
        return Outcome.FAILED
    if run["batches_failed"] or run["symbols_failed"]:
        return Outcome.PARTIAL
    return Outcome.COMPLETE


def read_manifests(store, day: dt.date, batches: Iterable[int], note: Callable[[str], None]) -> dict[int, manifest.Record | None]:
    """Each batch's stored result; None for a batch with none, or with a corrupt one (noted: fetched again)."""
    present = set(store.list(layout.run_prefix(day)))
    manifests: dict[int, manifest.Record | None] = {}
    for number in batches:
        key = layout.batch_manifest_key(day, number)
        manifests[number] = _read_manifest(store, key, note) if key in present else None
    return manifests


def _read_manifest(store, key: str, note: Callable[[str], None]) -> manifest.Record | None:
    try:
        return manifest.read(store, key)
    except CorruptFileError:
        note(f"{key} is not a batch result: the batch is fetched again")
        return None


def stored_run(store, day: dt.date) -> dict | None:
    """The stored run.json; a corrupt one counts as none (rerun-failed writes it again)."""
    try:
        return read_run(store, day)
    except CorruptFileError:
        return None


def same_outcome(stored: dict | None, run: dict) -> bool:
    """Whether run.json already records this outcome (timings aside)."""
    if stored is None or stored.get("interrupted"):
        return False
    keys = [k for k in SUMMARY_KEYS if k != "execution_time"] + ["failure_reasons"]
    return all(stored.get(k) == run[k] for k in keys)


def utc_now() -> str:
    """The clock, read at the edge (run-local, rerun-failed) for run_document's started_at / finished_at."""
    from ..schema import utc_timestamp

    return utc_timestamp()


def read_run(store, day: dt.date) -> dict[str, Any] | None:
    """runs/D/run.json as written; None when absent, CorruptFileError when it is not a JSON object."""
    key = layout.run_summary_key(day)
    try:
        data = store.get(key)
    except KeyNotFound:
        return None
    try:
        document = json.loads(data)
    except ValueError as error:
        raise CorruptFileError(key, f"not JSON: {first_line(error)}") from None
    if not isinstance(document, dict):
        raise CorruptFileError(key, "not a run summary (expected a JSON object)")
    return document


def write_run(store, day: dt.date, run: dict[str, Any]) -> None:
    store.put(layout.run_summary_key(day), manifest.encode_json(run))


def asked_part(run: Mapping[str, Any] | None) -> dict[str, list] | None:
    """run.json's "part" ({"symbols": [...]} or {"batches": [...]}) of a run asked for part of the day; None for
    a whole day (or no run.json)."""
    part = (run or {}).get("part")
    if isinstance(part, dict) and any(isinstance(part.get(name), list) for name in ("symbols", "batches")):
        return part
    return None


def part_covers(part: Mapping[str, list] | None, symbol: str, batch_number: int | None) -> bool:
    """Whether a run of `part` of the day (None: the whole day) was asked for `symbol` of batch `batch_number`."""
    if part is None:
        return True
    if isinstance(part.get("symbols"), list):
        return symbol in part["symbols"]
    return batch_number in part.get("batches", [])
