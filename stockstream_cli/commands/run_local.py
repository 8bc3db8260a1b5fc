"""`stockstream run-local`: options over run/local.py, rendering in running.py and progress.py."""

from __future__ import annotations

import typer

from ..outcome import Outcome
from ..options import (AllowPlainRequests, Batches, BatchSize, Concurrency, Date, Delay, Force, FromFile, Json, LookbackDays, Processes, Profile, Rate, Region, RefreshList, Retries, RetryWait, SourceUrl, Store, Symbols, Wait)


def register(app: typer.Typer) -> None:
    app.command("run-local")(run_local)


def run_local(
    date: Date = None,
    concurrency: Concurrency = None,
    batch_size: BatchSize = None,
    delay: Delay = None,
    rate: Rate = None,
    processes: Processes = None,
    retries: Retries = None,
    retry_wait: RetryWait = None,
    lookback_days: LookbackDays = None,
    allow_plain_requests: AllowPlainRequests = None,
    source_url: SourceUrl = None,
    from_file: FromFile = None,
    force: Force = False,
    refresh_list: RefreshList = False,
    symbols: Symbols = None,
    batches: Batches = None,
    store: Store = None,
    profile: Profile = None,
    region: Region = None,
    json_output: Json = False,
    wait: Wait = False,
) -> Outcome:
    """Run the whole pipeline on this machine: the ASX list, every batch, then the run's summary.

    Same semantics as the deployed state machine: the list step is retried, batches run at most
    --concurrency at once, each retried and isolated. The day's list already in the store (from
    `stockstream symbols`) is used as it is; --refresh-list downloads it again. --symbols or --batches run a
    part of the day, recorded as such in run.json (rerun-failed then retries only that part). Progress on
    stderr, the summary on stdout. Exit 0 all fetched, 3 some symbols or batches failed (see
    `rerun-failed`), 1 nothing fetched, 130 interrupted (Ctrl-C or SIGTERM; what was fetched is kept).

    Example: stockstream run-local --concurrency 10 --store ./stockstream-data
    """
    from ..run import local
    from ..sources import http
    from .running import finish, interruptible, prepare, run_observer

    day, settings, data_store = prepare(
        date, store, profile, region, concurrency=concurrency, batch_size=batch_size, delay=delay, rate=rate,
        processes=processes, retries=retries, retry_wait=retry_wait, lookback_days=lookback_days,
        allow_plain_requests=allow_plain_requests,
        source_url=source_url,
    )
    part = _part(symbols, batches)
    source = local.stored_or_asx_source(from_file=from_file, force=force,
                                        refresh=refresh_list or source_url is not None, part=part)
    http.require_impersonation(settings.allow_plain_requests)  # bad configuration: exit 2 before the lock
    with interruptible(day), run_observer(json_output, f"run-local {day.isoformat()}") as observer:
        run = local.run_local(data_store, day, settings, source=source, observer=observer, wait=wait, part=part)
    return finish(run, json_output)


def _part(symbols, batches):
    """--symbols or --batches as a run.types.Part (None: the whole day); InputError before anything is read."""
    from ..errors import InputError
    from ..run.types import Part
    from ..values import parse_batch_numbers, parse_symbols

    codes, numbers = parse_symbols(symbols), parse_batch_numbers(batches)
    if codes is not None and numbers is not None:
        raise InputError("--symbols and --batches cannot be combined: give one part of the day")
    if codes is not None:
        return Part(symbols=tuple(codes))
    return Part(batches=tuple(numbers)) if numbers is not None else None
