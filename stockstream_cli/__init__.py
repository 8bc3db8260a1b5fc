"""stockstream: a dependable daily OHLCV dataset of every ASX-listed company.

The map. Data flows one way, source -> fetch -> store -> read back; orchestration decides order,
concurrency and retries and never touches rows; the CLI, the two Lambda handlers and DataAggregator are thin
faces over this library, which knows none of them (no typer or rich outside cli.py, options.py, commands/).

    cli.py options.py commands/   the faces: parse, one library call, render; cli.py alone maps outcomes and
                                  domain errors to exit codes
    aws/                 deploy and destroy as plan -> executor, the remote operations, the image
    run/                 the state machine's semantics: the symbols step, a batch end to end (batch.py),
                         run-local's threads and worker processes, rerun-failed, backfill, the Lambda runtime
    quality/             check.py (what is expected, missing and why, suspicious), chart.py
    fetch/               pure: symbols and a window in -> rows, actions and outcomes out (pacing, cleaning,
                         restatement, deadlines, blocks); it never touches the store
    sources/             the outside world: asx.py (the list), yahoo.py (bars through yfinance), http.py
    dataset/             the store, which nothing else builds a key of: layout, backends, the symbols list, the
                         typed batch record and the resume rule, run.json, the one commit path (the only holder
                         of locks.py), newest-wins, actions, compaction, the readers (DataAggregator), SQL views
    settings.py errors.py values.py calendar.py schema.py reasons.py outcome.py hints.py ...
                         leaves: defaults < STOCKSTREAM_* < command line, one exception family, parsing, the
                         XASX calendar, the row schemas, failure reasons (README, "Code map", has the full list)
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
