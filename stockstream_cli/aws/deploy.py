"""`stockstream deploy` and `destroy`: options checked, the account found, a plan made, then executed.

The plan (planner.py) is data: `--dry-run` and `--json` print it, the executor (executor.py) runs it. Every
AWS call a command's session makes is counted (a botocore event hook) and the count of mutating ones is part of
the result, so "a second deploy changes nothing" and "a dry run changes nothing" are checkable.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from typing import Any

from ..errors import InputError, NoCredentials, named
from . import defaults
from . import resources as res
from .image import NoEngine, check_arch, find_engine
from .plan import Step
from .planner import Plan, plan_deploy
from .remote_state import READ_ONLY_PREFIXES, AbsentState, RemoteState

__all__ = ["READ_ONLY_PREFIXES", "DeployOptions", "deploy", "prepare"]

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SCHEDULE_RE = re.compile(r"^(cron|rate)\(.+\)$")
_IMAGE_RE = re.compile(r"^[\w.-]+(:\d+)?/[\w./-]+(:[\w.-]+|@sha256:[0-9a-f]{64})$")
_ENV_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*=")


@dataclasses.dataclass
class DeployOptions:
    region: str | None = None
    profile: str | None = None
    stage: str | None = None
    bucket: str | None = None
    image_uri: str | None = None
    alert_email: str | None = None
    schedule: str = defaults.DEFAULT_SCHEDULE
    arch: str | None = None  # None: the host's own architecture when deploy builds, else arm64
    log_retention_days: int = defaults.DEFAULT_LOG_RETENTION_DAYS
    tracing: bool = False
    env: tuple[str, ...] = ()  # KEY=VALUE
    max_concurrency: int = res.MAP_MAX_CONCURRENCY  # the Map's batches at once, and the fetcher's reserved concurrency
    workers: int = res.FETCHER_WORKERS  # the fetcher's threads per batch

    def check(self) -> None:
        res.check_stage(self.stage)
        for name, value in (("max_concurrency", self.max_concurrency), ("workers", self.workers)):
            if not isinstance(value, int) or value < 1:
                raise InputError(f"must be a whole number of at least 1, got {value!r}", parameter=name)
        if self.bucket is not None and not _BUCKET_RE.match(self.bucket):
            raise InputError(f"{self.bucket!r} is not a valid S3 bucket name (3-63 of a-z 0-9 . -)", parameter="bucket")
        if self.alert_email is not None and not _EMAIL_RE.match(self.alert_email):
            raise InputError(f"{self.alert_email!r} is not an email address", parameter="alert_email")
        if not _SCHEDULE_RE.match(self.schedule or ""):
            raise InputError(f"{self.schedule!r}: use an EventBridge expression, e.g. '{defaults.DEFAULT_SCHEDULE}' "
                             "or 'rate(1 day)'", parameter="schedule")
        if self.image_uri is not None and not _IMAGE_RE.match(self.image_uri):
            raise InputError(f"{self.image_uri!r}: use REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@sha256:DIGEST",
                             parameter="image_uri")
        if self.arch is not None:
            check_arch(self.arch)
        if self.log_retention_days not in res.LOG_RETENTION_DAYS:
            raise InputError(f"{self.log_retention_days}: CloudWatch Logs accepts "
                             f"{', '.join(map(str, res.LOG_RETENTION_DAYS))}", parameter="log_retention_days")
        for item in self.env:
            if not _ENV_RE.match(item):
                raise InputError(f"{item!r}: use KEY=VALUE (KEY: letters, digits, _)", parameter="env")
            if item.split("=", 1)[0] in res.OWNED_ENV:
                raise InputError(f"{item.split('=', 1)[0]}: deploy sets that one itself", parameter="env")

    @property
    def env_pairs(self) -> tuple[tuple[str, str], ...]:
        return tuple(tuple(item.split("=", 1)) for item in self.env)  # type: ignore[misc]


class CallLog:
    """Every AWS operation a session's clients make, by name; the mutating ones are all but reads."""

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
    from ..clients import boto3_session

    session = boto3_session(profile=profile, region=region)
    if not session.region_name:
        raise InputError(
            f"no AWS region: pass {named('region')} (e.g. {named('region')} ap-southeast-2), set AWS_REGION, "
            "or set region in your AWS profile"
        )
    calls = CallLog()
    session.events.register("before-call", calls)
    session.stockstream_calls = calls
    return session


def caller_identity(session) -> tuple[str, str]:
    """The account and partition the credentials belong to (NoCredentials when there are none)."""
    from .session import aws_errors

    with aws_errors("checking the AWS credentials"):
        arn = session.client("sts").get_caller_identity()["Arn"]
    parts = arn.split(":")
    return parts[4], parts[1]


PLACEHOLDER_ACCOUNT = "111122223333"  # AWS's own documentation placeholder
NO_ACCOUNT_STATE = (f"no AWS credentials: the plan is for a placeholder account ({PLACEHOLDER_ACCOUNT}) as if it "
                    "held nothing yet, since it could not read the account's state")


@dataclasses.dataclass
class Prepared:
    session: Any
    target: res.Target
    remote: RemoteState
    image_files: dict[str, bytes] | None  # the build context, when deploy builds the image
    profile: str | None = None
    account_state_read: bool = True  # False: no credentials, a placeholder account (a dry run only)


def prepare(options: DeployOptions, *, session=None, need_image: bool = True,
            without_credentials: bool = False) -> Prepared:
    """Check the options, find the account and the image's content tag (no engine needed), make a target.
    `without_credentials`: with none, plan for a placeholder account read as empty (a dry run's plan)."""
    from .assets import find_sources
    from .image import content_tag, context_files, host_arch

    options.check()
    session = session or aws_session(options.profile, options.region)
    try:
        account, partition = caller_identity(session)
        remote, state_read = RemoteState(session), True
    except NoCredentials:
        if not without_credentials:
            raise
        (account, partition), remote, state_read = (PLACEHOLDER_ACCOUNT, "aws"), AbsentState(session), False
    region = session.region_name
    builds = need_image and options.image_uri is None
    arch = options.arch or (host_arch() if builds else defaults.DEFAULT_ARCH)
    image_uri, files = options.image_uri or "", None
    if builds:
        files = context_files(find_sources())
        suffix = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
        image_uri = (f"{account}.dkr.ecr.{region}.{suffix}/{res.Names(options.stage, region).ecr_repository}:"
                     f"{content_tag(files, arch)}")
    target = res.Target(
        account=account, region=region, partition=partition, stage=options.stage,
        bucket=options.bucket or res.default_bucket(account, region, options.stage),
        image_uri=image_uri, arch=arch, schedule=options.schedule, alert_email=options.alert_email,
        log_retention_days=options.log_retention_days, tracing=options.tracing, env=options.env_pairs,
        max_concurrency=options.max_concurrency, workers=options.workers,
    )
    return Prepared(session, target, remote, files, options.profile, state_read)


def deploy(options: DeployOptions, *, dry_run: bool = False, session=None, sleep: Callable[[float], None] = time.sleep,
           waiter_delay: int = 5, on_step: Callable[[Step], None] | None = None,
           engine_finder: Callable[[], str | None] = find_engine) -> dict[str, Any]:
    """Plan, and unless dry_run execute; returns the deploy document (--json)."""
    from .executor import Executor
    from .image import build_command, image_builder

    prepared = prepare(options, session=session, without_credentials=dry_run)
    plan = plan_deploy(prepared.target, prepared.remote, build_image=prepared.image_files is not None)
    if not dry_run:
        builder = None
        if plan.builds_image:
            engine = engine_finder()
            if engine is None:
                raise NoEngine()
            build_command(engine, plan.target.image_uri, plan.target.arch, ".")  # can it build this? before any change
            builder = image_builder(engine, prepared.image_files)
        Executor(prepared.session, sleep=sleep, waiter_delay=waiter_delay, build_image=builder).execute(plan.steps, on_step)
    document = deploy_document(prepared, plan, dry_run=dry_run)
    if dry_run:
        from .cost import estimate

        document["cost"] = estimate(document, _measured_profile(prepared, plan))
    return document


def _measured_profile(prepared: Prepared, plan: Plan):
    """The latest run in the bucket, when the bucket exists and is readable (reads only)."""
    from ..errors import StockstreamError
    from ..dataset.store import open_store
    from .cost import measured_profile

    if not prepared.account_state_read or any(s.resource == "s3 bucket" and s.action == "create" for s in plan.steps):
        return None
    try:
        return measured_profile(open_store(plan.target.store_uri, profile=prepared.profile, region=plan.target.region),
                                plan.target.workers)
    except (StockstreamError, ValueError, KeyError):
        return None


def _mutating_calls(session) -> int | None:
    calls = getattr(session, "stockstream_calls", None)
    return len(calls.mutating) if calls else None


def console_links(target: res.Target) -> dict[str, str]:
    if target.partition != "aws":
        return {}
    base = f"https://{target.region}.console.aws.amazon.com"
    names = target.names
    return {
        "state machine": f"{base}/states/home?region={target.region}#/statemachines/view/{target.state_machine_arn}",
        "dashboard": f"{base}/cloudwatch/home?region={target.region}#dashboards/dashboard/{names.dashboard}",
        "alarms": f"{base}/cloudwatch/home?region={target.region}#alarmsV2:?search={names.alarm_prefix}",
        "logs": f"{base}/cloudwatch/home?region={target.region}#logsV2:log-groups$3FlogGroupNameFilter$3D{names.fetcher_function}",
        "bucket": f"https://s3.console.aws.amazon.com/s3/buckets/{target.bucket}?region={target.region}",
    }


def deploy_document(prepared: Prepared, plan: Plan, *, dry_run: bool) -> dict[str, Any]:
    target = plan.target
    names = target.names
    return {
        "region": target.region,
        "account": target.account,
        "account_state_read": prepared.account_state_read,
        "stage": target.stage,
        "dry_run": dry_run,
        "changes": [s.as_dict() for s in plan.steps],
        "notes": plan.notes,
        "applied": 0 if dry_run else len(plan.steps),
        "mutating_calls": _mutating_calls(prepared.session),
        "bucket": target.bucket,
        "store": target.store_uri,
        "image_uri": target.image_uri,
        "state_machine_arn": target.state_machine_arn,
        "topic_arn": target.topic_arn,
        "schedule": target.schedule,
        "arch": target.arch,
        "max_concurrency": target.max_concurrency,
        "workers": target.workers,
        "resources": {
            "bucket": target.bucket_arn,
            "state machine": target.state_machine_arn,
            "symbol updater": target.function_arn(names.symbol_function),
            "fetcher": target.function_arn(names.fetcher_function),
            "topic": target.topic_arn,
            "schedule rule": target.rule_arn,
            "lambda role": target.role_arn(names.lambda_role),
            "glue database": target.arn("glue", f"database/{names.database}"),
            "athena workgroup": target.arn("athena", f"workgroup/{names.workgroup}"),
        },
        "console": console_links(target),
    }
