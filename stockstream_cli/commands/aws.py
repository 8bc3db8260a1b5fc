"""`stockstream deploy` and `stockstream destroy`: the pipeline on AWS, through boto3, as plan -> apply."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .. import options


def register(app) -> None:
    app.command("deploy")(deploy)
    app.command("destroy")(destroy)


Bucket = Annotated[
    Optional[str],
    typer.Option("--bucket", help="The data bucket [default: stockstream-data-ACCOUNT-REGION].", show_default=False),
]
ImageUri = Annotated[
    Optional[str],
    typer.Option("--image-uri", help="Use this Lambda image (built from infra/Dockerfile elsewhere) instead of "
                 "building one with Docker or Podman.", show_default=False),
]
AlertEmail = Annotated[
    Optional[str],
    typer.Option("--alert-email", help="Subscribe this address to the alert topic.", show_default=False),
]
Schedule = Annotated[
    str,
    typer.Option("--schedule", help="When the pipeline runs (EventBridge expression, UTC); 20:00 UTC is 06:00 AEST."),
]
Arch = Annotated[
    str, typer.Option("--arch", help="The Lambda architecture: arm64 (cheaper) or x86_64.")
]
DryRun = Annotated[bool, typer.Option("--dry-run", "-n", help="Print the plan; change nothing in AWS.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def _aws_settings(profile: str | None, region: str | None):
    from ..settings import Settings

    return Settings.resolve(profile=profile, region=region)


def _print_changes(changes: list[dict], verb: dict[str, str]) -> None:
    for change in changes:
        details = f": {'; '.join(change['details'])}" if change["details"] else ""
        typer.echo(f"{verb[change['action']]} {change['resource']} {change['name']}{details}")


def deploy(
    region: options.Region = None,
    profile: options.Profile = None,
    bucket: Bucket = None,
    image_uri: ImageUri = None,
    alert_email: AlertEmail = None,
    schedule: Schedule = "cron(0 20 * * ? *)",
    arch: Arch = "arm64",
    dry_run: DryRun = False,
    json: options.Json = False,
) -> None:
    """Create or update the pipeline on AWS: bucket, IAM roles, Lambdas, state machine, schedule, alerts.

    Works out what should exist, reads what does, and changes only what differs: a second deploy with nothing
    changed reports "no changes". --dry-run prints the plan and changes nothing. The Lambda image is built from
    infra/Dockerfile with Docker or Podman and pushed to ECR, or given with --image-uri.

    Example: stockstream deploy --region ap-southeast-2 --alert-email ops@example.com --dry-run
    """
    from ..aws.deploy import DeployOptions
    from ..aws.deploy import deploy as run_deploy
    from .output import emit_json, say

    settings = _aws_settings(profile, region)
    deploy_options = DeployOptions(region=settings.region, profile=settings.profile, bucket=bucket,
                                   image_uri=image_uri, alert_email=alert_email, schedule=schedule, arch=arch)
    progress = None if json else (lambda change: say(f"{change.action} {change.resource} {change.name} ..."))
    document = run_deploy(deploy_options, dry_run=dry_run, on_change=progress)
    if json:
        emit_json(document)
        return
    if not document["changes"]:
        typer.echo(f"no changes: the pipeline in {document['region']} is up to date")
    else:
        verbs = {"create": "+ create", "update": "~ update", "delete": "- delete"}
        _print_changes(document["changes"], verbs)
        count = len(document["changes"])
        typer.echo(f"plan: {count} change(s), nothing applied (--dry-run)" if dry_run else f"applied {count} change(s)")
    typer.echo(f"store: {document['store']}  (stockstream load --store {document['store']})")


def destroy(
    region: options.Region = None,
    profile: options.Profile = None,
    yes: Yes = False,
    json: options.Json = False,
) -> None:
    """Remove the pipeline from AWS: everything deploy made except the data bucket, which keeps every object.

    Example: stockstream destroy --region ap-southeast-2 --yes
    """
    import sys

    from ..aws.destroy import destroy_document, prepare_destroy
    from ..errors import InputError
    from .output import emit_json, say

    settings = _aws_settings(profile, region)
    deployment, changes, bucket = prepare_destroy(settings.region, settings.profile)
    if changes and not yes:
        if not sys.stdin.isatty():
            raise InputError("destroy needs confirmation: run it in a terminal, or pass --yes")
        for change in changes:
            say(f"will delete {change.resource} {change.name}")
        if not typer.confirm(f"Delete these {len(changes)} resources (the bucket {bucket} and its data stay)?",
                             err=True):
            raise typer.Exit(1)
    deployment.apply(changes)
    document = destroy_document(deployment, changes, bucket, applied=True)
    if json:
        emit_json(document)
        return
    if not changes:
        typer.echo(f"nothing to remove in {document['region']}")
    else:
        _print_changes(document["removed"], {"delete": "- removed"})
    typer.echo(f"kept: bucket {bucket} and every object in it")


# ---------------------------------------------------------------- `--remote` for rerun-failed and status
# The options and rendering of the deployed pipeline's view; commands/pipeline.py and commands/status.py
# declare the flags and hand over to these when --remote is given.

FAILED_EXECUTION = {"FAILED", "TIMED_OUT", "ABORTED"}


def rerun_failed_remote(*, date: str | None, store: str | None, profile: str | None, region: str | None,
                        include_all: bool, wait: bool, json_output: bool) -> None:
    """`rerun-failed --remote`: the day's failed batches as one execution of the deployed state machine."""
    from ..run import summary as pipeline
    from ..aws.remote import rerun_remote
    from .output import emit_json, say, stdout_console
    from ..values import parse_date

    day = parse_date(date)
    settings = _aws_settings(profile, region)
    if not json_output:
        say(f"rerun-failed --remote {day.isoformat()}: working out what failed ...")
    run = rerun_remote(day, store_uri=store, wait=wait, include_all=include_all,
                       profile=settings.profile, region=settings.region, poll_interval=settings.poll_interval)
    execution = {"execution_arn": run["execution_arn"], "execution_status": run["execution_status"]}
    if json_output:
        emit_json({**pipeline.summary(run), **execution})
    elif run["execution_status"] == "NOT_STARTED":
        typer.echo(f"nothing to rerun on {day.isoformat()}: every batch has a result and no symbol failed retryably")
    elif run["execution_status"] == "RUNNING":
        typer.echo(f"started {run['execution_arn']} for batches {run['batches_started']}; "
                   "follow it with `stockstream status --remote`")
    else:
        from .progress import render_run

        render_run(run, stdout_console())
        typer.echo(f"execution {run['execution_arn']}: {run['execution_status']}")
    if run["execution_status"] in FAILED_EXECUTION:
        raise typer.Exit(1)
    if run["execution_status"] != "RUNNING":
        code = pipeline.exit_code(run)
        if code:
            raise typer.Exit(code)


def status_remote(*, date: str | None, profile: str | None, region: str | None, json_output: bool,
                  limit: int = 10) -> None:
    """`status --remote`: the deployed state machine's latest executions and their outcome.

    Exit 1 when the latest failed, 3 when it finished with failed batches or symbols, else 0."""
    from ..aws.remote import remote_status
    from .output import emit_json
    from ..values import parse_date

    settings = _aws_settings(profile, region)
    report = remote_status(limit=limit, day=parse_date(date) if date else None,
                           profile=settings.profile, region=settings.region)
    if json_output:
        emit_json(report)
    else:
        _print_executions(report)
    latest = report["executions"][0] if report["executions"] else None
    if latest and latest["status"] in FAILED_EXECUTION:
        raise typer.Exit(1)
    if latest and latest["status"] == "SUCCEEDED" and (latest["batches_failed"] or latest["symbols_failed"]):
        raise typer.Exit(3)


def _print_executions(report: dict) -> None:
    """One line per execution, newest first: plain text, so it reads the same in any terminal width."""
    if not report["executions"]:
        typer.echo(f"no executions of {report['state_machine_arn']} yet")
        return
    typer.echo(f"latest executions of stock-data-pipeline in {report['region']}, newest first:")
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
