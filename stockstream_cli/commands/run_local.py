"""`stockstream run-local`: options over run/local.py, rendering in running.py and progress.py."""

from __future__ import annotations

import typer

from ..outcome import Outcome
from ..options import (AllowPlainRequests, BatchSize, Concurrency, Date, Delay, Force, FromFile, Json, LookbackDays, Processes, Profile, Rate, Region, Retries, RetryWait, SourceUrl, Store, Wait)


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
    store: Store = None,
    profile: Profile = None,
    region: Region = None,
    json_output: Json = False,
    wait: Wait = False,
) -> Outcome:
    """Run the whole pipeline on this machine: the ASX list, every batch, then the run's summary.

    Same semantics as the deployed state machine: the list step is retried, batches run at most
    --concurrency at once, each retried and isolated. Progress on stderr, the summary on stdout.
    Exit 0 all fetched, 3 some symbols or batches failed (see `rerun-failed`), 1 nothing fetched,
    130 interrupted (Ctrl-C; finished batches are kept).

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
    source = local.asx_source(from_file=from_file, force=force)
    http.require_impersonation(settings.allow_plain_requests)  # bad configuration: exit 2 before the lock
    with interruptible(day), run_observer(json_output, f"run-local {day.isoformat()}") as observer:
        run = local.run_local(data_store, day, settings, source=source, observer=observer, wait=wait)
    return finish(run, json_output)
