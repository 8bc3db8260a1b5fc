"""`--remote` for rerun-failed and status: the deployed pipeline's view, its options and rendering.

commands/rerun_failed.py and commands/status.py declare the flags and hand over to these when --remote is
given."""

from __future__ import annotations

import typer

from .. import hints
from ..outcome import Outcome


FAILED_EXECUTION = {"FAILED", "TIMED_OUT", "ABORTED"}


def rerun_failed_remote(*, date: str | None, store: str | None, profile: str | None, region: str | None,
                        include_all: bool, wait: bool, json_output: bool, stage: str | None = None) -> Outcome:
    """`rerun-failed --remote`: the day's failed batches as one execution of the deployed state machine."""
    from ..dataset import summary as run_summary
    from ..aws.remote import rerun_remote
    from ..aws.session import aws_errors
    from ..settings import Settings
    from .output import emit_json, say, stdout_console
    from .output import pipeline_day

    day = pipeline_day(date)
    settings = Settings.resolve(profile=profile, region=region)
    if not json_output:
        say(f"rerun-failed --remote {day.isoformat()}: working out what failed ...")
    with aws_errors(f"rerun-failed --remote {day.isoformat()}"):
        run = rerun_remote(day, store_uri=store, wait=wait, include_all=include_all, stage=stage,
                           profile=settings.profile, region=settings.region, poll_interval=settings.poll_interval)
    execution = {"execution_arn": run["execution_arn"], "execution_status": run["execution_status"]}
    if json_output:
        emit_json({**run_summary.summary(run), **execution})
    elif run["execution_status"] == "NOT_STARTED":
        typer.echo(f"nothing to rerun on {day.isoformat()}: every batch has a result and no symbol failed retryably")
    elif run["execution_status"] == "RUNNING":
        typer.echo(f"started {run['execution_arn']} for batches {run['batches_started']}; "
                   f"follow it with `{hints.command('status', '--remote')}`")
    else:
        from .progress import render_run

        render_run(run, stdout_console())
        typer.echo(f"execution {run['execution_arn']}: {run['execution_status']}")
    if run["execution_status"] in FAILED_EXECUTION:
        return Outcome.FAILED
    return Outcome.COMPLETE if run["execution_status"] == "RUNNING" else run_summary.outcome(run)


def status_remote(*, date: str | None, profile: str | None, region: str | None, json_output: bool,
                  limit: int = 10, stage: str | None = None) -> Outcome:
    """`status --remote`: the deployed state machine's latest executions and their outcome.

    FAILED when the latest failed, PARTIAL when it finished with failed batches or symbols."""
    from ..aws.remote import remote_status
    from ..aws.session import aws_errors
    from ..settings import Settings
    from .output import emit_json
    from ..values import parse_date

    settings = Settings.resolve(profile=profile, region=region)
    with aws_errors("status --remote"):
        report = remote_status(limit=limit, day=parse_date(date) if date else None, stage=stage,
                               profile=settings.profile, region=settings.region)
    if json_output:
        emit_json(report)
    else:
        _print_executions(report)
    latest = report["executions"][0] if report["executions"] else None
    if latest and latest["status"] in FAILED_EXECUTION:
        return Outcome.FAILED
    if latest and latest["status"] == "SUCCEEDED" and (latest["batches_failed"] or latest["symbols_failed"]):
        return Outcome.PARTIAL
    return Outcome.COMPLETE


def _print_executions(report: dict) -> None:
    """One line per execution, newest first: plain text, so it reads the same in any terminal width."""
    if not report["executions"]:
        typer.echo(f"no executions of {report['state_machine_arn']} yet")
        return
    machine = report["state_machine_arn"].rsplit(":", 1)[-1]
    typer.echo(f"latest executions of {machine} in {report['region']}, newest first:")
    for e in report["executions"]:
        started = (e["started"] or "")[:19].replace("T", " ")
        outcome = e["status"] if not e["error"] else f"{e['status']} ({e['error']})"
        parts = [started, outcome, f"{e['kind']} {e['date'] or '(no date)'}"]
        if e["batches"] is not None:
            failed = f", failed: {', '.join(map(str, e['batches_failed']))}" if e["batches_failed"] else ""
            parts.append(f"{e['batches']} batches{failed}")
            parts.append(f"{e['symbols_fetched']} symbols fetched, {e['symbols_failed']} failed")
        if e["duration"] is not None:
            parts.append(f"{e['duration']:.0f} s")
        parts.append(e["name"])
        typer.echo("  " + "  |  ".join(parts))
