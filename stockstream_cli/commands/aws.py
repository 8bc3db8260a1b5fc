"""`stockstream deploy`, `destroy`, `run-remote`, `logs`: the pipeline on AWS, through boto3, as plan -> apply."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .. import options
from ..aws import defaults
from ..outcome import Outcome
from ..settings import Settings


def register(app) -> None:
    from .logs import logs
    from .run_remote import run_remote

    app.command("deploy")(deploy)
    app.command("destroy")(destroy)
    app.command("run-remote")(run_remote)
    app.command("logs")(logs)


Bucket = Annotated[
    Optional[str],
    typer.Option("--bucket", help="The data bucket [default: stockstream-data-[STAGE-]ACCOUNT-REGION].", show_default=False),
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
    Optional[str], typer.Option("--arch", help="The Lambda architecture, arm64 (cheaper) or x86_64 [default: this "
                                f"machine's when deploy builds the image, else {defaults.DEFAULT_ARCH}].", show_default=False)
]
LogRetention = Annotated[
    int, typer.Option("--log-retention-days", help="How long the functions' and state machine's logs are kept.")
]
Tracing = Annotated[bool, typer.Option("--tracing/--no-tracing", help="X-Ray tracing of the functions and the state machine.")]
Env = Annotated[
    Optional[list[str]],
    typer.Option("--env", help="KEY=VALUE set on both functions (repeat it); variables added in the console are kept.",
                 show_default=False),
]
PrintPolicy = Annotated[
    bool, typer.Option("--print-policy", help="Print the IAM policy the deploying user needs (JSON) and exit.")
]
DryRun = Annotated[bool, typer.Option("--dry-run", "-n", help="Print the plan; change nothing in AWS.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def _print_plan(steps: list[dict], verbs: dict[str, str], *, calls: bool) -> None:
    from ..aws.plan import render, step_from_dict

    for line in render([step_from_dict(s) for s in steps], calls=calls, verbs=verbs):
        typer.echo(line)


def deploy(
    region: options.Region = None,
    profile: options.Profile = None,
    stage: options.Stage = None,
    bucket: Bucket = None,
    image_uri: ImageUri = None,
    alert_email: AlertEmail = None,
    schedule: Schedule = defaults.DEFAULT_SCHEDULE,
    arch: Arch = None,
    log_retention_days: LogRetention = defaults.DEFAULT_LOG_RETENTION_DAYS,
    tracing: Tracing = False,
    env: Env = None,
    max_concurrency: options.MaxConcurrency = None,
    workers: options.Workers = None,
    print_policy: PrintPolicy = False,
    dry_run: DryRun = False,
    json: options.Json = False,
) -> None:
    """Create or update the pipeline on AWS: bucket, IAM roles, Lambdas, state machine, schedule, alerts, logs.

    Works out what should exist, reads what does, and changes only what differs: a second deploy with nothing
    changed reports "no changes". --dry-run prints the plan (every AWS call, and the estimated monthly cost) and
    changes nothing; it needs no container engine. The Lambda image is built from infra/Dockerfile with Docker
    or Podman and pushed to ECR, or given with --image-uri.

    Example: stockstream deploy --region ap-southeast-2 --stage test --alert-email ops@example.com --dry-run
    """
    from ..aws.deploy import DeployOptions
    from ..aws.deploy import deploy as run_deploy
    from .output import emit_json, say

    if print_policy:
        from ..aws.resources import check_stage, deployer_policy

        DeployOptions(bucket=bucket).check()
        emit_json(deployer_policy(region=region or "*", stage=check_stage(stage), bucket=bucket))
        return
    settings = Settings.resolve(profile=profile, region=region, max_concurrency=max_concurrency, workers=workers)
    deploy_options = DeployOptions(region=settings.region, profile=settings.profile, stage=stage, bucket=bucket,
                                   image_uri=image_uri, alert_email=alert_email, schedule=schedule, arch=arch,
                                   log_retention_days=log_retention_days, tracing=tracing, env=tuple(env or ()),
                                   max_concurrency=settings.max_concurrency, workers=settings.workers)
    progress = None if json else (lambda s: say(f"{s.action} {s.resource} {s.name} ..."))
    document = run_deploy(deploy_options, dry_run=dry_run, on_step=progress)
    if not document["account_state_read"]:
        from ..aws.deploy import NO_ACCOUNT_STATE
        from .output import warn

        warn(NO_ACCOUNT_STATE)
    if json:
        emit_json(document)
        return
    where = f"{document['region']}" + (f" (stage {document['stage']})" if document["stage"] else "")
    if not document["changes"]:
        typer.echo(f"no changes: the pipeline in {where} is up to date")
    else:
        _print_plan(document["changes"], {"create": "+ create", "update": "~ update", "delete": "- delete"},
                    calls=dry_run)
        count = len(document["changes"])
        typer.echo(f"plan: {count} change(s), nothing applied (--dry-run)" if dry_run else f"applied {count} change(s)")
    for note in document["notes"]:
        typer.echo(f"note: {note}")
    if dry_run:
        _print_cost(document["cost"])
    typer.echo(f"store: {document['store']}  (stockstream load --store {document['store']})")
    for name, arn in document["resources"].items():
        typer.echo(f"{name}: {arn}")
    for name, url in document["console"].items():
        typer.echo(f"console, {name}: {url}")


def _print_cost(cost: dict) -> None:
    shape = cost["shape"]
    typer.echo(f"estimated cost: about ${cost['monthly_usd']:.2f} a month ({cost['executions_per_month']} executions; "
               f"{cost['profile']['source']})")
    typer.echo(f"  shape: at most {shape['max_concurrency']} batches at once, {shape['workers']} fetcher thread(s) "
               f"each: {shape['requests_per_second']:g} requests/s toward Yahoo (--max-concurrency, --workers)")
    for line in cost["lines"]:
        typer.echo(f"  {line['item']}: ${line['monthly_usd']:.2f}  ({line['basis']})")


def destroy(
    region: options.Region = None,
    profile: options.Profile = None,
    stage: options.Stage = None,
    yes: Yes = False,
    dry_run: DryRun = False,
    json: options.Json = False,
) -> Outcome | None:
    """Remove the pipeline from AWS: everything deploy made for this stage except the data bucket, which keeps
    every object. --dry-run prints what would be removed (every call) and removes nothing.

    Example: stockstream destroy --region ap-southeast-2 --stage test --yes
    """
    import sys

    from ..aws.destroy import destroy as run_destroy
    from ..errors import InputError
    from .output import emit_json, say

    def confirm(plan, bucket: str) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            raise InputError("destroy needs confirmation: run it in a terminal, or pass --yes (or see it first with --dry-run)")
        for s in plan.steps:
            say(f"will delete {s.resource} {s.name}")
        return typer.confirm(f"Delete these {len(plan.steps)} resources (the bucket {bucket} and its data stay)?", err=True)

    settings = Settings.resolve(profile=profile, region=region)
    document = run_destroy(region=settings.region, profile=settings.profile, stage=stage, dry_run=dry_run,
                           confirm=confirm)
    if not dry_run and document["to_remove"]:
        return Outcome.FAILED  # the user said no: nothing was removed
    if json:
        emit_json(document)
        return
    steps = document["to_remove"] if dry_run else document["removed"]
    if not steps:
        typer.echo(f"nothing to remove in {document['region']}" + (f" (stage {stage})" if stage else ""))
    elif dry_run:
        _print_plan(steps, {"delete": "- delete"}, calls=True)
        typer.echo(f"plan: {len(steps)} removal(s), nothing applied (--dry-run)")
    else:
        _print_plan(steps, {"delete": "- removed"}, calls=False)
    typer.echo(f"kept: bucket {document['kept']['bucket']} and every object in it")
