"""`stockstream run-remote`: start the deployed pipeline now, as its schedule would."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .. import options
from ..outcome import Outcome
from .remote import FAILED_EXECUTION

Wait = Annotated[bool, typer.Option("--wait", help="Wait until the execution ends; exit 0 succeeded, 3 with failures, 1 failed.")]
Date = Annotated[
    Optional[str],
    typer.Option("--date", help="The day to run, YYYY-MM-DD [default: the symbol updater's today, in Sydney].",
                 show_default=False),
]


def run_remote(
    date: Date = None,
    stage: options.Stage = None,
    wait: Wait = False,
    region: options.Region = None,
    profile: options.Profile = None,
    json: options.Json = False,
) -> Outcome:
    """Start the deployed state machine now with the schedule's input (and --date, if given).

    Without --wait it prints the execution and returns; follow it with `stockstream status --remote`.

    Example: stockstream run-remote --date 2026-11-25 --wait
    """
    from ..settings import Settings
    from ..aws.remote import start_remote
    from .output import emit_json, say
    from .output import pipeline_day

    day = pipeline_day(date) if date else None
    settings = Settings.resolve(profile=profile, region=region)
    if wait and not json:
        say("started; waiting for the execution to end ...")
    summary = start_remote(day, stage=stage, wait=wait, profile=settings.profile, region=settings.region,
                           poll_interval=settings.poll_interval)
    if json:
        emit_json(summary)
    else:
        typer.echo(f"{summary['status']}: {summary['execution_arn']}")
        if summary["batches"] is not None:
            typer.echo(f"{summary['batches']} batches, failed: {summary['batches_failed'] or 'none'}; "
                       f"{summary['symbols_fetched']} symbols fetched, {summary['symbols_failed']} failed")
        if summary["error"]:
            typer.echo(f"error: {summary['error']}: {summary['cause']}")
    if not wait:
        return Outcome.COMPLETE
    if summary["status"] in FAILED_EXECUTION:
        return Outcome.FAILED
    if summary["batches_failed"] or summary["symbols_failed"]:
        return Outcome.PARTIAL
    return Outcome.COMPLETE
