"""Lambda `stock-data-fetcher`: one batch, {"symbols": [...], "batchNumber": N, "date": "D"} -> the
`fetch-batch --json` document, written to raw-data/D-batch-N.parquet and runs/D/batch-N.json; and, with
{"action": "finalize", ...}, the run's last step (the state machine's CheckDataQuality).

A batch: returns its result when only some symbols failed; raises when the batch as a whole failed, so the
state machine's Retry and Catch see it. Metrics go out in the CloudWatch embedded metric format.

Finalize: {"action": "finalize", "date": D, "startedAt": ISO, "execution": name, "batchNumbers": [...],
"batchFailed": [...]} writes runs/D/run.json and checks the session the run should have complete; returns
{"complete": bool, "alert": message or null, "session", "missing", "suspicious"}. Raises QualityCheckFailed
when the check could not run. It runs here, on the 512 MB function, because the check loads a day of data.

Compact: {"action": "compact", "date": D} folds every day before D into its month's
raw-data/compacted-YYYY-MM.parquet, under those days' locks (the state machine's CompactEarlierDays, after the
check); returns {"date", "months", "files", "rows", "kept", "skipped"} ("skipped": who held a day, or null).
"""

from stockstream_cli.run.lambda_runtime import (COMPACT_ACTION, FINALIZE_ACTION, batch_metrics, compact_event, emit_metrics, event_action, fetch_event_batch, finalize_event, lambda_settings)
from stockstream_cli.errors import StockstreamError


def handler(event, context):
    settings = lambda_settings()
    action = event_action(event)
    if action == FINALIZE_ACTION:
        return finalize_event(event, settings)
    if action == COMPACT_ACTION:
        return compact_event(event, settings)
    try:
        result = fetch_event_batch(event, settings, context)
    except StockstreamError:
        emit_metrics({"BatchesFailed": 1})
        raise
    emit_metrics(batch_metrics(result))
    return result
