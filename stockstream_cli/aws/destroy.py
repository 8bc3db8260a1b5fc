"""`stockstream destroy`: remove everything deploy made, except the data bucket and every object in it.

Like deploy, a plan first (what exists, found by the names deploy uses), then the removals, in the reverse
of the order deploy creates things, so nothing is left pointing at something already gone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import resources as res
from .deploy import Change, Deployment, _code, find_state_machine


def plan_removal(deployment: Deployment) -> list[Change]:
    """What exists of the deployment, as delete changes. Reads only."""
    changes: list[Change] = []
    for planner in (_schedule, _state_machine, _functions, _alarms, _dashboard, _topic, _roles, _repository):
        changes.extend(planner(deployment))
    return changes


def _exists(call: Callable[[], Any], *missing: str) -> bool:
    try:
        call()
        return True
    except Exception as exc:
        if _code(exc) in missing:
            return False
        raise


def _schedule(d: Deployment) -> list[Change]:
    events = d.client("events")
    if not _exists(lambda: events.describe_rule(Name=res.SCHEDULE_RULE), "ResourceNotFoundException"):
        return []

    def remove() -> None:
        ids = [t["Id"] for t in events.list_targets_by_rule(Rule=res.SCHEDULE_RULE).get("Targets", [])]
        if ids:
            events.remove_targets(Rule=res.SCHEDULE_RULE, Ids=ids)
        events.delete_rule(Name=res.SCHEDULE_RULE)

    return [Change("delete", "schedule rule", res.SCHEDULE_RULE, ["and its target"], remove)]


def _state_machine(d: Deployment) -> list[Change]:
    sfn = d.client("stepfunctions")
    arn = find_state_machine(sfn, res.STATE_MACHINE)
    if arn is None:
        return []
    return [Change("delete", "state machine", res.STATE_MACHINE, [], lambda: sfn.delete_state_machine(stateMachineArn=arn))]


def _functions(d: Deployment) -> list[Change]:
    lam = d.client("lambda")
    return [
        Change("delete", "lambda function", spec.name, [], lambda name=spec.name: lam.delete_function(FunctionName=name))
        for spec in res.FUNCTIONS
        if _exists(lambda name=spec.name: lam.get_function(FunctionName=name), "ResourceNotFoundException")
    ]


def _alarms(d: Deployment) -> list[Change]:
    cloudwatch = d.client("cloudwatch")
    names = [a["AlarmName"] for a in res.alarms(d.target)]
    found = [a["AlarmName"] for a in cloudwatch.describe_alarms(AlarmNames=names).get("MetricAlarms", [])]
    if not found:
        return []
    return [Change("delete", "cloudwatch alarm", ", ".join(found), [], lambda: cloudwatch.delete_alarms(AlarmNames=found))]


def _dashboard(d: Deployment) -> list[Change]:
    cloudwatch = d.client("cloudwatch")
    if not _exists(lambda: cloudwatch.get_dashboard(DashboardName=res.DASHBOARD), "ResourceNotFound", "ResourceNotFoundException"):
        return []
    return [Change("delete", "cloudwatch dashboard", res.DASHBOARD, [],
                   lambda: cloudwatch.delete_dashboards(DashboardNames=[res.DASHBOARD]))]


def _topic(d: Deployment) -> list[Change]:
    sns = d.client("sns")
    arn = d.target.topic_arn
    if not _exists(lambda: sns.get_topic_attributes(TopicArn=arn), "NotFound", "NotFoundException"):
        return []
    return [Change("delete", "sns topic", res.TOPIC, ["and its subscriptions"], lambda: sns.delete_topic(TopicArn=arn))]


def _roles(d: Deployment) -> list[Change]:
    iam = d.client("iam")
    changes = []
    for spec in res.roles(d.target):
        if not _exists(lambda name=spec.name: iam.get_role(RoleName=name), "NoSuchEntity"):
            continue

        def remove(name: str = spec.name) -> None:
            for policy in iam.list_role_policies(RoleName=name).get("PolicyNames", []):
                iam.delete_role_policy(RoleName=name, PolicyName=policy)
            for attached in iam.list_attached_role_policies(RoleName=name).get("AttachedPolicies", []):
                iam.detach_role_policy(RoleName=name, PolicyArn=attached["PolicyArn"])
            iam.delete_role(RoleName=name)

        changes.append(Change("delete", "iam role", spec.name, ["and its inline policy"], remove))
    return changes


def _repository(d: Deployment) -> list[Change]:
    ecr = d.client("ecr")
    if not _exists(lambda: ecr.describe_repositories(repositoryNames=[res.ECR_REPOSITORY]), "RepositoryNotFoundException"):
        return []
    return [Change("delete", "ecr repository", res.ECR_REPOSITORY, ["and the Lambda images in it"],
                   lambda: ecr.delete_repository(repositoryName=res.ECR_REPOSITORY, force=True))]


def prepare_destroy(region: str | None = None, profile: str | None = None, *, session=None):
    """The deployment in this account and region, what of it exists (to delete), and its data bucket (kept)."""
    from .deploy import DeployOptions, prepare

    deployment = prepare(DeployOptions(region=region, profile=profile), session=session, need_image=False)
    bucket = deployed_bucket(deployment) or deployment.target.bucket
    return deployment, plan_removal(deployment), bucket


def destroy_document(deployment: Deployment, changes: list[Change], bucket: str, *, applied: bool) -> dict[str, Any]:
    return {
        "region": deployment.target.region,
        "account": deployment.target.account,
        "removed": [change.as_dict() for change in changes] if applied else [],
        "to_remove": [] if applied else [change.as_dict() for change in changes],
        "kept": {"bucket": bucket, "note": "the data bucket and every object in it are kept"},
    }


def deployed_bucket(deployment: Deployment) -> str | None:
    """The bucket the deployed functions write to (their STOCKSTREAM_STORE), if they exist."""
    lam = deployment.client("lambda")
    for spec in res.FUNCTIONS:
        try:
            variables = lam.get_function_configuration(FunctionName=spec.name).get("Environment", {}).get("Variables", {})
        except Exception as exc:
            if _code(exc) == "ResourceNotFoundException":
                continue
            raise
        store = variables.get("STOCKSTREAM_STORE", "")
        if store.startswith("s3://"):
            return store[len("s3://"):].split("/", 1)[0]
    return None
