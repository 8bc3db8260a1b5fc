"""`stockstream rerun-failed`: options over run/rerun.py (and commands/remote.py for --remote)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..outcome import Outcome
from ..reasons import ALL, LASTING
from ..options import (AllowPlainRequests, Concurrency, Date, Delay, Json, LookbackDays, Processes, Profile, Rate, Region, Retries, RetryWait, Store, Wait)
from ..options import NoWait as NoWaitFlag
from ..options import Stage
from ..options import Remote as RemoteFlag

AllReasons = Annotated[
    bool,
    typer.Option("--all", help=f"Also retry symbols that failed as {' or '.join(r for r in ALL if r in LASTING)} "
                               "(not retried by default)."),
]


def register(app: typer.Typer) -> None:
    app.command("rerun-failed")(rerun_failed)


def rerun_failed(
    date: Date = None,
    include_all: AllReasons = False,
    concurrency: Concurrency = None,
    delay: Delay = None,
    rate: Rate = None,
    processes: Processes = None,
    retries: Retries = None,
    retry_wait: RetryWait = None,
    lookback_days: LookbackDays = None,
    allow_plain_requests: AllowPlainRequests = None,
    store: Store = None,
    profile: Profile = None,
    region: Region = None,
    json_output: Json = False,
    remote: RemoteFlag = False,
    no_wait: NoWaitFlag = False,
    stage: Stage = None,
    wait: Wait = False,
) -> Outcome:
    """Fetch again exactly what failed on a day, from what the store records, and merge it in.

    Batches of the day's list with no result are fetched whole; symbols recorded as failed with a
    retryable reason (rate_limited, timeout, error, invalid_data; --all adds not_found and no_data)
    are fetched and merged into their batch file, one row per (symbol, date). Running it again when
    nothing failed changes no file. Exit codes and --json as run-local.

    --remote does it on the deployed pipeline: one execution carrying only the failed batches, waited
    for unless --no-wait (the store defaults to the deployed bucket).

    Example: stockstream rerun-failed --date 2026-11-25
    """
    if remote or no_wait:
        from ..errors import InputError
        from .remote import rerun_failed_remote

        if not remote:
            raise InputError("--no-wait goes with --remote: stockstream rerun-failed --remote --no-wait --date D")
        return rerun_failed_remote(date=date, store=store, profile=profile, region=region,
                                   include_all=include_all, wait=not no_wait, json_output=json_output,
                                   stage=stage)
    from ..run.rerun import rerun_failed as run_rerun_failed
    from .running import finish, interruptible, prepare, run_observer

    day, settings, data_store = prepare(
        date, store, profile, region, concurrency=concurrency, delay=delay, rate=rate, processes=processes,
        retries=retries, retry_wait=retry_wait, lookback_days=lookback_days,
        allow_plain_requests=allow_plain_requests,
    )
    with interruptible(day), run_observer(json_output, f"rerun-failed {day.isoformat()}") as observer:
        run = run_rerun_failed(data_store, day, settings, include_all=include_all, observer=observer, wait=wait)
    return finish(run, json_output)
