"""`stockstream run-local` and `stockstream rerun-failed`: options and rendering over pipeline.py."""

from __future__ import annotations

import contextlib
from typing import Annotated, Optional

import typer

from ..options import (
    BatchSize,
    Concurrency,
    Date,
    Delay,
    Json,
    LookbackDays,
    Processes,
    Profile,
    Rate,
    Region,
    Retries,
    RetryWait,
    SourceUrl,
    Store,
)
from ..options import Force, FromFile
from ..options import NoWait as NoWaitFlag
from ..options import Remote as RemoteFlag

AllReasons = Annotated[
    bool,
    typer.Option("--all", help="Also retry symbols that failed as not_found or no_data (not retried by default)."),
]


def register(app: typer.Typer) -> None:
    @app.command("run-local")
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
        source_url: SourceUrl = None,
        from_file: FromFile = None,
        force: Force = False,
        store: Store = None,
        profile: Profile = None,
        region: Region = None,
        json_output: Json = False,
    ) -> None:
        """Run the whole pipeline on this machine: the ASX list, every batch, then the run's summary.

        Same semantics as the deployed state machine: the list step is retried, batches run at most
        --concurrency at once, each retried and isolated. Progress on stderr, the summary on stdout.
        Exit 0 all fetched, 3 some symbols or batches failed (see `rerun-failed`), 1 nothing fetched,
        130 interrupted (Ctrl-C; finished batches are kept).

        Example: stockstream run-local --concurrency 10 --store ./stockstream-data
        """
        from .. import pipeline

        day, settings, data_store = _prepare(
            date, store, profile, region, concurrency=concurrency, batch_size=batch_size, delay=delay, rate=rate,
            processes=processes, retries=retries, retry_wait=retry_wait, lookback_days=lookback_days,
            source_url=source_url,
        )
        source = pipeline.asx_source(from_file=from_file, force=force)
        with _observer(json_output, f"run-local {day.isoformat()}") as observer, _interruptible(day):
            run = pipeline.run_local(data_store, day, settings, source=source, observer=observer)
        _finish(run, json_output)

    @app.command("rerun-failed")
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
        store: Store = None,
        profile: Profile = None,
        region: Region = None,
        json_output: Json = False,
        remote: RemoteFlag = False,
        no_wait: NoWaitFlag = False,
        stage: Annotated[Optional[str], typer.Option("--stage", help="With --remote: the deployed stage to rerun on.",
                                                     show_default=False)] = None,
    ) -> None:
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
            from .aws import rerun_failed_remote

            if not remote:
                raise InputError("--no-wait goes with --remote: stockstream rerun-failed --remote --no-wait --date D")
            return rerun_failed_remote(date=date, store=store, profile=profile, region=region,
                                       include_all=include_all, wait=not no_wait, json_output=json_output,
                                       stage=stage)
        from .. import pipeline

        day, settings, data_store = _prepare(
            date, store, profile, region, concurrency=concurrency, delay=delay, rate=rate, processes=processes,
            retries=retries, retry_wait=retry_wait, lookback_days=lookback_days,
        )
        with _observer(json_output, f"rerun-failed {day.isoformat()}") as observer, _interruptible(day):
            run = pipeline.rerun_failed(data_store, day, settings, include_all=include_all, observer=observer)
        _finish(run, json_output)


def _prepare(date, store, profile, region, **typed):
    from ..settings import Settings
    from ..store import open_store
    from ..values import parse_date

    day = parse_date(date)
    settings = Settings.resolve(store=store, profile=profile, region=region, **typed)
    return day, settings, open_store(settings.store, profile=settings.profile, region=settings.region)


def _observer(json_output: bool, title: str):
    from ..progress import observer_for

    return observer_for(json_output=json_output, title=title)


@contextlib.contextmanager
def _interruptible(day):
    """A Ctrl-C that lands outside the batches (a store write, the summary) still exits 130 with advice."""
    from ..errors import Interrupted

    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted; run `stockstream rerun-failed --date {day.isoformat()}` to finish the day"
        ) from None


def _finish(run: dict, json_output: bool) -> None:
    from .. import pipeline
    from ..output import emit_json, stdout_console
    from ..progress import render_run

    if json_output:
        emit_json(pipeline.summary(run))
    else:
        render_run(run, stdout_console())
    code = pipeline.exit_code(run)
    if code:
        raise typer.Exit(code)
