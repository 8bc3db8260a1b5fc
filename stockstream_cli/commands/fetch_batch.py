"""`stockstream fetch-batch`: fetch one batch of one day from Yahoo into the store."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..outcome import Outcome
from .. import options
from ..dataset.store import store_of


def register(app) -> None:
    app.command("fetch-batch")(fetch_batch)


BatchNumber = Annotated[
    Optional[int],
    typer.Option("--batch-number", help="The batch to fetch: batch N holds symbols [N*size, (N+1)*size) of the day's "
                 "list. With --symbols it may be left out: each symbol goes to its own batch.", show_default=False,
                 metavar="N"),
]

SHOWN_FAILURES = 20


def fetch_batch(
    batch_number: BatchNumber = None,
    date: options.Date = None,
    symbols: options.Symbols = None,
    delay: options.Delay = None,
    rate: options.Rate = None,
    retries: options.Retries = None,
    retry_wait: options.RetryWait = None,
    lookback_days: options.LookbackDays = None,
    allow_plain_requests: options.AllowPlainRequests = None,
    store: options.Store = None,
    profile: options.Profile = None,
    region: options.Region = None,
    json: options.Json = False,
    wait: options.Wait = False,
) -> Outcome:
    """Fetch daily OHLCV of one batch from Yahoo, clean it, write raw-data/D-batch-N.parquet and runs/D/batch-N.json.

    Without --symbols the batch is read from symbols/D-symbols.csv (run `stockstream symbols` first). With
    --symbols those symbols are fetched and merged into the batch's files: rows of other symbols are kept,
    and a refetched (symbol, date) replaces the stored one. Symbols must be in batch N of the day's list
    (exit 2 names their batch); without --batch-number each is filed under its own batch (with --json, one
    document per batch in an array when there are several). Exit 0 when every symbol was fetched, 3 when
    some failed (they are listed in the manifest with their reason), 1 when the whole batch failed.

    Example: stockstream fetch-batch --date 2026-11-25 --batch-number 0 --store ./data --json
    """
    from ..dataset.symbols import batch_codes, batches_of
    from ..errors import InputError
    from ..outcome import worst
    from .output import emit_json
    from ..settings import Settings
    from .output import pipeline_day
    from ..values import parse_symbols

    day = pipeline_day(date)
    codes = parse_symbols(symbols)
    settings = Settings.resolve(delay=delay, rate=rate, retries=retries, retry_wait=retry_wait, lookback_days=lookback_days,
                                allow_plain_requests=allow_plain_requests, store=store, profile=profile, region=region)
    target = store_of(settings)
    # bad input fails here, before any request
    if codes is None:
        if batch_number is None:
            raise InputError("--batch-number is needed without --symbols, e.g. --batch-number 0")
        plan = {batch_number: batch_codes(target, day, batch_number)}
    else:
        plan = batches_of(target, day, codes, batch_number)

    records = [_fetch(target, day, number, settings, members, json, wait) for number, members in plan.items()]
    if json:
        documents = [record.to_document() for record in records]
        emit_json(documents[0] if len(documents) == 1 else documents)
    return worst([record.outcome for record in records])


def _fetch(target, day, batch_number: int, settings, codes: list[str], json: bool, wait: bool):
    from ..run.batch import fetch_batch_locked

    def fetch(on_symbol):
        return fetch_batch_locked(target, day, batch_number, settings, command="fetch-batch", wait=wait,
                                  symbols=codes, on_symbol=on_symbol)

    if json:
        return fetch(None)
    record = _with_progress(fetch, len(codes), batch_number)
    _print_summary(record, target.uri)
    return record


def _with_progress(run, total: int, batch_number: int):
    """A progress bar on stderr (only when it is a terminal), advanced after each symbol."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        return run(None)
    with Progress(TextColumn(f"batch {batch_number}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("", total=total)

        def on_symbol(symbol: str, reason: str | None) -> None:
            progress.update(task, advance=1, description=f"{symbol} {reason or 'ok'}")

        return run(on_symbol)


def _print_summary(record, store_uri: str) -> None:
    from .output import counted

    details = record.details
    first, last = record.window
    lines = [
        f"batch {record.batch_number} of {details['date']}: {record.symbols_fetched:,} of "
        f"{counted(record.symbols_processed, 'symbol')} fetched, {len(record.failure_reasons):,} failed "
        f"({record.execution_time:.1f} s)",
        f"{counted(details['rows'], 'row')} for {first}..{last} in {store_uri.rstrip('/')}/{record.s3_key}",
    ]
    dropped = {reason: count for reason, count in details["rows_dropped"].items() if count}
    if dropped:
        lines.append("rows dropped: " + ", ".join(f"{count} {reason.replace('_', '-')}" for reason, count in dropped.items()))
    by_reason: dict[str, list[str]] = {}
    for symbol, reason in record.failure_reasons.items():
        by_reason.setdefault(reason, []).append(symbol)
    for reason, failed in sorted(by_reason.items()):
        shown = " ".join(failed[:SHOWN_FAILURES]) + (f" ... and {len(failed) - SHOWN_FAILURES} more" if len(failed) > SHOWN_FAILURES else "")
        lines.append(f"failed, {reason}: {shown}")
    typer.echo("\n".join(lines))
