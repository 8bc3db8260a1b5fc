"""The batch and backfill records in runs/D/ (batch-N.json, backfill-N.json): the one place they are parsed,
validated, read and encoded.

A record is what makes a batch "done" and what rerun-failed, status, check and backfill decide from, so it is
read in one place that refuses anything but a JSON object with a well-formed "metadata" (a CorruptFileError
naming the key) and gives a failed symbol without a recorded reason the reason "error"; what to do with a
corrupt record is each caller's policy. The shapes are in the README (fetch-batch, backfill, Store layout);
run.json has its own module, run/summary.py. No typer or rich here.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from ..errors import CorruptFileError, KeyNotFound, first_line
from ..outcome import Outcome
from ..reasons import UNRECORDED

_COUNTS = ("batch_number", "backfill_number", "symbols_processed", "symbols_fetched")


def parse(data: bytes, key: str) -> dict[str, Any]:
    """A batch or backfill manifest's bytes -> its document; CorruptFileError naming `key` otherwise."""
    try:
        document = json.loads(data)
    except ValueError as error:
        raise CorruptFileError(key, f"not a stockstream manifest: not JSON ({first_line(error)})") from None
    problem = _problem(document)
    if problem:
        raise CorruptFileError(key, f"not a stockstream manifest: {problem}")
    return document


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


def read(store, key: str) -> dict[str, Any] | None:
    """The manifest stored at `key`; None when there is none, CorruptFileError when it is not a manifest."""
    try:
        data = store.get(key)
    except KeyNotFound:
        return None
    return parse(data, key)


def failure_reasons(document: dict[str, Any]) -> dict[str, str]:
    """{symbol: reason} of a manifest: every symbol in failure_reasons or symbols_failed (without a recorded
    reason, UNRECORDED)."""
    metadata = document.get("metadata") or {}
    reasons = {str(symbol): str(reason) for symbol, reason in (metadata.get("failure_reasons") or {}).items()}
    for symbol in metadata.get("symbols_failed") or []:
        reasons.setdefault(str(symbol), UNRECORDED)
    return reasons


def outcome(document: dict[str, Any]) -> Outcome:
    """A batch's or a backfill's: COMPLETE when no symbol failed (or none was asked for), else PARTIAL
    (the failures are recorded, for rerun-failed or the same backfill again)."""
    return Outcome.PARTIAL if (document.get("metadata") or {}).get("symbols_failed") else Outcome.COMPLETE


def count(document: dict[str, Any], name: str) -> int:
    """One of the manifest's counts (symbols_fetched, symbols_processed): 0 when absent."""
    return int((document.get("metadata") or {}).get(name) or 0)


def backfill_range(document: dict[str, Any]) -> tuple[dt.date, dt.date] | None:
    """The [start, end] a backfill record covers; None when its start or end is not an ISO date."""
    metadata = document.get("metadata") or {}
    try:
        return dt.date.fromisoformat(metadata["start"]), dt.date.fromisoformat(metadata["end"])
    except (KeyError, TypeError, ValueError):
        return None


def encode(document: dict[str, Any]) -> bytes:
    """How every record in runs/ is written: indented JSON and a final newline."""
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")
