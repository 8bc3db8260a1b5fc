"""stockstream: a dependable daily OHLCV dataset of every ASX-listed company.

The map. Data flows one way, source -> fetch -> store -> read back; orchestration decides order,
concurrency and retries and never touches rows; the CLI, the two Lambda handlers and DataAggregator are thin
faces over this library, which knows none of them (no typer or rich outside cli.py, options.py, commands/).

    cli.py, options.py   the Typer app; the one map from outcomes and domain errors to exit codes
    settings.py          defaults < STOCKSTREAM_* < command line; dataset.store.store_of() opens the store they name
    errors.py outcome.py reasons.py layout.py schema.py store.py values.py datafile.py calendar.py
                         one fact each: errors, outcomes, failure reasons and their retry policy, keys,
                         columns, store I/O, parsing and validation, a data file's bytes, ASX sessions
    sources/             the outside world: asx.py (the list), yahoo.py (bars through yfinance)
    fetch/               one batch: pacing.py, batch.py (fetch, clean, merge, write), manifest.py (its record)
    run/                 the state machine's semantics: types.py (a leaf), task.py (one batch, retried),
                         local.py (threads), workers.py (processes), summary.py (run.json), rerun.py,
                         finalize.py (the deployed last step), backfill.py, lambda_runtime.py
    read/                aggregate.py (DataAggregator), newest.py (the one newest-wins rule),
                         file_index.py (footer index), compact.py, status.py
    quality/             check.py (what is expected, missing and why, suspicious), chart.py
    aws/                 deploy, destroy, remote operations
    commands/            one module per command, plus rendering (progress.py, output.py)
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["DataAggregator", "__version__"]


def __getattr__(name: str):
    # DataAggregator pulls in polars; import it only when asked for, so `stockstream --help` stays instant.
    if name == "DataAggregator":
        from .dataset.aggregate import DataAggregator

        return DataAggregator
    raise AttributeError(name)
