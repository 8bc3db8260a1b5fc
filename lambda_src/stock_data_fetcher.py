"""Lambda `stock-data-fetcher`: one batch, {"symbols": [...], "batchNumber": N, "date": "D"} -> the
`fetch-batch --json` document, written to raw-data/D-batch-N.parquet and runs/D/batch-N.json.

Returns its result when only some symbols failed; raises when the batch as a whole failed, so the state
machine's Retry and Catch see it. Metrics go out in the CloudWatch embedded metric format.
"""

from stockstream_cli.aws.lambda_runtime import batch_metrics, emit_metrics, fetch_event_batch, lambda_settings
from stockstream_cli.errors import StockstreamError


def handler(event, context):
    settings = lambda_settings()
    try:
        result = fetch_event_batch(event, settings)
    except StockstreamError:
        emit_metrics({"BatchesFailed": 1})
        raise
    emit_metrics(batch_metrics(result))
    return result
