"""What the two Lambda handlers share: settings from the environment, the run's date, and metrics.

No boto3, typer or rich here: a handler's cold start pays only for what it uses. Metrics go out in the
CloudWatch embedded metric format: one JSON line on stdout, which Lambda ships to CloudWatch Logs and
CloudWatch turns into metrics, with no PutMetricData call and no latency added to the handler.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from ..errors import InputError
from ..settings import CACHE_DIR_ENV, LAMBDA_CACHE_DIR, STAGE_ENV, STORE_ENV, Settings
from ..dataset.store import store_of

METRICS_NAMESPACE = "StockStream"


def running_in_lambda(environ=None) -> bool:
    return bool((os.environ if environ is None else environ).get("AWS_LAMBDA_FUNCTION_NAME"))


def lambda_settings(environ=None) -> Settings:
    """Settings from STOCKSTREAM_* variables, as the CLI reads them; on Lambda the cache goes under /tmp."""
    environ = os.environ if environ is None else environ
    typed: dict[str, Any] = {}
    if running_in_lambda(environ) and not environ.get(CACHE_DIR_ENV):
        typed["cache_dir"] = LAMBDA_CACHE_DIR
    settings = Settings.resolve(environ, **typed)
    if running_in_lambda(environ) and not environ.get(STORE_ENV):
        raise InputError(f"{STORE_ENV} is not set: the function needs its store, e.g. s3://bucket")
    return settings


def event_date(event: dict) -> str | None:
    """The run's date from the state machine's input, if it carries one."""
    value = (event or {}).get("date")
    return str(value) if value else None


def with_run_date(symbols_document: dict, day: str) -> dict:
    """The symbols step's output with the run's date at the top and in every batch item for the Map."""
    document = dict(symbols_document)
    document["date"] = day
    document["symbolBatches"] = [{**batch, "date": day} for batch in symbols_document.get("symbolBatches", [])]
    return document


def emf_line(metrics: dict[str, float], *, function_name: str | None = None, timestamp_ms: int | None = None,
             stage: str | None = None) -> str:
    """One embedded-metric-format log line for the StockStream namespace (no dimension but the deployment's
    stage, if it has one, so alarms and the dashboard sum them across both functions of one stack)."""
    record: dict[str, Any] = {
        "_aws": {
            "Timestamp": timestamp_ms if timestamp_ms is not None else int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": METRICS_NAMESPACE,
                    "Dimensions": [["Stage"]] if stage else [[]],
                    "Metrics": [{"Name": name, "Unit": "Count"} for name in metrics],
                }
            ],
        },
        **{name: value for name, value in metrics.items()},
        **({"Stage": stage} if stage else {}),
    }
    if function_name:
        record["function"] = function_name  # a property, searchable in Logs Insights, not a dimension
    return json.dumps(record, separators=(",", ":"))


def emit_metrics(metrics: dict[str, float], stream=None) -> None:
    stream = stream or sys.stdout
    stream.write(emf_line(metrics, function_name=os.environ.get("AWS_LAMBDA_FUNCTION_NAME"),
                          stage=os.environ.get(STAGE_ENV) or None) + "\n")
    stream.flush()


def batch_metrics(result: dict) -> dict[str, float]:
    metadata = result.get("metadata", {})
    return {
        "SymbolsFetched": int(metadata.get("symbols_fetched", 0)),
        "SymbolsFailed": len(metadata.get("symbols_failed", [])),
        "BatchesProcessed": 1,
        "BatchesFailed": 0,
    }


def fetch_event_batch(event: dict, settings: Settings, context=None, *, sleep=None) -> dict:
    """One Map item, {"symbols": [...], "batchNumber": N, "date": "D", "execution": NAME}, fetched through the
    library. execution (the state machine's $$.Execution.Name): the batch lock's owner with the batch number, so
    the Map's retry of an attempt Lambda killed (its lock left behind, its heartbeat still fresh) takes it at once.

    context: the Lambda context; its remaining time is the batch's deadline (fetch/deadline.py): the batch
    stops taking symbols once one symbol's worst case and the write no longer fit, cuts every attempt and retry
    wait to the time left, writes what it fetched and raises BatchInterrupted, which the Map's Retry
    (States.TaskFailed) sends again; that attempt fetches only what the stored manifest records as interrupted
    or blocked. sleep: the waits' edge (pacing, backoff; time.sleep), a virtual clock's in tests.
    """
    from ..dataset import layout, manifest
    from ..dataset.commit import batch_writer
    from ..fetch.deadline import Deadline
    from .batch import fetch_batch
    from ..values import parse_date, parse_symbols

    event = event or {}
    if event.get("date") is None or event.get("batchNumber") is None:
        raise InputError(f"the fetcher's event needs 'date' and 'batchNumber', got keys {sorted(event)}")
    day = parse_date(str(event["date"]), parameter="date")
    try:
        batch_number = int(event["batchNumber"])
    except (TypeError, ValueError):
        raise InputError(f"batchNumber must be a whole number, got {event['batchNumber']!r}") from None
    symbols = parse_symbols(event.get("symbols"))
    store = store_of(settings)
    execution = str(event["execution"]) if event.get("execution") else None
    with batch_writer(store, day, batch_number, "stock-data-fetcher", execution=execution) as writer:
        resumed = manifest.resume(manifest.read(store, layout.batch_manifest_key(day, batch_number)), symbols)
        record = fetch_batch(writer, day, batch_number, settings, symbols=resumed, sleep=sleep,
                             deadline=Deadline.of_lambda(context, settings))
    return record.to_document()


# ---------------------------------------------------------------- the data-quality step (CheckDataQuality)

FINALIZE_ACTION = "finalize"
COMPACT_ACTION = "compact"
COMPACT_STATE = "CompactEarlierDays"  # the state machine's step that sends it: the day locks' holder
SYMBOLS_ACTION = "update-symbols"  # also what an event without "action" means (the original event shape)
ACTIONS = (SYMBOLS_ACTION, FINALIZE_ACTION, COMPACT_ACTION)


class QualityCheckFailed(Exception):
    """The check could not run (run.json is written all the same); the state machine's Catch sees this name."""


def event_action(event: dict) -> str:
    action = (event or {}).get("action") or SYMBOLS_ACTION
    if action not in ACTIONS:
        raise InputError(f"unknown action {action!r}: expected one of {', '.join(map(repr, ACTIONS))}")
    return action


def finalize_event(event: dict, settings: Settings, *, now=None) -> dict:
    """{"action": "finalize", "date": D, "startedAt": ISO, "execution": name, "batchNumbers": [0, 1, ...],
    "batchFailed": [false, true, ...]} (the Map's results, projected to two small arrays) -> runs/D/run.json
    written, and the small quality block for the state machine's Choice: {"date", "session", "complete",
    "missing", "suspicious", "expected_rows", "present_rows", "alert"}."""
    import datetime as dt

    from .finalize import finalize_day
    from ..quality.check import aware_moment
    from ..values import parse_date

    event = event or {}
    if not event.get("date"):
        raise InputError(f"the finalize event needs 'date', got keys {sorted(event)}")
    day = parse_date(str(event["date"]), parameter="date")
    try:
        started = aware_moment(event["startedAt"]) if event.get("startedAt") else dt.datetime.now(dt.timezone.utc)
    except ValueError:
        raise InputError(f"startedAt is not an ISO timestamp: {event['startedAt']!r}") from None
    numbers, failed = event.get("batchNumbers") or [], event.get("batchFailed") or []
    errors = {int(number): f"failed in execution {event.get('execution') or '?'}"
              for number, flag in zip(numbers, failed) if flag is True}
    store = store_of(settings)
    run = finalize_day(store, day, run_started=started, lookback_days=settings.lookback_days,
                       execution=event.get("execution"), batch_errors=errors, now=now)
    quality = run["quality"]
    if quality.get("error"):
        raise QualityCheckFailed(f"the data-quality check of {day.isoformat()} could not run: {quality['error']}")
    emit_metrics({"DataIncomplete": 0 if quality["complete"] else 1,
                  "RowsMissing": quality["missing"], "RowsSuspicious": quality["suspicious"]})
    return {"date": day.isoformat(), **quality}


# ---------------------------------------------------------------- the compaction step (CompactEarlierDays)


def compact_event(event: dict, settings: Settings) -> dict:
    """{"action": "compact", "date": D} -> every day before D folded into its month's compacted file, D's
    month included, under those days' locks (dataset/compact.py); returns {"date", "months": ["YYYY-MM", ...],
    "files", "rows", "kept", "skipped"}: "skipped" names the holder when another process held one of
    those days (nothing folded; the next execution folds it), else null."""
    from ..dataset.compact import compact_earlier_days
    from ..values import parse_date

    event = event or {}
    if not event.get("date"):
        raise InputError(f"the compact event needs 'date', got keys {sorted(event)}")
    day = parse_date(str(event["date"]), parameter="date")
    result = compact_earlier_days(store_of(settings), day, command=COMPACT_STATE)
    emit_metrics({"FilesCompacted": result["files"]})
    return {"date": day.isoformat(), **result}
