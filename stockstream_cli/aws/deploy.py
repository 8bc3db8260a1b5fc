"""`stockstream deploy` and `destroy` as plan -> apply.

`plan()` works out the desired state (resources.py), reads what exists (only Get/Describe/List/Head calls),
and returns the differences as a list of `Change` values: data that `--dry-run` and `--json` print. `apply()`
runs them in order. A second deploy with nothing changed finds no differences and makes no mutating call;
every call is counted (a botocore event hook), and the count is part of the result, so that is checkable.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from ..errors import AwsError, InputError
from . import resources as res
from .assets import find_sources
from .image import NO_IMAGE_HELP, build_and_push, check_arch, content_tag, context_files, find_engine

READ_ONLY_PREFIXES = ("Get", "Describe", "List", "Head")
ROLE_PROPAGATION_TRIES = 12
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SCHEDULE_RE = re.compile(r"^(cron|rate)\(.+\)$")
_IMAGE_RE = re.compile(r"^[\w.-]+(:\d+)?/[\w./-]+(:[\w.-]+|@sha256:[0-9a-f]{64})$")


@dataclasses.dataclass
class Change:
    action: str  # create | update | delete
    resource: str  # e.g. "lambda function"
    name: str
    details: list[str]
    run: Callable[[], None] = dataclasses.field(repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "resource": self.resource, "name": self.name, "details": self.details}


@dataclasses.dataclass
class DeployOptions:
    region: str | None = None
    profile: str | None = None
    bucket: str | None = None
    image_uri: str | None = None
    alert_email: str | None = None
    schedule: str = res.DEFAULT_SCHEDULE
    arch: str = "arm64"

    def check(self) -> None:
        if self.bucket is not None and not _BUCKET_RE.match(self.bucket):
            raise InputError(f"--bucket {self.bucket!r} is not a valid S3 bucket name (3-63 of a-z 0-9 . -)")
        if self.alert_email is not None and not _EMAIL_RE.match(self.alert_email):
            raise InputError(f"--alert-email {self.alert_email!r} is not an email address")
        if not _SCHEDULE_RE.match(self.schedule or ""):
            raise InputError(f"--schedule {self.schedule!r}: use an EventBridge expression, e.g. 'cron(0 20 * * ? *)' or 'rate(1 day)'")
        if self.image_uri is not None and not _IMAGE_RE.match(self.image_uri):
            raise InputError(f"--image-uri {self.image_uri!r}: use REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@sha256:DIGEST")
        check_arch(self.arch)


class CallLog:
    """Every AWS operation a deployment's clients make, by name; the mutating ones are all but reads."""

    def __init__(self) -> None:
        self.operations: list[str] = []

    def __call__(self, model=None, **_: Any) -> None:
        if model is not None:
            self.operations.append(f"{model.service_model.service_name}:{model.name}")

    @property
    def mutating(self) -> list[str]:
        return [op for op in self.operations if not op.split(":", 1)[1].startswith(READ_ONLY_PREFIXES)]


def aws_session(profile: str | None, region: str | None):
    """A boto3 session with a region (from --region, the profile or the environment), counting its calls."""
    from .session import boto3_session

    session = boto3_session(profile=profile, region=region)
    if not session.region_name:
        raise InputError(
            "no AWS region: pass --region (e.g. --region ap-southeast-2), set AWS_REGION, or set region in your AWS profile"
        )
    calls = CallLog()
    session.events.register("before-call", calls)
    session.stockstream_calls = calls
    return session


def _code(exc: Exception) -> str:
    return str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code", ""))


def _aws_error(exc: Exception, what: str) -> AwsError:
    message = (getattr(exc, "response", None) or {}).get("Error", {}).get("Message") or str(exc)
    return AwsError(f"{what}: {_code(exc) or type(exc).__name__}: {message}")


def _as_dict(document: Any) -> Any:
    if isinstance(document, str):
        return json.loads(urllib.parse.unquote(document))
    return document


def _same(desired: Any, actual: Any) -> bool:
    """Whether `actual` has everything `desired` says (numbers compared as numbers, lists in order)."""
    if isinstance(desired, dict):
        return isinstance(actual, dict) and all(_same(v, actual.get(k)) for k, v in desired.items())
    if isinstance(desired, list):
        return isinstance(actual, list) and len(desired) == len(actual) and all(map(_same, desired, actual))
    if isinstance(desired, (int, float)) and not isinstance(desired, bool) and isinstance(actual, (int, float)):
        return float(desired) == float(actual)
    return desired == actual


class Deployment:
    """One account and region: reads the actual state, plans the changes, applies them."""

    def __init__(self, session, target: res.Target, *, sleep: Callable[[float], None] = time.sleep,
                 waiter_delay: int = 5, engine: str | None = None, image_files: dict[str, bytes] | None = None):
        self.session = session
        self.target = target
        self.sleep = sleep
        self.waiter_delay = waiter_delay
        self.engine = engine
        self.image_files = image_files
        self._clients: dict[str, Any] = {}
        self.new_roles: set[str] = set()

    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = self.session.client(service)
        return self._clients[service]

    # ------------------------------------------------------------ plan

    def plan(self) -> list[Change]:
        changes: list[Change] = []
        for planner in (
            self.plan_image,
            self.plan_bucket,
            self.plan_topic,
            self.plan_roles,
            self.plan_functions,
            self.plan_state_machine,
            self.plan_schedule,
            self.plan_alarms,
            self.plan_dashboard,
        ):
            changes.extend(planner())
        return changes

    def apply(self, changes: list[Change], on_change: Callable[[Change], None] | None = None) -> None:
        for change in changes:
            if on_change:
                on_change(change)
            try:
                change.run()
            except AwsError:
                raise
            except Exception as exc:
                if not hasattr(exc, "response"):
                    raise
                raise _aws_error(exc, f"{change.action} {change.resource} {change.name}") from None

    # ------------------------------------------------------------ the image

    def plan_image(self) -> list[Change]:
        if self.engine is None:
            return []
        ecr = self.client("ecr")
        repository, tag = self.target.image_uri.rsplit("/", 1)[1].split(":", 1)
        changes = []
        try:
            ecr.describe_repositories(repositoryNames=[repository])
            found = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])["imageDetails"]
        except Exception as exc:
            if _code(exc) == "RepositoryNotFoundException":
                changes.append(Change("create", "ecr repository", repository, ["scan on push, tags immutable"],
                                      lambda: ecr.create_repository(
                                          repositoryName=repository, imageTagMutability="IMMUTABLE",
                                          imageScanningConfiguration={"scanOnPush": True}, tags=res.tag_list())))
                found = []
            elif _code(exc) == "ImageNotFoundException":
                found = []
            else:
                raise _aws_error(exc, f"reading ECR repository {repository}") from None
        if not found:
            changes.append(Change("create", "lambda image", self.target.image_uri,
                                  [f"build infra/Dockerfile for {self.target.arch} with {self.engine} and push"],
                                  lambda: build_and_push(self.engine, self.image_files, self.target.image_uri,
                                                         self.target.arch, ecr)))
        return changes

    # ------------------------------------------------------------ the bucket

    def plan_bucket(self) -> list[Change]:
        s3 = self.client("s3")
        bucket = self.target.bucket
        try:
            s3.head_bucket(Bucket=bucket)
        except Exception as exc:
            if _code(exc) in {"404", "NoSuchBucket", "NotFound"}:
                return [Change("create", "s3 bucket", bucket,
                               ["block all public access", "default encryption (SSE-S3)", "deny non-TLS requests",
                                "tag app=stockstream"], self._create_bucket)]
            if _code(exc) in {"403", "AccessDenied"}:
                raise AwsError(f"bucket {bucket} exists but is not yours (or not readable): choose another --bucket") from None
            raise _aws_error(exc, f"reading bucket {bucket}") from None
        changes = []
        block = self._read(lambda: s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"],
                           "NoSuchPublicAccessBlockConfiguration")
        if not _same(res.PUBLIC_ACCESS_BLOCK, block):
            changes.append(Change("update", "s3 bucket", bucket, ["block all public access"], self._put_public_access_block))
        encryption = self._read(lambda: s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"],
                                "ServerSideEncryptionConfigurationNotFoundError")
        if not encryption or not encryption.get("Rules"):  # any default encryption the owner chose (KMS too) is kept
            changes.append(Change("update", "s3 bucket", bucket, ["default encryption (SSE-S3)"], self._put_encryption))
        policy = self._read(lambda: json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]), "NoSuchBucketPolicy")
        wanted = self._bucket_policy(policy)
        if policy != wanted:
            changes.append(Change("update", "s3 bucket", bucket, ["deny non-TLS requests (bucket policy)"],
                                  lambda: s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(wanted))))
        tags = self._read(lambda: s3.get_bucket_tagging(Bucket=bucket)["TagSet"], "NoSuchTagSet") or []
        if not self._has_app_tag({t["Key"]: t["Value"] for t in tags}):
            merged = {t["Key"]: t["Value"] for t in tags} | res.APP_TAG
            changes.append(Change("update", "s3 bucket", bucket, ["tag app=stockstream"], lambda: s3.put_bucket_tagging(
                Bucket=bucket, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in merged.items()]})))
        return changes

    def _bucket_policy(self, existing: dict | None) -> dict:
        """Ours added to whatever statements the bucket's owner already has."""
        ours = res.bucket_policy(self.target)
        if not existing:
            return ours
        sid = ours["Statement"][0]["Sid"]
        others = [s for s in existing.get("Statement", []) if s.get("Sid") != sid]
        return {**existing, "Statement": others + ours["Statement"]}

    def _create_bucket(self) -> None:
        s3 = self.client("s3")
        kwargs: dict[str, Any] = {"Bucket": self.target.bucket}
        if self.target.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.target.region}
        s3.create_bucket(**kwargs)
        self._put_public_access_block()
        self._put_encryption()
        s3.put_bucket_policy(Bucket=self.target.bucket, Policy=json.dumps(res.bucket_policy(self.target)))
        s3.put_bucket_tagging(Bucket=self.target.bucket, Tagging={"TagSet": res.tag_list()})

    def _put_public_access_block(self) -> None:
        self.client("s3").put_public_access_block(Bucket=self.target.bucket,
                                                  PublicAccessBlockConfiguration=res.PUBLIC_ACCESS_BLOCK)

    def _put_encryption(self) -> None:
        self.client("s3").put_bucket_encryption(Bucket=self.target.bucket,
                                                ServerSideEncryptionConfiguration=res.ENCRYPTION)

    # ------------------------------------------------------------ the alert topic

    def plan_topic(self) -> list[Change]:
        sns = self.client("sns")
        arn = self.target.topic_arn
        exists = self._read(lambda: sns.get_topic_attributes(TopicArn=arn), "NotFound", "NotFoundException")
        changes = []
        if not exists:
            changes.append(Change("create", "sns topic", res.TOPIC, ["alerts for failed runs and alarms"],
                                  lambda: sns.create_topic(Name=res.TOPIC, Tags=res.tag_list())))
        else:
            tags = {t["Key"]: t["Value"] for t in sns.list_tags_for_resource(ResourceArn=arn).get("Tags", [])}
            if not self._has_app_tag(tags):
                changes.append(Change("update", "sns topic", res.TOPIC, ["tag app=stockstream"],
                                      lambda: sns.tag_resource(ResourceArn=arn, Tags=res.tag_list())))
        email = self.target.alert_email
        if email:
            subscribed = exists and any(
                s["Protocol"] == "email" and s["Endpoint"].lower() == email.lower()
                for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=arn)
                for s in page.get("Subscriptions", [])
            )
            if not subscribed:
                changes.append(Change("create", "sns subscription", email, ["email alerts (confirm the email AWS sends)"],
                                      lambda: sns.subscribe(TopicArn=arn, Protocol="email", Endpoint=email)))
        return changes

    # ------------------------------------------------------------ IAM

    def plan_roles(self) -> list[Change]:
        return [change for spec in res.roles(self.target) for change in self._plan_role(spec)]

    def _plan_role(self, spec: res.RoleSpec) -> list[Change]:
        iam = self.client("iam")
        trust = res.trust_policy(spec.service)
        role = self._read(lambda: iam.get_role(RoleName=spec.name)["Role"], "NoSuchEntity")
        if role is None:
            def create() -> None:
                iam.create_role(RoleName=spec.name, AssumeRolePolicyDocument=json.dumps(trust),
                                Description=spec.description, Tags=res.tag_list())
                iam.put_role_policy(RoleName=spec.name, PolicyName=res.ROLE_POLICY, PolicyDocument=json.dumps(spec.policy))
                self.new_roles.add(spec.name)

            return [Change("create", "iam role", spec.name, [f"assumed by {spec.service}", "least-privilege inline policy"], create)]
        changes = []
        if _as_dict(role["AssumeRolePolicyDocument"]) != trust:
            changes.append(Change("update", "iam role", spec.name, ["trust policy"], lambda: iam.update_assume_role_policy(
                RoleName=spec.name, PolicyDocument=json.dumps(trust))))
        policy = self._read(lambda: iam.get_role_policy(RoleName=spec.name, PolicyName=res.ROLE_POLICY)["PolicyDocument"],
                            "NoSuchEntity")
        if policy is None or _as_dict(policy) != spec.policy:
            changes.append(Change("update", "iam role", spec.name, ["inline policy"], lambda: iam.put_role_policy(
                RoleName=spec.name, PolicyName=res.ROLE_POLICY, PolicyDocument=json.dumps(spec.policy))))
        tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=spec.name).get("Tags", [])}
        if not self._has_app_tag(tags):
            changes.append(Change("update", "iam role", spec.name, ["tag app=stockstream"],
                                  lambda: iam.tag_role(RoleName=spec.name, Tags=res.tag_list())))
        return changes

    def _while_role_propagates(self, call: Callable[[], Any], codes: set[str]) -> Any:
        """A role IAM just created is not usable everywhere at once; AWS says so with these errors."""
        wait = 2.0
        for attempt in range(ROLE_PROPAGATION_TRIES):
            try:
                return call()
            except Exception as exc:
                if _code(exc) not in codes or attempt == ROLE_PROPAGATION_TRIES - 1:
                    raise
                self.sleep(wait)
                wait = min(wait * 1.5, 10.0)

    # ------------------------------------------------------------ Lambda

    def plan_functions(self) -> list[Change]:
        return [change for spec in res.FUNCTIONS for change in self._plan_function(spec)]

    def _plan_function(self, spec: res.FunctionSpec) -> list[Change]:
        lam = self.client("lambda")
        config = res.function_configuration(self.target, spec)
        current = self._read(lambda: lam.get_function(FunctionName=spec.name), "ResourceNotFoundException")
        if current is None:
            def create() -> None:
                self._while_role_propagates(lambda: lam.create_function(
                    FunctionName=spec.name, PackageType="Image", Code={"ImageUri": self.target.image_uri},
                    Architectures=[self.target.arch], Tags=res.APP_TAG, Publish=False, **config),
                    {"InvalidParameterValueException"})
                self._wait(lam, "function_active_v2", spec.name)

            return [Change("create", "lambda function", spec.name,
                           [f"{spec.memory_mb} MB, {spec.timeout_s // 60} min, {spec.handler}", self.target.image_uri], create)]
        actual = current["Configuration"]
        actual_config = {**actual, "ImageConfig": actual.get("ImageConfigResponse", {}).get("ImageConfig", {})}
        differing = [key for key, value in config.items() if not _same(value, actual_config.get(key))]
        changes = []
        if differing:
            def update_configuration() -> None:
                self._wait(lam, "function_updated_v2", spec.name)
                self._while_role_propagates(lambda: lam.update_function_configuration(FunctionName=spec.name, **config),
                                            {"InvalidParameterValueException"})
                self._wait(lam, "function_updated_v2", spec.name)

            changes.append(Change("update", "lambda function", spec.name, [f"configuration: {', '.join(differing)}"],
                                  update_configuration))
        code_differs = []
        if current.get("Code", {}).get("ImageUri") != self.target.image_uri:
            code_differs.append(f"image {self.target.image_uri}")
        if actual.get("Architectures", ["x86_64"]) != [self.target.arch]:
            code_differs.append(f"architecture {self.target.arch}")
        if code_differs:
            def update_code() -> None:
                self._wait(lam, "function_updated_v2", spec.name)
                lam.update_function_code(FunctionName=spec.name, ImageUri=self.target.image_uri,
                                         Architectures=[self.target.arch])
                self._wait(lam, "function_updated_v2", spec.name)

            changes.append(Change("update", "lambda function", spec.name, code_differs, update_code))
        if not self._has_app_tag(current.get("Tags") or {}):
            changes.append(Change("update", "lambda function", spec.name, ["tag app=stockstream"],
                                  lambda: lam.tag_resource(Resource=self.target.function_arn(spec.name), Tags=res.APP_TAG)))
        return changes

    def _wait(self, client, waiter_name: str, function_name: str) -> None:
        waiter = client.get_waiter(waiter_name)
        try:
            waiter.wait(FunctionName=function_name, WaiterConfig={"Delay": self.waiter_delay, "MaxAttempts": 120})
        except Exception as exc:
            raise AwsError(f"Lambda function {function_name} did not become ready: {exc}") from None

    # ------------------------------------------------------------ Step Functions

    def plan_state_machine(self) -> list[Change]:
        sfn = self.client("stepfunctions")
        definition = res.state_machine_definition(find_sources().asl_path.read_text(encoding="utf-8"), self.target)
        role = self.target.role_arn(res.STATES_ROLE)
        arn = find_state_machine(sfn, res.STATE_MACHINE)
        propagation = {"AccessDeniedException", "InvalidParameterValueException"}
        if arn is None:
            return [Change("create", "state machine", res.STATE_MACHINE, ["from infra/asl.json"],
                           lambda: self._while_role_propagates(lambda: sfn.create_state_machine(
                               name=res.STATE_MACHINE, definition=json.dumps(definition), roleArn=role, type="STANDARD",
                               tags=res.tag_list("key", "value")), propagation))]
        described = sfn.describe_state_machine(stateMachineArn=arn)
        changes = []
        differing = []
        if json.loads(described["definition"]) != definition:
            differing.append("definition")
        if described["roleArn"] != role:
            differing.append("role")
        if differing:
            # update, never create again: create_state_machine on an existing name keeps the old definition in moto
            changes.append(Change("update", "state machine", res.STATE_MACHINE, differing,
                                  lambda: self._while_role_propagates(lambda: sfn.update_state_machine(
                                      stateMachineArn=arn, definition=json.dumps(definition), roleArn=role), propagation)))
        tags = {t["key"]: t["value"] for t in sfn.list_tags_for_resource(resourceArn=arn).get("tags", [])}
        if not self._has_app_tag(tags):
            changes.append(Change("update", "state machine", res.STATE_MACHINE, ["tag app=stockstream"],
                                  lambda: sfn.tag_resource(resourceArn=arn, tags=res.tag_list("key", "value"))))
        return changes

    # ------------------------------------------------------------ EventBridge

    def plan_schedule(self) -> list[Change]:
        events = self.client("events")
        rule = self._read(lambda: events.describe_rule(Name=res.SCHEDULE_RULE), "ResourceNotFoundException")
        target = {"Id": "stockstream-pipeline", "Arn": self.target.state_machine_arn,
                  "RoleArn": self.target.role_arn(res.SCHEDULE_ROLE), "Input": res.SCHEDULE_INPUT}
        put_rule = lambda: events.put_rule(  # noqa: E731
            Name=res.SCHEDULE_RULE, ScheduleExpression=self.target.schedule, State="ENABLED",
            Description="stockstream: start the daily pipeline", Tags=res.tag_list())
        put_targets = lambda: events.put_targets(Rule=res.SCHEDULE_RULE, Targets=[target])  # noqa: E731
        if rule is None:
            return [Change("create", "schedule rule", res.SCHEDULE_RULE, [self.target.schedule, f"starts {res.STATE_MACHINE}"],
                           lambda: (put_rule(), put_targets()))]
        changes = []
        if rule.get("ScheduleExpression") != self.target.schedule or rule.get("State") != "ENABLED":
            changes.append(Change("update", "schedule rule", res.SCHEDULE_RULE,
                                  [f"schedule {rule.get('ScheduleExpression')} -> {self.target.schedule}"], put_rule))
        targets = events.list_targets_by_rule(Rule=res.SCHEDULE_RULE).get("Targets", [])
        if len(targets) != 1 or not _same(target, targets[0]):
            changes.append(Change("update", "schedule rule", res.SCHEDULE_RULE, [f"target {res.STATE_MACHINE}"], put_targets))
        tags = {t["Key"]: t["Value"] for t in events.list_tags_for_resource(ResourceARN=rule["Arn"]).get("Tags", [])}
        if not self._has_app_tag(tags):
            changes.append(Change("update", "schedule rule", res.SCHEDULE_RULE, ["tag app=stockstream"],
                                  lambda: events.tag_resource(ResourceARN=rule["Arn"], Tags=res.tag_list())))
        return changes

    # ------------------------------------------------------------ CloudWatch

    def plan_alarms(self) -> list[Change]:
        cloudwatch = self.client("cloudwatch")
        wanted = res.alarms(self.target)
        found = {a["AlarmName"]: a for a in cloudwatch.describe_alarms(
            AlarmNames=[a["AlarmName"] for a in wanted]).get("MetricAlarms", [])}
        changes = []
        for alarm in wanted:
            name = alarm["AlarmName"]
            actual = found.get(name)
            if actual is None:
                changes.append(Change("create", "cloudwatch alarm", name, [alarm["AlarmDescription"]],
                                      lambda alarm=alarm: cloudwatch.put_metric_alarm(**alarm, Tags=res.tag_list())))
                continue
            if not _same(alarm, actual):
                changes.append(Change("update", "cloudwatch alarm", name, ["settings"],
                                      lambda alarm=alarm: cloudwatch.put_metric_alarm(**alarm)))
            tags = {t["Key"]: t["Value"] for t in cloudwatch.list_tags_for_resource(ResourceARN=actual["AlarmArn"]).get("Tags", [])}
            if not self._has_app_tag(tags):
                changes.append(Change("update", "cloudwatch alarm", name, ["tag app=stockstream"],
                                      lambda arn=actual["AlarmArn"]: cloudwatch.tag_resource(ResourceARN=arn, Tags=res.tag_list())))
        return changes

    def plan_dashboard(self) -> list[Change]:
        cloudwatch = self.client("cloudwatch")
        body = res.dashboard_body(self.target)
        current = self._read(lambda: cloudwatch.get_dashboard(DashboardName=res.DASHBOARD)["DashboardBody"],
                             "ResourceNotFound", "ResourceNotFoundException")
        if current is not None and json.loads(current) == body:
            return []
        return [Change("create" if current is None else "update", "cloudwatch dashboard", res.DASHBOARD,
                       ["executions, symbols, batches, duration, errors (dashboards cannot be tagged)"],
                       lambda: cloudwatch.put_dashboard(DashboardName=res.DASHBOARD, DashboardBody=json.dumps(body)))]

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _has_app_tag(tags: dict[str, str]) -> bool:
        return all(tags.get(key) == value for key, value in res.APP_TAG.items())

    @staticmethod
    def _read(call: Callable[[], Any], *missing_codes: str) -> Any:
        """The result of a read, or None when AWS says the thing is not there."""
        try:
            return call()
        except Exception as exc:
            if _code(exc) in missing_codes:
                return None
            if hasattr(exc, "response"):
                raise _aws_error(exc, "reading the deployment") from None
            raise


def find_state_machine(sfn, name: str) -> str | None:
    for page in sfn.get_paginator("list_state_machines").paginate():
        for machine in page.get("stateMachines", []):
            if machine["name"] == name:
                return machine["stateMachineArn"]
    return None


def caller_identity(session) -> tuple[str, str]:
    """The account and partition the credentials belong to."""
    import botocore.exceptions

    try:
        arn = session.client("sts").get_caller_identity()["Arn"]
    except (botocore.exceptions.NoCredentialsError, botocore.exceptions.PartialCredentialsError):
        raise InputError("no AWS credentials: pass --profile, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") from None
    except botocore.exceptions.ClientError as exc:
        raise _aws_error(exc, "checking the AWS credentials") from None
    except botocore.exceptions.EndpointConnectionError as exc:
        raise AwsError(f"cannot reach AWS: {exc}") from None
    parts = arn.split(":")
    return parts[4], parts[1]


def prepare(options: DeployOptions, *, session=None, sleep: Callable[[float], None] = time.sleep,
            waiter_delay: int = 5, engine_finder: Callable[[], str | None] = find_engine,
            need_image: bool = True) -> Deployment:
    """Check the options, find the account and the image, and make a Deployment ready to plan."""
    options.check()
    session = session or aws_session(options.profile, options.region)
    engine = None
    files = None
    if need_image and options.image_uri is None:
        engine = engine_finder()
        if engine is None:
            raise InputError(NO_IMAGE_HELP)
    account, partition = caller_identity(session)
    region = session.region_name
    image_uri = options.image_uri or ""
    if need_image and not image_uri:
        files = context_files(find_sources())
        image_uri = f"{account}.dkr.ecr.{region}.amazonaws.com/{res.ECR_REPOSITORY}:{content_tag(files, options.arch)}"
    target = res.Target(
        account=account,
        region=region,
        partition=partition,
        bucket=options.bucket or res.default_bucket(account, region),
        image_uri=image_uri,
        arch=options.arch,
        schedule=options.schedule,
        alert_email=options.alert_email,
    )
    return Deployment(session, target, sleep=sleep, waiter_delay=waiter_delay, engine=engine, image_files=files)


def deploy(options: DeployOptions, *, dry_run: bool = False, session=None, sleep: Callable[[float], None] = time.sleep,
           waiter_delay: int = 5, on_change: Callable[[Change], None] | None = None,
           engine_finder: Callable[[], str | None] = find_engine) -> dict[str, Any]:
    """Plan, and unless dry_run apply; returns the deploy document (--json)."""
    deployment = prepare(options, session=session, sleep=sleep, waiter_delay=waiter_delay, engine_finder=engine_finder)
    changes = deployment.plan()
    if not dry_run:
        deployment.apply(changes, on_change)
    return deploy_document(deployment, changes, dry_run=dry_run)


def deploy_document(deployment: Deployment, changes: list[Change], *, dry_run: bool) -> dict[str, Any]:
    target = deployment.target
    calls = getattr(deployment.session, "stockstream_calls", None)
    return {
        "region": target.region,
        "account": target.account,
        "dry_run": dry_run,
        "changes": [change.as_dict() for change in changes],
        "applied": 0 if dry_run else len(changes),
        "mutating_calls": len(calls.mutating) if calls else None,
        "bucket": target.bucket,
        "store": target.store_uri,
        "image_uri": target.image_uri,
        "state_machine_arn": target.state_machine_arn,
        "topic_arn": target.topic_arn,
        "schedule": target.schedule,
    }
