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
