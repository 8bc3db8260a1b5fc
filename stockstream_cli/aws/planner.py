"""Deploy and destroy as plans: read what exists (RemoteState), diff it with the desired state, emit calls.

Each resource has a reader (`_actual_<resource>`: RemoteState reads only) and a pure `_plan_<resource>(…,
actual)` that turns the difference into Steps of Calls (plan.py). `plan_deploy` and `plan_destroy` chain them
in dependency order; nothing here changes AWS. A resource that is already as wanted yields no step, so a
second deploy with nothing changed plans nothing and the executor makes no call.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
from typing import Any

from ..errors import AwsError, named
from ..settings import STORE_ENV
from . import catalog
from . import resources as res
from .image import lambda_runs
from .plan import BuildImage, Call, Step, Wait, step, var
from .remote_state import RemoteState

NOT_FOUND = ("ResourceNotFoundException",)


@dataclasses.dataclass
class Plan:
    target: res.Target
    steps: list[Step]
    notes: list[str] = dataclasses.field(default_factory=list)  # what the plan chose not to do, and why

    @property
    def builds_image(self) -> bool:
        return any(isinstance(i, BuildImage) for s in self.steps for i in s.instructions)


def same(desired: Any, actual: Any) -> bool:
    """Whether `actual` has everything `desired` says (numbers compared as numbers, lists in order)."""
    if isinstance(desired, dict):
        return isinstance(actual, dict) and all(same(v, actual.get(k)) for k, v in desired.items())
    if isinstance(desired, list):
        return isinstance(actual, list) and len(desired) == len(actual) and all(map(same, desired, actual))
    if isinstance(desired, (int, float)) and not isinstance(desired, bool) and isinstance(actual, (int, float)):
        return float(desired) == float(actual)
    return desired == actual


def _has_tags(wanted: dict[str, str], actual: dict[str, str] | None) -> bool:
    return all((actual or {}).get(k) == v for k, v in wanted.items())


def _document(value: Any) -> Any:
    return json.loads(urllib.parse.unquote(value)) if isinstance(value, str) else value


def _pairs(items: list[dict] | None, key: str = "Key", value: str = "Value") -> dict[str, str]:
    return {item[key]: item[value] for item in items or []}


# ================================================================ deploy


def plan_deploy(target: res.Target, remote: RemoteState, *, build_image: bool) -> Plan:
    """Every step that brings the account to `target`, in the order they must run."""
    notes: list[str] = []
    steps: list[Step] = []
    if build_image:
        steps += _plan_repository(target, _actual_repository(remote, target))
    bucket = _actual_bucket(remote, target)
    steps += _plan_bucket(target, bucket)
    target = dataclasses.replace(target, kms_key_arn=_bucket_key_arn(remote, bucket))
    topic_steps, topic_arn = _plan_topic(target, _actual_topic(remote, target))
    steps += topic_steps
    steps += _plan_log_groups(target, _actual_log_groups(remote, target))
    role_arns: dict[str, str] = {}
    for spec in res.roles(target):
        role_steps, role_arns[spec.key] = _plan_role(spec, target, _actual_role(remote, spec.name))
        steps += role_steps
    target = dataclasses.replace(target, reserved_concurrency=_reserved_concurrency(remote, target, notes))
    function_arns: dict[str, str] = {}
    for spec in res.FUNCTIONS:
        name = target.function_name(spec)
        function_steps, function_arns[spec.key] = _plan_function(
            target, spec, role_arns["lambda"], _actual_function(remote, name))
        steps += function_steps
    steps += _plan_concurrency(target, _actual_concurrency(remote, target))
    machine_steps, machine_arn = _plan_state_machine(
        target, role_arns["states"], topic_arn, function_arns, _actual_state_machine(remote, target))
    steps += machine_steps
    steps += _plan_schedule(target, role_arns["schedule"], machine_arn, _actual_schedule(remote, target))
    steps += _plan_alarms(target, topic_arn, _actual_alarms(remote, target))
    steps += _plan_dashboard(target, _actual_dashboard(remote, target.names.dashboard))
    steps += _plan_results_expiry(target, _actual_results_expiry(remote, target) if bucket is not None else None)
    database = _actual_database(remote, target)
    steps += _plan_database(target, database)
    steps += _plan_tables(target, _actual_tables(remote, target) if database is not None else {})
    steps += _plan_workgroup(target, _actual_workgroup(remote, target))
    return Plan(target, steps, notes)


# ---------------------------------------------------------------- ECR and the image


def _actual_repository(remote: RemoteState, target: res.Target) -> dict | None:
    name = target.names.ecr_repository
    found = remote.read("ecr", "describe_repositories", missing=("RepositoryNotFoundException",), repositoryNames=[name])
    if not found:
        return None
    repository = found["repositories"][0]
    tag = target.image_uri.rsplit(":", 1)[1]
    images = remote.read("ecr", "describe_images", missing=("ImageNotFoundException",), repositoryName=name,
                         imageIds=[{"imageTag": tag}])
    policy = remote.read("ecr", "get_repository_policy", missing=("RepositoryPolicyNotFoundException",), repositoryName=name)
    lifecycle = remote.read("ecr", "get_lifecycle_policy", missing=("LifecyclePolicyNotFoundException",), repositoryName=name)
    tags = remote.read("ecr", "list_tags_for_resource", resourceArn=repository["repositoryArn"])
    details = (images or {}).get("imageDetails") or [{}]
    return {"arn": repository["repositoryArn"], "image": bool(images and images.get("imageDetails")),
            "image_media_type": details[0].get("imageManifestMediaType"),
            "policy": _document(policy["policyText"]) if policy else None,
            "lifecycle": _document(lifecycle["lifecyclePolicyText"]) if lifecycle else None,
            "tags": _pairs(tags.get("tags"))}


def _plan_repository(target: res.Target, actual: dict | None) -> list[Step]:
    name = target.names.ecr_repository
    policy, lifecycle = res.repository_policy(target), res.lifecycle_policy()
    set_policy = Call("ecr", "set_repository_policy", {"repositoryName": name, "policyText": json.dumps(policy)})
    set_lifecycle = Call("ecr", "put_lifecycle_policy", {"repositoryName": name, "lifecyclePolicyText": json.dumps(lifecycle)})
    build = step("create", "lambda image", target.image_uri,
                 [f"build infra/Dockerfile for {target.arch} and push (content tag {target.image_uri.rsplit(':', 1)[1]})"],
                 BuildImage(target.image_uri, target.arch))
    if actual is None:
        return [step("create", "ecr repository", name,
                     ["scan on push, tags immutable", "Lambda may pull (this account's functions)",
                      f"keep the last {res.KEEP_IMAGES} images"],
                     Call("ecr", "create_repository", {"repositoryName": name, "imageTagMutability": "IMMUTABLE",
                                                       "imageScanningConfiguration": {"scanOnPush": True},
                                                       "tags": target.tag_list()}),
                     set_policy, set_lifecycle), build]
    steps = []
    if actual["policy"] != policy:
        steps.append(step("update", "ecr repository", name, ["Lambda may pull (repository policy)"], set_policy))
    if actual["lifecycle"] != lifecycle:
        steps.append(step("update", "ecr repository", name, [f"keep the last {res.KEEP_IMAGES} images"], set_lifecycle))
    if not _has_tags(target.tags, actual["tags"]):
        steps.append(step("update", "ecr repository", name, ["tags"],
                          Call("ecr", "tag_resource", {"resourceArn": actual["arn"], "tags": target.tag_list()})))
    if not actual["image"]:
        steps.append(build)
    elif not lambda_runs(actual["image_media_type"]):  # a push refused after the fact, whose delete did not happen
        tag = target.image_uri.rsplit(":", 1)[1]
        steps.append(step("update", "lambda image", target.image_uri,
                          [f"the image under this tag is a {actual['image_media_type']}, which Lambda does not run: "
                           "delete it, then build and push again"],
                          Call("ecr", "batch_delete_image", {"repositoryName": name, "imageIds": [{"imageTag": tag}]}),
                          BuildImage(target.image_uri, target.arch)))
    return steps


# ---------------------------------------------------------------- the bucket


def _actual_bucket(remote: RemoteState, target: res.Target) -> dict | None:
    bucket, owner = target.bucket, {"ExpectedBucketOwner": target.account}
    try:
        if remote.read("s3", "head_bucket", missing=("404", "NoSuchBucket", "NotFound"), Bucket=bucket, **owner) is None:
            return None
    except AwsError as exc:
        if getattr(exc, "code", "") in {"403", "AccessDenied", "Forbidden"}:
            raise AwsError(f"bucket {bucket} exists but is not this account's ({target.account}): S3 names are "
                           f"global, so someone else has it; choose another {named('bucket')}") from None
        raise
    block = remote.read("s3", "get_public_access_block", missing=("NoSuchPublicAccessBlockConfiguration",), Bucket=bucket, **owner)
    encryption = remote.read("s3", "get_bucket_encryption", missing=("ServerSideEncryptionConfigurationNotFoundError",),
                             Bucket=bucket, **owner)
    policy = remote.read("s3", "get_bucket_policy", missing=("NoSuchBucketPolicy",), Bucket=bucket, **owner)
    tags = remote.read("s3", "get_bucket_tagging", missing=("NoSuchTagSet",), Bucket=bucket, **owner)
    return {"public_access_block": block and block["PublicAccessBlockConfiguration"],
            "encryption": encryption and encryption["ServerSideEncryptionConfiguration"],
            "policy": json.loads(policy["Policy"]) if policy else None,
            "tags": _pairs((tags or {}).get("TagSet"))}


def _bucket_key_arn(remote: RemoteState, bucket: dict | None) -> str | None:
    """The ARN of the bucket's customer-managed KMS key (the bucket may name it by id or alias)."""
    key = res.bucket_kms_key(bucket and bucket["encryption"])
    if key is None or key.startswith("arn:") and ":key/" in key:
        return key
    found = remote.read("kms", "describe_key", missing=("NotFoundException",), KeyId=key)
    return found["KeyMetadata"]["Arn"] if found else key


def _bucket_policy(target: res.Target, existing: dict | None) -> dict:
    """Ours added to whatever statements the bucket's owner already has."""
    ours = res.bucket_policy(target)
    if not existing:
        return ours
    sid = ours["Statement"][0]["Sid"]
    others = [s for s in existing.get("Statement", []) if s.get("Sid") != sid]
    return {**existing, "Statement": others + ours["Statement"]}


def _plan_bucket(target: res.Target, actual: dict | None) -> list[Step]:
    bucket, owner = target.bucket, {"ExpectedBucketOwner": target.account}
    block = Call("s3", "put_public_access_block", {"Bucket": bucket, "PublicAccessBlockConfiguration": res.PUBLIC_ACCESS_BLOCK, **owner})
    encrypt = Call("s3", "put_bucket_encryption", {"Bucket": bucket, "ServerSideEncryptionConfiguration": res.ENCRYPTION, **owner})
    if actual is None:
        create: dict[str, Any] = {"Bucket": bucket, "ObjectOwnership": "BucketOwnerEnforced"}
        if target.region != "us-east-1":
            create["CreateBucketConfiguration"] = {"LocationConstraint": target.region}
        return [step("create", "s3 bucket", bucket,
                     ["block all public access", "default encryption (SSE-S3)", "deny non-TLS requests", "tags"],
                     Call("s3", "create_bucket", create), block, encrypt,
                     Call("s3", "put_bucket_policy", {"Bucket": bucket, "Policy": json.dumps(res.bucket_policy(target)), **owner}),
                     Call("s3", "put_bucket_tagging", {"Bucket": bucket, "Tagging": {"TagSet": target.tag_list()}, **owner}))]
    steps = []
    if not same(res.PUBLIC_ACCESS_BLOCK, actual["public_access_block"]):
        steps.append(step("update", "s3 bucket", bucket, ["block all public access"], block))
    if not (actual["encryption"] or {}).get("Rules"):  # any default encryption the owner chose (KMS too) is kept
        steps.append(step("update", "s3 bucket", bucket, ["default encryption (SSE-S3)"], encrypt))
    wanted = _bucket_policy(target, actual["policy"])
    if actual["policy"] != wanted:
        steps.append(step("update", "s3 bucket", bucket, ["deny non-TLS requests (bucket policy)"],
                          Call("s3", "put_bucket_policy", {"Bucket": bucket, "Policy": json.dumps(wanted), **owner})))
    if not _has_tags(target.tags, actual["tags"]):
        merged = {**actual["tags"], **target.tags}
        steps.append(step("update", "s3 bucket", bucket, ["tags"], Call("s3", "put_bucket_tagging", {
            "Bucket": bucket, "Tagging": {"TagSet": [{"Key": k, "Value": v} for k, v in merged.items()]}, **owner})))
    return steps


# ---------------------------------------------------------------- the alert topic


def _actual_topic(remote: RemoteState, target: res.Target) -> dict | None:
    arn = target.topic_arn
    if remote.read("sns", "get_topic_attributes", missing=("NotFound", "NotFoundException"), TopicArn=arn) is None:
        return None
    tags = remote.read("sns", "list_tags_for_resource", ResourceArn=arn)
    subscriptions = remote.pages("sns", "list_subscriptions_by_topic", "Subscriptions", TopicArn=arn)
    return {"arn": arn, "tags": _pairs(tags.get("Tags")),
            "emails": {s["Endpoint"].lower() for s in subscriptions if s["Protocol"] == "email"}}


def _plan_topic(target: res.Target, actual: dict | None) -> tuple[list[Step], str]:
    name, email = target.names.topic, target.alert_email
    steps = []
    if actual is None:
        arn = var("topic")
        steps.append(step("create", "sns topic", name, ["alerts for failed runs and alarms"],
                          Call("sns", "create_topic", {"Name": name, "Tags": target.tag_list()}, output=("topic", "TopicArn"))))
    else:
        arn = actual["arn"]
        if not _has_tags(target.tags, actual["tags"]):
            steps.append(step("update", "sns topic", name, ["tags"],
                              Call("sns", "tag_resource", {"ResourceArn": arn, "Tags": target.tag_list()})))
    if email and (actual is None or email.lower() not in actual["emails"]):
        steps.append(step("create", "sns subscription", email, ["email alerts (confirm the email AWS sends)"],
                          Call("sns", "subscribe", {"TopicArn": arn, "Protocol": "email", "Endpoint": email})))
    return steps, arn


# ---------------------------------------------------------------- log groups


def _actual_log_groups(remote: RemoteState, target: res.Target) -> dict[str, dict]:
    found = {}
    for name in target.names.log_groups:
        for group in remote.pages("logs", "describe_log_groups", "logGroups", logGroupNamePrefix=name):
            if group["logGroupName"] == name:
                tags = remote.read("logs", "list_tags_for_resource", resourceArn=group["arn"].removesuffix(":*"))
                found[name] = {"retention": group.get("retentionInDays"), "tags": tags.get("tags", {})}
    return found


def _plan_log_groups(target: res.Target, actual: dict[str, dict]) -> list[Step]:
    days = target.log_retention_days
    steps = []
    for name in target.names.log_groups:
        retention = Call("logs", "put_retention_policy", {"logGroupName": name, "retentionInDays": days})
        group = actual.get(name)
        if group is None:
            steps.append(step("create", "log group", name, [f"kept {days} days"],
                              Call("logs", "create_log_group", {"logGroupName": name, "tags": target.tags}), retention))
            continue
        if group["retention"] != days:
            steps.append(step("update", "log group", name, [f"kept {group['retention'] or 'forever'} -> {days} days"], retention))
        if not _has_tags(target.tags, group["tags"]):
            steps.append(step("update", "log group", name, ["tags"],
                              Call("logs", "tag_resource", {"resourceArn": target.log_group_arn(name), "tags": target.tags})))
    return steps


# ---------------------------------------------------------------- IAM


def _actual_role(remote: RemoteState, name: str) -> dict | None:
    role = remote.role(name)
    if role is None:
        return None
    policy = remote.read("iam", "get_role_policy", missing=("NoSuchEntity",), RoleName=name, PolicyName=res.ROLE_POLICY)
    tags = remote.read("iam", "list_role_tags", RoleName=name)
    return {"arn": role["Arn"], "trust": _document(role["AssumeRolePolicyDocument"]),
            "policy": _document(policy["PolicyDocument"]) if policy else None, "tags": _pairs(tags.get("Tags"))}


def _plan_role(spec: res.RoleSpec, target: res.Target, actual: dict | None) -> tuple[list[Step], str]:
    trust = res.trust_policy(spec.service)
    put_policy = Call("iam", "put_role_policy", {"RoleName": spec.name, "PolicyName": res.ROLE_POLICY,
                                                 "PolicyDocument": json.dumps(spec.policy)})
    if actual is None:
        return [step("create", "iam role", spec.name, [f"assumed by {spec.service}", "least-privilege inline policy"],
                     Call("iam", "create_role", {"RoleName": spec.name, "AssumeRolePolicyDocument": json.dumps(trust),
                                                 "Description": spec.description, "Tags": target.tag_list()},
                          output=(f"role.{spec.key}", "Role.Arn")),
                     put_policy)], var(f"role.{spec.key}")
    steps = []
    if actual["trust"] != trust:
        steps.append(step("update", "iam role", spec.name, ["trust policy"], Call(
            "iam", "update_assume_role_policy", {"RoleName": spec.name, "PolicyDocument": json.dumps(trust)})))
    if actual["policy"] != spec.policy:
        steps.append(step("update", "iam role", spec.name, ["inline policy"], put_policy))
    if not _has_tags(target.tags, actual["tags"]):
        steps.append(step("update", "iam role", spec.name, ["tags"],
                          Call("iam", "tag_role", {"RoleName": spec.name, "Tags": target.tag_list()})))
    return steps, actual["arn"]


# ---------------------------------------------------------------- Lambda


def _actual_function(remote: RemoteState, name: str) -> dict | None:
    return remote.function(name)


def _comparable_configuration(configuration: dict) -> dict:
    return {**configuration, "ImageConfig": configuration.get("ImageConfigResponse", {}).get("ImageConfig", {})}


def _plan_function(target: res.Target, spec: res.FunctionSpec, role_arn: str, actual: dict | None) -> tuple[list[Step], str]:
    name = target.function_name(spec)
    ready, updated = Wait("lambda", "function_active_v2", {"FunctionName": name}), Wait("lambda", "function_updated_v2", {"FunctionName": name})
    if actual is None:
        config = res.function_configuration(target, spec, role_arn)
        return [step("create", "lambda function", name,
                     [f"{spec.memory_mb} MB, {spec.timeout_s // 60} min, {spec.handler}", target.image_uri],
                     Call("lambda", "create_function", {"FunctionName": name, "PackageType": "Image",
                                                        "Code": {"ImageUri": target.image_uri},
                                                        "Architectures": [target.arch], "Tags": target.tags,
                                                        "Publish": False, **config},
                          output=(f"function.{spec.key}", "FunctionArn"), role_propagation=True),
                     ready)], var(f"function.{spec.key}")
    current = actual["Configuration"]
    failed = current.get("State") == "Failed" or current.get("LastUpdateStatus") == "Failed"
    before = () if failed else (updated,)  # a waiter on a failed function fails: start the next update at once
    config = res.function_configuration(target, spec, role_arn, current.get("Environment", {}).get("Variables"))
    comparable = _comparable_configuration(current)
    # a field the API does not report at all (moto has no LoggingConfig) cannot be compared
    differing = [key for key, value in config.items() if key in comparable and not same(value, comparable[key])]
    steps = []
    if differing:
        steps.append(step("update", "lambda function", name, [f"configuration: {', '.join(differing)}"], *before,
                          Call("lambda", "update_function_configuration", {"FunctionName": name, **config},
                               role_propagation=True), updated))
        before = ()
    code_differs = []
    if actual.get("Code", {}).get("ImageUri") != target.image_uri:
        code_differs.append(f"image {target.image_uri}")
    if current.get("Architectures", ["x86_64"]) != [target.arch]:
        code_differs.append(f"architecture {target.arch}")
    if failed:
        code_differs.append(f"resume: the function is {current.get('State')}, last update {current.get('LastUpdateStatus')}"
                            f" ({current.get('StateReason') or current.get('LastUpdateStatusReason') or 'no reason given'})")
    if code_differs:
        steps.append(step("update", "lambda function", name, code_differs, *before,
                          Call("lambda", "update_function_code", {"FunctionName": name, "ImageUri": target.image_uri,
                                                                  "Architectures": [target.arch]}), updated))
    if not _has_tags(target.tags, actual.get("Tags")):
        steps.append(step("update", "lambda function", name, ["tags"],
                          Call("lambda", "tag_resource", {"Resource": current["FunctionArn"], "Tags": target.tags})))
    return steps, current["FunctionArn"]


def _reserved_concurrency(remote: RemoteState, target: res.Target, notes: list[str]) -> int | None:
    """The Map's concurrency reserved for the fetcher, when the account can spare it: AWS keeps 100 unreserved."""
    settings = remote.read("lambda", "get_account_settings", missing=("404", "NotImplemented", "InvalidAction"))
    limit = (settings or {}).get("AccountLimit", {})
    if "UnreservedConcurrentExecutions" not in limit:
        notes.append("reserved concurrency not set: the account's Lambda quota could not be read")
        return None
    current = _actual_concurrency(remote, target) or 0
    spare = limit["UnreservedConcurrentExecutions"] + current - 100
    if spare < target.max_concurrency:
        notes.append(f"reserved concurrency not set: the account's quota ({limit.get('ConcurrentExecutions')}) leaves "
                     f"{max(spare, 0)} to reserve, and {target.max_concurrency} are needed; ask AWS to raise "
                     "'Concurrent executions' in Service Quotas")
        return None
    return target.max_concurrency


def _actual_concurrency(remote: RemoteState, target: res.Target) -> int | None:
    found = remote.read("lambda", "get_function_concurrency", missing=NOT_FOUND, FunctionName=target.names.fetcher_function)
    return (found or {}).get("ReservedConcurrentExecutions")


def _plan_concurrency(target: res.Target, actual: int | None) -> list[Step]:
    if target.reserved_concurrency is None or actual == target.reserved_concurrency:
        return []
    name = target.names.fetcher_function
    return [step("update", "lambda function", name, [f"reserved concurrency {target.reserved_concurrency} (the Map's)"],
                 Call("lambda", "put_function_concurrency",
                      {"FunctionName": name, "ReservedConcurrentExecutions": target.reserved_concurrency}))]


# ---------------------------------------------------------------- Step Functions


def _actual_state_machine(remote: RemoteState, target: res.Target) -> dict | None:
    arn = remote.state_machine_arn(target.names.state_machine)
    if arn is None:
        return None
    described = remote.read("stepfunctions", "describe_state_machine", stateMachineArn=arn)
    tags = remote.read("stepfunctions", "list_tags_for_resource", resourceArn=arn)
    return {**described, "tags": _pairs(tags.get("tags"), "key", "value")}


def _plan_state_machine(target: res.Target, role_arn: str, topic_arn: str, function_arns: dict[str, str],
                        actual: dict | None) -> tuple[list[Step], str]:
    from .assets import asl_text

    name = target.names.state_machine
    definition = res.state_machine_definition(asl_text(), target, topic_arn=topic_arn, function_arns=function_arns)
    settings = {"definition": json.dumps(definition), "roleArn": role_arn,
                "loggingConfiguration": res.state_machine_logging(target),
                "tracingConfiguration": {"enabled": target.tracing}}
    if actual is None:
        return [step("create", "state machine", name, ["from infra/asl.json", _map_shape(target), "logs ERROR",
                                                       f"X-Ray {'on' if target.tracing else 'off'}"],
                     Call("stepfunctions", "create_state_machine",
                          {"name": name, "type": "STANDARD", **settings, "tags": target.tag_list("key", "value")},
                          output=("state_machine", "stateMachineArn"), role_propagation=True))], var("state_machine")
    arn = actual["stateMachineArn"]
    differing = []
    if json.loads(actual["definition"]) != definition:
        differing.append(f"definition ({_map_shape(target)})")
    if actual["roleArn"] != role_arn:
        differing.append("role")
    if not same(settings["loggingConfiguration"], actual.get("loggingConfiguration") or {"level": "OFF"}):
        differing.append("logging")
    if not same(settings["tracingConfiguration"], actual.get("tracingConfiguration") or {"enabled": False}):
        differing.append("tracing")
    steps = []
    if differing:
        # update, never create again: create_state_machine on an existing name keeps the old definition in moto
        steps.append(step("update", "state machine", name, differing,
                          Call("stepfunctions", "update_state_machine", {"stateMachineArn": arn, **settings},
                               role_propagation=True)))
    if not _has_tags(target.tags, actual["tags"]):
        steps.append(step("update", "state machine", name, ["tags"], Call(
            "stepfunctions", "tag_resource", {"resourceArn": arn, "tags": target.tag_list("key", "value")})))
    return steps, arn


def _map_shape(target: res.Target) -> str:
    return f"at most {target.max_concurrency} batches at once, {target.workers} fetcher thread(s) each"


# ---------------------------------------------------------------- EventBridge


def _actual_schedule(remote: RemoteState, target: res.Target) -> dict | None:
    name = target.names.schedule_rule
    rule = remote.read("events", "describe_rule", missing=NOT_FOUND, Name=name)
    if rule is None:
        return None
    targets = remote.read("events", "list_targets_by_rule", Rule=name).get("Targets", [])
    tags = remote.read("events", "list_tags_for_resource", ResourceARN=rule["Arn"])
    return {**rule, "targets": targets, "tags": _pairs(tags.get("Tags"))}


def _plan_schedule(target: res.Target, role_arn: str, machine_arn: str, actual: dict | None) -> list[Step]:
    name = target.names.schedule_rule
    put_rule = Call("events", "put_rule", {"Name": name, "ScheduleExpression": target.schedule, "State": "ENABLED",
                                           "Description": "stockstream: start the daily pipeline", "Tags": target.tag_list()})
    wanted = {"Id": "stockstream-pipeline", "Arn": machine_arn, "RoleArn": role_arn, "Input": res.SCHEDULE_INPUT}
    put_targets = Call("events", "put_targets", {"Rule": name, "Targets": [wanted]}, role_propagation=True)
    if actual is None:
        return [step("create", "schedule rule", name, [target.schedule, f"starts {target.names.state_machine}"],
                     put_rule, put_targets)]
    steps = []
    if actual.get("ScheduleExpression") != target.schedule or actual.get("State") != "ENABLED":
        steps.append(step("update", "schedule rule", name,
                          [f"schedule {actual.get('ScheduleExpression')} -> {target.schedule}"], put_rule))
    if len(actual["targets"]) != 1 or not same(wanted, actual["targets"][0]):
        steps.append(step("update", "schedule rule", name, [f"target {target.names.state_machine}"], put_targets))
    if not _has_tags(target.tags, actual["tags"]):
        steps.append(step("update", "schedule rule", name, ["tags"],
                          Call("events", "tag_resource", {"ResourceARN": actual["Arn"], "Tags": target.tag_list()})))
    return steps


# ---------------------------------------------------------------- CloudWatch


def _actual_alarms(remote: RemoteState, target: res.Target) -> dict[str, dict]:
    names = [a["AlarmName"] for a in res.alarms(target)]
    found = remote.read("cloudwatch", "describe_alarms", AlarmNames=names).get("MetricAlarms", [])
    return {a["AlarmName"]: {**a, "tags": _pairs(remote.read("cloudwatch", "list_tags_for_resource",
                                                             ResourceARN=a["AlarmArn"]).get("Tags"))} for a in found}


def _plan_alarms(target: res.Target, topic_arn: str, actual: dict[str, dict]) -> list[Step]:
    steps = []
    for alarm in res.alarms(target, topic_arn):
        name = alarm["AlarmName"]
        found = actual.get(name)
        if found is None:
            steps.append(step("create", "cloudwatch alarm", name, [alarm["AlarmDescription"]],
                              Call("cloudwatch", "put_metric_alarm", {**alarm, "Tags": target.tag_list()})))
            continue
        if not same(alarm, found):
            steps.append(step("update", "cloudwatch alarm", name, ["settings"], Call("cloudwatch", "put_metric_alarm", alarm)))
        if not _has_tags(target.tags, found["tags"]):
            steps.append(step("update", "cloudwatch alarm", name, ["tags"], Call(
                "cloudwatch", "tag_resource", {"ResourceARN": found["AlarmArn"], "Tags": target.tag_list()})))
    return steps


def _actual_dashboard(remote: RemoteState, name: str) -> dict | None:
    found = remote.read("cloudwatch", "get_dashboard", missing=("ResourceNotFound", "ResourceNotFoundException"),
                        DashboardName=name)
    return json.loads(found["DashboardBody"]) if found else None


def _plan_dashboard(target: res.Target, actual: dict | None) -> list[Step]:
    body = res.dashboard_body(target)
    if actual == body:
        return []
    return [step("create" if actual is None else "update", "cloudwatch dashboard", target.names.dashboard,
                 ["executions, symbols, batches, duration and errors, S3 storage, cost per execution"],
                 Call("cloudwatch", "put_dashboard", {"DashboardName": target.names.dashboard,
                                                      "DashboardBody": json.dumps(body)}))]


# ---------------------------------------------------------------- Athena: the catalog, the workgroup, its results


def _actual_results_expiry(remote: RemoteState, target: res.Target) -> list[dict]:
    found = remote.read("s3", "get_bucket_lifecycle_configuration", missing=("NoSuchLifecycleConfiguration",),
                        Bucket=target.bucket, ExpectedBucketOwner=target.account)
    return (found or {}).get("Rules", [])


def _plan_results_expiry(target: res.Target, actual: list[dict] | None) -> list[Step]:
    """Athena's results expire: our rule beside whatever rules the bucket's owner has (a put replaces them all)."""
    ours = catalog.results_rule()
    others = [rule for rule in actual or [] if rule.get("ID") != catalog.RESULTS_RULE_ID]
    found = [rule for rule in actual or [] if rule.get("ID") == catalog.RESULTS_RULE_ID]
    if found and same(ours, found[0]):
        return []
    return [step("update" if found else "create", "s3 lifecycle rule", f"{target.bucket}/{catalog.RESULTS_PREFIX}",
                 [f"Athena's query results expire after {catalog.RESULTS_KEPT_DAYS} days"],
                 Call("s3", "put_bucket_lifecycle_configuration", {
                     "Bucket": target.bucket, "LifecycleConfiguration": {"Rules": others + [ours]},
                     "ExpectedBucketOwner": target.account}))]


def _database_arn(target: res.Target) -> str:
    return target.arn("glue", f"database/{target.names.database}")


def _actual_database(remote: RemoteState, target: res.Target) -> dict | None:
    found = remote.read("glue", "get_database", missing=("EntityNotFoundException",), Name=target.names.database)
    if found is None:
        return None
    tags = remote.read("glue", "get_tags", ResourceArn=_database_arn(target))
    return {**found["Database"], "tags": tags.get("Tags", {})}


def _plan_database(target: res.Target, actual: dict | None) -> list[Step]:
    name = target.names.database
    if actual is None:
        return [step("create", "glue database", name, ["the dataset's tables and views for Athena"],
                     Call("glue", "create_database", {"DatabaseInput": catalog.database_input(name, target.stage),
                                                      "Tags": target.tags}))]
    if not _has_tags(target.tags, actual["tags"]):
        return [step("update", "glue database", name, ["tags"],
                     Call("glue", "tag_resource", {"ResourceArn": _database_arn(target), "TagsToAdd": target.tags}))]
    return []


def _actual_tables(remote: RemoteState, target: res.Target) -> dict[str, dict]:
    found = {}
    for name in catalog.TABLES:
        table = remote.read("glue", "get_table", missing=("EntityNotFoundException",),
                            DatabaseName=target.names.database, Name=name)
        if table is not None:
            found[name] = table["Table"]
    return found


def _without_empty(value: Any) -> Any:
    """`value` without its empty dicts (Glue may leave out an empty SerdeInfo when it answers)."""
    if isinstance(value, dict):
        return {k: _without_empty(v) for k, v in value.items() if v != {}}
    return value


def _table_details(table: dict) -> list[str]:
    if table["TableType"] == "VIRTUAL_VIEW":
        return [f"view: {table['Description'].removeprefix('stockstream: ')}"]
    return [f"Parquet under {table['StorageDescriptor']['Location']}", table["Description"].removeprefix("stockstream: ")]


def _plan_tables(target: res.Target, actual: dict[str, dict]) -> list[Step]:
    database, steps = target.names.database, []
    for table in catalog.table_inputs(database, target.bucket):
        found, name = actual.get(table["Name"]), f"{database}.{table['Name']}"
        if found is None:
            steps.append(step("create", "glue table", name, _table_details(table),
                              Call("glue", "create_table", {"DatabaseName": database, "TableInput": table})))
        elif not same(_without_empty(table), found):
            steps.append(step("update", "glue table", name, _table_details(table),
                              Call("glue", "update_table", {"DatabaseName": database, "TableInput": table})))
    return steps


def _workgroup_arn(target: res.Target) -> str:
    return target.arn("athena", f"workgroup/{target.names.workgroup}")


def _actual_workgroup(remote: RemoteState, target: res.Target) -> dict | None:
    # Athena answers InvalidRequestException "WorkGroup ... is not found" (moto: a null WorkGroup)
    found = remote.read("athena", "get_work_group", missing=("InvalidRequestException",), WorkGroup=target.names.workgroup)
    if not (found or {}).get("WorkGroup"):
        return None
    tags = remote.read("athena", "list_tags_for_resource", ResourceARN=_workgroup_arn(target))
    return {**found["WorkGroup"], "tags": _pairs(tags.get("Tags"))}


def _plan_workgroup(target: res.Target, actual: dict | None) -> list[Step]:
    name = target.names.workgroup
    configuration = catalog.workgroup_configuration(target.bucket, name)
    details = [f"query results to {catalog.results_location(target.bucket, name)}", catalog.ENGINE_VERSION]
    if actual is None:
        return [step("create", "athena workgroup", name, details,
                     Call("athena", "create_work_group", {
                         "Name": name, "Description": f"stockstream: queries of {target.names.database}",
                         "Configuration": configuration, "Tags": target.tag_list()}))]
    steps = []
    if not same(configuration, actual.get("Configuration")):
        steps.append(step("update", "athena workgroup", name, details,
                          Call("athena", "update_work_group", {
                              "WorkGroup": name, "ConfigurationUpdates": catalog.workgroup_updates(configuration)})))
    if not _has_tags(target.tags, actual["tags"]):
        steps.append(step("update", "athena workgroup", name, ["tags"], Call(
            "athena", "tag_resource", {"ResourceARN": _workgroup_arn(target), "Tags": target.tag_list()})))
    return steps


def _plan_remove_catalog(remote: RemoteState, target: res.Target) -> list[Step]:
    """The workgroup, the views, the tables, the database (deploy made them last): never a file in the bucket."""
    steps = []
    workgroup = target.names.workgroup
    if _actual_workgroup(remote, target) is not None:
        steps.append(step("delete", "athena workgroup", workgroup,
                          ["and its query history (results in the bucket expire by its lifecycle rule)"],
                          Call("athena", "delete_work_group", {"WorkGroup": workgroup, "RecursiveDeleteOption": True})))
    database = target.names.database
    if _actual_database(remote, target) is None:
        return steps
    tables = _actual_tables(remote, target)
    for name in reversed(catalog.TABLES):
        if name in tables:
            steps.append(step("delete", "glue table", f"{database}.{name}", ["the definition only: the files stay"],
                              Call("glue", "delete_table", {"DatabaseName": database, "Name": name},
                                   absent_ok=("EntityNotFoundException",))))
    steps.append(step("delete", "glue database", database, [],
                      Call("glue", "delete_database", {"Name": database}, absent_ok=("EntityNotFoundException",))))
    return steps


# ================================================================ destroy


def plan_destroy(target: res.Target, remote: RemoteState) -> Plan:
    """Removals of what exists of this stage's stack, the reverse of deploy's order; never the bucket."""
    steps: list[Step] = _plan_remove_catalog(remote, target)
    names = target.names
    schedule = _actual_schedule(remote, target)
    if schedule is not None:
        ids = [t["Id"] for t in schedule["targets"]]
        steps.append(step("delete", "schedule rule", names.schedule_rule, ["and its target"],
                          *([Call("events", "remove_targets", {"Rule": names.schedule_rule, "Ids": ids})] if ids else []),
                          Call("events", "delete_rule", {"Name": names.schedule_rule}, absent_ok=NOT_FOUND)))
    machine = remote.state_machine_arn(names.state_machine)
    if machine is not None:
        steps.append(step("delete", "state machine", names.state_machine, [],
                          Call("stepfunctions", "delete_state_machine", {"stateMachineArn": machine})))
    for name in names.functions:
        if remote.function(name) is not None:
            steps.append(step("delete", "lambda function", name, [],
                              Call("lambda", "delete_function", {"FunctionName": name}, absent_ok=NOT_FOUND)))
    alarms = sorted(_actual_alarms(remote, target))
    if alarms:
        steps.append(step("delete", "cloudwatch alarm", ", ".join(alarms), [],
                          Call("cloudwatch", "delete_alarms", {"AlarmNames": alarms})))
    dashboards = [names.dashboard] if _actual_dashboard(remote, names.dashboard) is not None else []
    if target.stage is None:
        legacy = _actual_dashboard(remote, res.LEGACY_DASHBOARD)
        if legacy is not None and f'"region": "{target.region}"' in json.dumps(legacy):
            dashboards.append(res.LEGACY_DASHBOARD)
    for name in dashboards:
        steps.append(step("delete", "cloudwatch dashboard", name, [],
                          Call("cloudwatch", "delete_dashboards", {"DashboardNames": [name]})))
    if _actual_topic(remote, target) is not None:
        steps.append(step("delete", "sns topic", names.topic, ["and its subscriptions"],
                          Call("sns", "delete_topic", {"TopicArn": target.topic_arn})))
    for spec in res.roles(target):
        steps += _plan_remove_role(remote, spec.name)
    if target.stage is None:
        for name in res.LEGACY_ROLES:
            steps += _plan_remove_role(remote, name, only_if_mentions=f":{target.region}:{target.account}:")
    for name in _actual_log_groups(remote, target):
        steps.append(step("delete", "log group", name, ["and the logs in it"],
                          Call("logs", "delete_log_group", {"logGroupName": name}, absent_ok=NOT_FOUND)))
    repository = names.ecr_repository
    if remote.read("ecr", "describe_repositories", missing=("RepositoryNotFoundException",), repositoryNames=[repository]):
        steps.append(step("delete", "ecr repository", repository, ["and the Lambda images in it"],
                          Call("ecr", "delete_repository", {"repositoryName": repository, "force": True})))
    return Plan(target, steps)


def _plan_remove_role(remote: RemoteState, name: str, only_if_mentions: str | None = None) -> list[Step]:
    if remote.role(name) is None:
        return []
    inline = remote.read("iam", "list_role_policies", RoleName=name).get("PolicyNames", [])
    if only_if_mentions is not None:  # a role named before stages: ours only if its policy names this region
        documents = [remote.read("iam", "get_role_policy", RoleName=name, PolicyName=p)["PolicyDocument"] for p in inline]
        if not any(only_if_mentions in json.dumps(_document(d)) for d in documents):
            return []
    attached = remote.read("iam", "list_attached_role_policies", RoleName=name).get("AttachedPolicies", [])
    return [step("delete", "iam role", name, ["and its inline policy"],
                 *[Call("iam", "delete_role_policy", {"RoleName": name, "PolicyName": p}) for p in inline],
                 *[Call("iam", "detach_role_policy", {"RoleName": name, "PolicyArn": a["PolicyArn"]}) for a in attached],
                 Call("iam", "delete_role", {"RoleName": name}, absent_ok=("NoSuchEntity",)))]


def deployed_bucket(remote: RemoteState, target: res.Target) -> str | None:
    """The bucket the deployed functions write to (their STOCKSTREAM_STORE), if they exist."""
    for name in target.names.functions:
        found = remote.function(name)
        store = ((found or {}).get("Configuration", {}).get("Environment", {}).get("Variables", {})
                 .get(STORE_ENV, ""))
        if store.startswith("s3://"):
            return store[len("s3://"):].split("/", 1)[0]
    return None
