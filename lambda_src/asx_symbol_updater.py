"""Lambda `asx-symbol-updater`: the day's ASX list into symbols/D-symbols.csv, and the batches for the Map.

Input: {} or {"date": "YYYY-MM-DD"} (default: today in Sydney). Output: the `symbols --json` document plus
"date", which every batch item carries on: {"symbols": [...], "batchNumber": N, "date": "D"}.
Emits TotalSymbols (EMF). Raises when no list can be produced, so the state machine's Retry and Catch see it.
"""

from stockstream_cli.run.symbols import update_symbols
from stockstream_cli.run.lambda_runtime import emit_metrics, event_date, lambda_settings, with_run_date
from stockstream_cli.values import parse_date
from stockstream_cli.dataset.store import store_of


def handler(event, context):
    settings = lambda_settings()
    day = parse_date(event_date(event), parameter="date")
    store = store_of(settings)
    update = update_symbols(store, day, settings, force=bool((event or {}).get("force", False)))
    emit_metrics({"TotalSymbols": len(update.symbols)})  # the fetch-rate alarm's denominator
    return with_run_date(update.to_document(), day.isoformat())
