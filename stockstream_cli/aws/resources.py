"""The desired state of a deployment, as plain data: names, ARNs, IAM policies, function settings, alarms.

Pure functions of a `Target` (account, region, stage, bucket, image, options): nothing here calls AWS, so the
plan can be shown before anything is touched and the policies can be checked in tests.

Stages exist so that two stacks (prod and test, or one per region) share an account without touching each
other: every name below comes from `Names`, which adds the stage to every name, and the region to the names
AWS scopes account-wide (IAM roles, dashboards), so `destroy --stage test` in one region can only ever see
its own resources.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from ..dataset.layout import ACTIONS_PREFIX, DATA_PREFIXES, LOCKS_PREFIX, RAW_DATA_PREFIX, RUNS_PREFIX, SYMBOLS_PREFIX
from ..settings import LAMBDA_CACHE_DIR
from ..run.lambda_runtime import METRICS_NAMESPACE
from ..settings import CACHE_DIR_ENV, STAGE_ENV, STORE_ENV, default_of, env_name
from .catalog import RESULTS_PREFIX
from .defaults import DEFAULT_ARCH, DEFAULT_LOG_RETENTION_DAYS, DEFAULT_SCHEDULE
from ..clients import BUCKET_OWNER_ENV

APP_TAG = {"app": "stockstream"}
STAGE_TAG = "stage"

# The default names (no --stage). The contract names the first four.
SYMBOL_FUNCTION = "asx-symbol-updater"
FETCHER_FUNCTION = "stock-data-fetcher"
STATE_MACHINE = "stock-data-pipeline"
TOPIC = "stock-stream-alerts"
ROLE_POLICY = "stockstream"
SCHEDULE_RULE = "stockstream-daily"
ECR_REPOSITORY = "stockstream-lambda"
ALARM_PREFIX = "stockstream-"
CATALOG_DATABASE = "stockstream"  # Glue database names: lower case, digits and _ (Athena reads - only quoted)
WORKGROUP = "stockstream"
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
                      2922, 3288, 3653)  # what CloudWatch Logs accepts
KEEP_IMAGES = 5  # the ECR lifecycle rule keeps this many images: the live one and a few to roll back to
# The fetcher's shape: the design's, by default: at most MAP_MAX_CONCURRENCY invocations at once (the Map's
# MaxConcurrency, and the fetcher's reserved concurrency), each fetching one batch of 100 on FETCHER_WORKERS
# threads 2 s apart: 10 x 1 / 2 s = 5 requests/s toward Yahoo. `deploy --max-concurrency N --workers W` (or
# STOCKSTREAM_MAX_CONCURRENCY / STOCKSTREAM_WORKERS) chooses another: 2 x 5 sends the same 5 requests/s from a
# fifth of the functions, a fifth of the GB-seconds (benchmarks/cost_bench.py, B7, measures both), a saving
# of well under a dollar a month against CloudWatch's fixed few dollars.
MAP_MAX_CONCURRENCY = default_of("max_concurrency")  # infra/asl.json's SplitIntoBatches mirrors it (test_asl)
FETCHER_WORKERS = default_of("workers")  # threads fetching one batch in one invocation, each with its own delay
STAGE_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")
# Environment variables deploy sets on the functions; any other a user added (console, CLI) is kept.
WORKERS_ENV = env_name("workers")  # the fetcher's threads per batch (FETCHER_WORKERS)
OWNED_ENV = (STORE_ENV, CACHE_DIR_ENV, BUCKET_OWNER_ENV, STAGE_ENV, WORKERS_ENV)


@dataclasses.dataclass(frozen=True)
class Names:
    """Every name a stack uses, from its stage and region."""

    stage: str | None
    region: str

    def _regional(self, base: str) -> str:
        return f"{base}-{self.stage}" if self.stage else base

    def _global(self, base: str) -> str:
        return f"{self._regional(base)}-{self.region}"

    @property
    def symbol_function(self) -> str:
        return self._regional(SYMBOL_FUNCTION)

    @property
    def fetcher_function(self) -> str:
        return self._regional(FETCHER_FUNCTION)

    @property
    def functions(self) -> tuple[str, str]:
        return self.symbol_function, self.fetcher_function

    @property
    def state_machine(self) -> str:
        return self._regional(STATE_MACHINE)

    @property
    def topic(self) -> str:
        return self._regional(TOPIC)

    @property
    def schedule_rule(self) -> str:
        return self._regional(SCHEDULE_RULE)

    @property
    def ecr_repository(self) -> str:
        return self._regional(ECR_REPOSITORY)

    @property
    def database(self) -> str:
        return f"{CATALOG_DATABASE}_{self.stage}" if self.stage else CATALOG_DATABASE

    @property
    def workgroup(self) -> str:
        return self._regional(WORKGROUP)

    @property
    def alarm_prefix(self) -> str:
        return f"{ALARM_PREFIX}{self.stage}-" if self.stage else ALARM_PREFIX

    # IAM role names and dashboard names are account-wide: the region goes in too.
    @property
    def lambda_role(self) -> str:
        return self._global("stockstream-lambda")

    @property
    def states_role(self) -> str:
        return self._global("stockstream-states")

    @property
    def schedule_role(self) -> str:
        return self._global("stockstream-schedule")

    @property
    def dashboard(self) -> str:
        return self._global("stockstream")

    def function_log_group(self, function: str) -> str:
        return f"/aws/lambda/{function}"

    @property
    def state_machine_log_group(self) -> str:
        return f"/aws/vendedlogs/states/{self.state_machine}"

    @property
    def log_groups(self) -> list[str]:
        return [self.function_log_group(f) for f in self.functions] + [self.state_machine_log_group]


# Names before stages: account-wide names without the region. destroy (no --stage) removes them when they
# belong to its region, so an upgrade leaves nothing behind.
LEGACY_ROLES = ("stockstream-lambda", "stockstream-states", "stockstream-schedule")
LEGACY_DASHBOARD = "stockstream"


def check_stage(stage: str | None) -> str | None:
    from ..errors import InputError

    if stage is not None and not STAGE_RE.match(stage):
        raise InputError(f"{stage!r}: use 1-12 lower-case letters and digits, starting with a letter (e.g. prod, test2)",
                         parameter="stage")
    return stage


@dataclasses.dataclass(frozen=True)
class FunctionSpec:
    key: str  # "updater" or "fetcher": what `logs --function` and the code call it
    handler: str
    memory_mb: int
    timeout_s: int
    description: str


FUNCTIONS = (
    FunctionSpec("updater", "asx_symbol_updater.handler", 256, 300, "stockstream: the day's ASX list and its batches"),
    # The fetcher also runs the run's data-quality step (finalize), which peaks at ~240 MB RSS on a full ASX
    # day (benchmarks/quality_step.py): too close to the symbol updater's 256 MB.
    FunctionSpec("fetcher", "stock_data_fetcher.handler", 512, 900, "stockstream: one batch of daily bars from Yahoo, and the run's data-quality step"),
)


@dataclasses.dataclass(frozen=True)
class Target:
    """Where and what to deploy: everything the desired state depends on."""

    account: str
    region: str
    bucket: str
    image_uri: str
    partition: str = "aws"
    arch: str = DEFAULT_ARCH
    schedule: str = DEFAULT_SCHEDULE
    alert_email: str | None = None
    stage: str | None = None
    log_retention_days: int = DEFAULT_LOG_RETENTION_DAYS
    tracing: bool = False
    env: tuple[tuple[str, str], ...] = ()  # --env KEY=VALUE, in order
    kms_key_arn: str | None = None  # the bucket's customer-managed key, found by the plan
    reserved_concurrency: int | None = None  # the fetcher's, when the account's quota leaves room
    max_concurrency: int = MAP_MAX_CONCURRENCY  # the Map's batches at once
    workers: int = FETCHER_WORKERS  # the fetcher's threads per batch

    @property
    def names(self) -> Names:
        return Names(self.stage, self.region)

    def arn(self, service: str, resource: str, *, regional: bool = True, account: bool = True) -> str:
        return f"arn:{self.partition}:{service}:{self.region if regional else ''}:{self.account if account else ''}:{resource}"

    def function_name(self, spec: FunctionSpec) -> str:
        return self.names.symbol_function if spec.key == "updater" else self.names.fetcher_function

    def function_arn(self, name: str) -> str:
        return self.arn("lambda", f"function:{name}")

    def role_arn(self, name: str) -> str:
        return self.arn("iam", f"role/{name}", regional=False)

    def log_group_arn(self, name: str) -> str:
        return self.arn("logs", f"log-group:{name}")

    @property
    def bucket_arn(self) -> str:
        return self.arn("s3", self.bucket, regional=False, account=False)

    @property
    def topic_arn(self) -> str:
        return self.arn("sns", self.names.topic)

    @property
    def state_machine_arn(self) -> str:
        return self.arn("states", f"stateMachine:{self.names.state_machine}")

    @property
    def rule_arn(self) -> str:
        return self.arn("events", f"rule/{self.names.schedule_rule}")

    @property
    def repository_arn(self) -> str:
        return self.arn("ecr", f"repository/{self.names.ecr_repository}")

    @property
    def store_uri(self) -> str:
        return f"s3://{self.bucket}"

    @property
    def tags(self) -> dict[str, str]:
        return {**APP_TAG, STAGE_TAG: self.stage} if self.stage else dict(APP_TAG)

    def tag_list(self, key_name: str = "Key", value_name: str = "Value") -> list[dict[str, str]]:
        return [{key_name: key, value_name: value} for key, value in self.tags.items()]

    @property
    def metric_dimensions(self) -> dict[str, str]:
        """The functions' EMF metrics carry the stage, so two stacks' alarms never add up each other's."""
        return {"Stage": self.stage} if self.stage else {}


def default_bucket(account: str, region: str, stage: str | None = None) -> str:
    """Bucket names are global: the account and region make the default one this account's own (and
    ExpectedBucketOwner on every call refuses one someone else created under that name)."""
    return f"stockstream-data-{stage + '-' if stage else ''}{account}-{region}"


def tag_list(key_name: str = "Key", value_name: str = "Value") -> list[dict[str, str]]:
    return [{key_name: key, value_name: value} for key, value in APP_TAG.items()]


# ---------------------------------------------------------------- the bucket


def bucket_policy(target: Target) -> dict:
    """Refuse every request that does not use TLS."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [target.bucket_arn, f"{target.bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}

ENCRYPTION = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]}


def bucket_kms_key(encryption: dict | None) -> str | None:
    """The customer-managed KMS key a bucket's default encryption names, if any (aws/s3's own key needs no grant)."""
    for rule in (encryption or {}).get("Rules", []):
        default = rule.get("ApplyServerSideEncryptionByDefault", {})
        key = default.get("KMSMasterKeyID")
        if default.get("SSEAlgorithm", "").startswith("aws:kms") and key and not key.endswith("alias/aws/s3"):
            return key
    return None


# ---------------------------------------------------------------- IAM


def trust_policy(service: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }


def lambda_role_policy(target: Target) -> dict:
    """The functions may read and write only the data keys, list the bucket, write their own logs (and use the
    bucket's KMS key when it has one). Metrics go out as EMF log lines, so no PutMetricData."""
    names = target.names
    log_groups = [target.log_group_arn(names.function_log_group(f)) + ":*" for f in names.functions]
    statements = [
        {
            "Sid": "ReadWriteDataKeys",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": [f"{target.bucket_arn}/{prefix}*" for prefix in DATA_PREFIXES],
        },
        {   # a fetcher releases its batch lock, the compaction step its day locks (locks.py)
            "Sid": "ReleaseLocks",
            "Effect": "Allow",
            "Action": "s3:DeleteObject",
            "Resource": f"{target.bucket_arn}/{LOCKS_PREFIX}*",
        },
        {"Sid": "ListDataBucket", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": target.bucket_arn},
        {   # the compaction step removes the batch files it folded into a month's compacted file; nothing else
            "Sid": "DeleteCompactedBatchFiles",
            "Effect": "Allow",
            "Action": "s3:DeleteObject",
            "Resource": f"{target.bucket_arn}/{RAW_DATA_PREFIX}*",
        },
        {
            "Sid": "OwnLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": log_groups,
        },
    ]
    if target.tracing:
        statements.append(_tracing_statement())
    if target.kms_key_arn:
        statements.append({
            "Sid": "BucketKey",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": target.kms_key_arn,
            "Condition": {"StringEquals": {"kms:ViaService": f"s3.{target.region}.amazonaws.com"}},
        })
    return {"Version": "2012-10-17", "Statement": statements}


def states_role_policy(target: Target) -> dict:
    functions = [target.function_arn(name) for name in target.names.functions]
    statements = [
        {
            "Sid": "InvokePipelineFunctions",
            "Effect": "Allow",
            "Action": "lambda:InvokeFunction",
            "Resource": functions + [f"{arn}:*" for arn in functions],
        },
        {"Sid": "PublishAlerts", "Effect": "Allow", "Action": "sns:Publish", "Resource": target.topic_arn},
        {
            # Step Functions' log delivery: these actions take no resource (AWS's documented policy for it)
            "Sid": "DeliverLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
                       "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy",
                       "logs:DescribeResourcePolicies", "logs:DescribeLogGroups"],
            "Resource": "*",
        },
    ]
    if target.tracing:
        statements.append(_tracing_statement())
    return {"Version": "2012-10-17", "Statement": statements}


def _tracing_statement() -> dict:
    """X-Ray's actions take no resource."""
    return {
        "Sid": "Tracing",
        "Effect": "Allow",
        "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
                   "xray:GetSamplingTargets"],
        "Resource": "*",
    }


def schedule_role_policy(target: Target) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "StartPipeline", "Effect": "Allow", "Action": "states:StartExecution", "Resource": target.state_machine_arn}
        ],
    }


@dataclasses.dataclass(frozen=True)
class RoleSpec:
    key: str  # lambda | states | schedule
    name: str
    service: str
    policy: dict
    description: str


def roles(target: Target) -> list[RoleSpec]:
    names = target.names
    return [
        RoleSpec("lambda", names.lambda_role, "lambda.amazonaws.com", lambda_role_policy(target), "stockstream Lambda functions"),
        RoleSpec("states", names.states_role, "states.amazonaws.com", states_role_policy(target), "stockstream state machine"),
        RoleSpec("schedule", names.schedule_role, "events.amazonaws.com", schedule_role_policy(target), "stockstream daily schedule"),
    ]


# ---------------------------------------------------------------- ECR


def repository_policy(target: Target) -> dict:
    """Lambda may pull the image, for this account's functions only (what a scoped deployer needs)."""
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "LambdaPull",
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            "Condition": {"StringLike": {"aws:sourceArn": target.arn("lambda", "function:*")}},
        }],
    }


def lifecycle_policy(keep: int = KEEP_IMAGES) -> dict:
    return {"rules": [{
        "rulePriority": 1,
        "description": f"keep the last {keep} images",
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep},
        "action": {"type": "expire"},
    }]}


# ---------------------------------------------------------------- Lambda


def function_environment(target: Target) -> dict[str, str]:
    """The variables deploy owns, then the user's --env ones."""
    owned = {STORE_ENV: target.store_uri, CACHE_DIR_ENV: LAMBDA_CACHE_DIR, BUCKET_OWNER_ENV: target.account,
             WORKERS_ENV: str(target.workers)}
    if target.stage:
        owned[STAGE_ENV] = target.stage
    return {**owned, **dict(target.env)}


def merged_environment(target: Target, actual: dict[str, str] | None) -> dict[str, str]:
    """What the functions should have: variables a user added (not deploy's, not --env) kept as they are."""
    desired = function_environment(target)
    kept = {k: v for k, v in (actual or {}).items() if k not in OWNED_ENV and k not in desired}
    return {**kept, **desired}


def function_configuration(target: Target, spec: FunctionSpec, role_arn: str,
                           actual_env: dict[str, str] | None = None) -> dict[str, Any]:
    """What update_function_configuration sets (and get_function_configuration reads back)."""
    return {
        "Role": role_arn,
        "MemorySize": spec.memory_mb,
        "Timeout": spec.timeout_s,
        "Description": spec.description,
        "Environment": {"Variables": merged_environment(target, actual_env)},
        "ImageConfig": {"Command": [spec.handler]},
        "LoggingConfig": {"LogFormat": "JSON", "LogGroup": target.names.function_log_group(target.function_name(spec))},
        "TracingConfig": {"Mode": "Active" if target.tracing else "PassThrough"},
    }


# ---------------------------------------------------------------- Step Functions and the schedule


def state_machine_definition(asl_text: str, target: Target, *, topic_arn: str | None = None,
                             function_arns: dict[str, str] | None = None) -> dict:
    """infra/asl.json with its placeholders filled in (ARNs given override the computed ones)."""
    arns = function_arns or {}
    names = target.names
    placeholders = {
        "${AsxSymbolUpdaterArn}": arns.get("updater") or target.function_arn(names.symbol_function),
        "${StockDataFetcherArn}": arns.get("fetcher") or target.function_arn(names.fetcher_function),
        "${AlertTopicArn}": topic_arn or target.topic_arn,
        "${Partition}": target.partition,
    }
    for placeholder, value in placeholders.items():
        asl_text = asl_text.replace(placeholder, value)
    left = re.findall(r"\$\{[A-Za-z]+\}", asl_text)
    if left:
        raise ValueError(f"infra/asl.json has placeholders deploy does not know: {sorted(set(left))}")
    definition = json.loads(asl_text)
    definition["States"]["SplitIntoBatches"]["MaxConcurrency"] = target.max_concurrency
    return definition


def state_machine_logging(target: Target, log_group_arn: str | None = None) -> dict:
    return {
        "level": "ERROR",
        "includeExecutionData": False,
        "destinations": [{"cloudWatchLogsLogGroup": {
            "logGroupArn": log_group_arn or target.log_group_arn(target.names.state_machine_log_group) + ":*"}}],
    }


SCHEDULE_INPUT = "{}"  # no date: the symbol updater uses today's Sydney date


# ---------------------------------------------------------------- CloudWatch


def _metric(namespace: str, name: str, stat: str, period: int, dimensions: dict[str, str] | None = None) -> dict:
    return {
        "Metric": {
            "Namespace": namespace,
            "MetricName": name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in (dimensions or {}).items()],
        },
        "Period": period,
        "Stat": stat,
    }


def alarms(target: Target, topic_arn: str | None = None) -> list[dict[str, Any]]:
    """The design's four alarms, and a fifth for a pipeline that stopped running, as put_metric_alarm
    arguments, each wired to the alert topic."""
    names = target.names
    topic = topic_arn or target.topic_arn
    common = {"AlarmActions": [topic], "ActionsEnabled": True, "TreatMissingData": "notBreaching"}
    hour, day = 3600, 86400
    fetcher = {"FunctionName": names.fetcher_function}
    updater = {"FunctionName": names.symbol_function}
    machine = [{"Name": "StateMachineArn", "Value": target.state_machine_arn}]
    ours = target.metric_dimensions
    prefix = names.alarm_prefix
    return [
        {
            "AlarmName": f"{prefix}failed-executions",
            "AlarmDescription": "A stockstream pipeline execution failed.",
            "Namespace": "AWS/States",
            "MetricName": "ExecutionsFailed",
            "Dimensions": machine,
            "Statistic": "Sum",
            "Period": 300,
            "EvaluationPeriods": 1,
            "Threshold": 0.0,
            "ComparisonOperator": "GreaterThanThreshold",
            **common,
        },
        {
            "AlarmName": f"{prefix}lambda-error-rate",
            "AlarmDescription": "More than 10% of stockstream Lambda invocations failed in an hour.",
            "Metrics": [
                {"Id": "errors1", "MetricStat": _metric("AWS/Lambda", "Errors", "Sum", hour, fetcher), "ReturnData": False},
                {"Id": "calls1", "MetricStat": _metric("AWS/Lambda", "Invocations", "Sum", hour, fetcher), "ReturnData": False},
                {"Id": "errors2", "MetricStat": _metric("AWS/Lambda", "Errors", "Sum", hour, updater), "ReturnData": False},
                {"Id": "calls2", "MetricStat": _metric("AWS/Lambda", "Invocations", "Sum", hour, updater), "ReturnData": False},
                {
                    "Id": "errorrate",
                    "Expression": "100 * (errors1 + errors2) / (calls1 + calls2)",
                    "Label": "Lambda error rate (%)",
                    "ReturnData": True,
                },
            ],
            "EvaluationPeriods": 1,
            "Threshold": 10.0,
            "ComparisonOperator": "GreaterThanThreshold",
            **common,
        },
        {
            "AlarmName": f"{prefix}fetcher-duration",
            "AlarmDescription": "A batch took over 14 minutes: close to the fetcher's 15-minute timeout.",
            "Namespace": "AWS/Lambda",
            "MetricName": "Duration",
            "Dimensions": [{"Name": "FunctionName", "Value": names.fetcher_function}],
            "Statistic": "Maximum",
            "Period": 300,
            "EvaluationPeriods": 1,
            "Threshold": 840000.0,
            "ComparisonOperator": "GreaterThanThreshold",
            **common,
        },
        {
            # the design's rate: symbols fetched over the day's total (from the symbol updater), so a batch
            # that fails whole (no SymbolsFetched at all) lowers it too
            "AlarmName": f"{prefix}fetch-success-rate",
            "AlarmDescription": "Fewer than 90% of the day's symbols were fetched.",
            "Metrics": [
                {"Id": "fetched", "MetricStat": _metric(METRICS_NAMESPACE, "SymbolsFetched", "Sum", day, ours), "ReturnData": False},
                {"Id": "total", "MetricStat": _metric(METRICS_NAMESPACE, "TotalSymbols", "Sum", day, ours), "ReturnData": False},
                {
                    "Id": "successrate",
                    "Expression": "100 * fetched / total",
                    "Label": "Symbols fetched (%)",
                    "ReturnData": True,
                },
            ],
            "EvaluationPeriods": 1,
            "Threshold": 90.0,
            "ComparisonOperator": "LessThanThreshold",
            **common,
        },
        {
            "AlarmName": f"{prefix}no-execution",
            "AlarmDescription": "No stockstream pipeline execution started in a day: the schedule or the pipeline stopped.",
            "Namespace": "AWS/States",
            "MetricName": "ExecutionsStarted",
            "Dimensions": machine,
            "Statistic": "Sum",
            "Period": day,
            "EvaluationPeriods": 1,
            "Threshold": 1.0,
            "ComparisonOperator": "LessThanThreshold",
            **common,
            # Step Functions sends ExecutionsStarted only when one starts, so a stopped pipeline is missing data:
            # that is INSUFFICIENT_DATA, which alerts. A new alarm starts in that state (no change: no alert
            # before the first scheduled run); a pipeline that ran and then stopped goes OK -> INSUFFICIENT_DATA.
            "TreatMissingData": "missing",
            "InsufficientDataActions": [topic],
        },
    ]


# Prices (USD, us-east-1 / ap-southeast-2 list prices, 2026) the cost-per-execution figure uses.
PRICE_LAMBDA_ARM_GB_S = 0.0000133334
PRICE_LAMBDA_X86_GB_S = 0.0000166667
PRICE_LAMBDA_REQUEST = 0.0000002
PRICE_STATE_TRANSITION = 0.000025


def dashboard_body(target: Target) -> dict:
    """The design's six widgets: executions, symbols fetched vs failed (a pie), batches, the fetcher's
    duration and errors, the bucket's storage, and an estimated cost per execution."""
    names = target.names
    ours = [item for pair in target.metric_dimensions.items() for item in pair]

    def widget(x: int, y: int, title: str, metrics: list, stat: str = "Sum", period: int = 3600,
               view: str = "timeSeries", region: str | None = None) -> dict:
        return {
            "type": "metric",
            "x": x,
            "y": y,
            "width": 12,
            "height": 6,
            "properties": {
                "title": title,
                "region": region or target.region,
                "metrics": metrics,
                "stat": stat,
                "period": period,
                "view": view,
            },
        }

    machine = ["StateMachineArn", target.state_machine_arn]
    gb = {spec.key: spec.memory_mb / 1024 for spec in FUNCTIONS}
    gb_s = PRICE_LAMBDA_ARM_GB_S if target.arch == "arm64" else PRICE_LAMBDA_X86_GB_S
    cost = (f"(d1 * {gb['updater'] * gb_s / 1000:.12f} + d2 * {gb['fetcher'] * gb_s / 1000:.12f}"
            f" + (i1 + i2) * {PRICE_LAMBDA_REQUEST} + (i1 + i2) * 6 * {PRICE_STATE_TRANSITION}) / IF(e, e, 1)")
    return {
        "widgets": [
            widget(0, 0, "Pipeline executions", [
                ["AWS/States", "ExecutionsSucceeded", *machine],
                ["AWS/States", "ExecutionsFailed", *machine],
                ["AWS/States", "ExecutionsTimedOut", *machine],
            ], period=86400),
            widget(12, 0, "Symbols fetched vs failed", [
                [METRICS_NAMESPACE, "SymbolsFetched", *ours],
                [METRICS_NAMESPACE, "SymbolsFailed", *ours],
            ], period=86400, view="pie"),
            widget(0, 6, "Batches processed and failed", [
                [METRICS_NAMESPACE, "BatchesProcessed", *ours],
                [METRICS_NAMESPACE, "BatchesFailed", *ours],
            ]),
            widget(12, 6, "Fetcher duration (ms) and Lambda errors", [
                ["AWS/Lambda", "Duration", "FunctionName", names.fetcher_function, {"stat": "Maximum"}],
                ["AWS/Lambda", "Duration", "FunctionName", names.fetcher_function, {"stat": "Average"}],
                ["AWS/Lambda", "Errors", "FunctionName", names.fetcher_function, {"yAxis": "right"}],
                ["AWS/Lambda", "Errors", "FunctionName", names.symbol_function, {"yAxis": "right"}],
                ["AWS/Lambda", "Throttles", "FunctionName", names.fetcher_function, {"yAxis": "right"}],
            ], stat="Maximum", period=300),
            widget(0, 12, "S3 storage (bytes, objects)", [
                ["AWS/S3", "BucketSizeBytes", "BucketName", target.bucket, "StorageType", "StandardStorage"],
                ["AWS/S3", "NumberOfObjects", "BucketName", target.bucket, "StorageType", "AllStorageTypes",
                 {"yAxis": "right"}],
            ], stat="Average", period=86400),
            widget(12, 12, "Estimated cost per execution (USD, Lambda + Step Functions)", [
                ["AWS/Lambda", "Duration", "FunctionName", names.symbol_function, {"id": "d1", "stat": "Sum", "visible": False}],
                ["AWS/Lambda", "Duration", "FunctionName", names.fetcher_function, {"id": "d2", "stat": "Sum", "visible": False}],
                ["AWS/Lambda", "Invocations", "FunctionName", names.symbol_function, {"id": "i1", "visible": False}],
                ["AWS/Lambda", "Invocations", "FunctionName", names.fetcher_function, {"id": "i2", "visible": False}],
                ["AWS/States", "ExecutionsStarted", *machine, {"id": "e", "visible": False}],
                [{"expression": cost, "label": "USD per execution", "id": "cost"}],
            ], period=86400, view="singleValue"),
        ]
    }


# ---------------------------------------------------------------- the deployer's own permissions


def deployer_policy(partition: str = "aws", account: str = "*", region: str = "*", stage: str | None = None,
                    bucket: str | None = None) -> dict:
    """What `deploy`, `destroy`, `run-remote`, `rerun-failed --remote`, `status --remote` and `logs` need,
    scoped to stockstream's names and to `bucket` when one is chosen (printed by --print-policy)."""
    arn = lambda service, resource, regional=True: (  # noqa: E731
        f"arn:{partition}:{service}:{region if regional else ''}:{account}:{resource}")
    names = Names(stage, region) if region != "*" else None
    sfx = f"-{stage}" if stage else ""
    role_pattern = f"stockstream-*{sfx}-{region}" if region != "*" else "stockstream-*"
    roles = [arn("iam", f"role/{role_pattern}", regional=False)]
    functions = [arn("lambda", f"function:{n}") for n in (names.functions if names else ("asx-symbol-updater*", "stock-data-fetcher*"))]
    bucket_arn = f"arn:{partition}:s3:::{bucket or 'stockstream-data-*'}"
    database = names.database if names else f"{CATALOG_DATABASE}*"
    workgroup = names.workgroup if names else f"{WORKGROUP}*"
    # destroy without a stage reads (and, when they name its region, removes) the roles named before stages
    legacy_roles = [] if stage else [
        {"Sid": "RolesBeforeStages", "Effect": "Allow",
         "Action": ["iam:GetRole", "iam:ListRolePolicies", "iam:GetRolePolicy", "iam:ListAttachedRolePolicies",
                    "iam:DeleteRolePolicy", "iam:DetachRolePolicy", "iam:DeleteRole"],
         "Resource": [arn("iam", f"role/{name}", regional=False) for name in LEGACY_ROLES]}]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Identity", "Effect": "Allow", "Action": ["sts:GetCallerIdentity"], "Resource": "*"},
            # CreateBucket sends ObjectOwnership=BucketOwnerEnforced (ACLs off), which S3 authorizes as
            # s3:PutBucketOwnershipControls: granted rather than left to S3's default for new buckets, so the
            # bucket's setting is stated in the plan and holds wherever that default does not
            {"Sid": "Bucket", "Effect": "Allow",
             "Action": ["s3:CreateBucket", "s3:PutBucketOwnershipControls", "s3:ListBucket", "s3:GetBucketLocation",
                        "s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:GetEncryptionConfiguration",
                        "s3:PutEncryptionConfiguration", "s3:GetBucketPublicAccessBlock",
                        "s3:PutBucketPublicAccessBlock", "s3:GetBucketTagging", "s3:PutBucketTagging",
                        "s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration",
                        "s3:ListBucketMultipartUploads"],
             "Resource": bucket_arn},
            # the dataset's files: `deploy --dry-run` reads the latest run, `rerun-failed --remote` the day's
            # list, results and data, and writes the day's run.json
            {"Sid": "Data", "Effect": "Allow", "Action": ["s3:GetObject"],
             "Resource": [f"{bucket_arn}/{prefix}*" for prefix in (SYMBOLS_PREFIX, RAW_DATA_PREFIX, RUNS_PREFIX)]},
            {"Sid": "RunRecords", "Effect": "Allow", "Action": ["s3:PutObject"], "Resource": f"{bucket_arn}/{RUNS_PREFIX}*"},
            # ... under the day's lock (dataset/commit.py), taken and released as any writer does
            {"Sid": "DayLock", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
             "Resource": f"{bucket_arn}/{LOCKS_PREFIX}*"},
            {"Sid": "Roles", "Effect": "Allow",
             "Action": ["iam:GetRole", "iam:CreateRole", "iam:DeleteRole", "iam:UpdateAssumeRolePolicy",
                        "iam:GetRolePolicy", "iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:ListRolePolicies",
                        "iam:ListAttachedRolePolicies", "iam:DetachRolePolicy", "iam:TagRole", "iam:ListRoleTags"],
             "Resource": roles},
            *legacy_roles,
            {"Sid": "PassRoles", "Effect": "Allow", "Action": "iam:PassRole", "Resource": roles,
             "Condition": {"StringEquals": {"iam:PassedToService": ["lambda.amazonaws.com", "states.amazonaws.com",
                                                                   "events.amazonaws.com"]}}},
            {"Sid": "Functions", "Effect": "Allow",
             "Action": ["lambda:GetFunction", "lambda:GetFunctionConfiguration", "lambda:CreateFunction",
                        "lambda:UpdateFunctionConfiguration", "lambda:UpdateFunctionCode", "lambda:DeleteFunction",
                        "lambda:TagResource", "lambda:ListTags", "lambda:GetFunctionConcurrency",
                        "lambda:PutFunctionConcurrency", "lambda:DeleteFunctionConcurrency"],
             "Resource": functions},
            {"Sid": "AccountQuota", "Effect": "Allow", "Action": ["lambda:GetAccountSettings"], "Resource": "*"},
            {"Sid": "StateMachine", "Effect": "Allow",
             "Action": ["states:CreateStateMachine", "states:UpdateStateMachine", "states:DeleteStateMachine",
                        "states:DescribeStateMachine", "states:TagResource", "states:ListTagsForResource",
                        "states:StartExecution", "states:ListExecutions", "states:DescribeExecution"],
             "Resource": [arn("states", "stateMachine:stock-data-pipeline*"), arn("states", "execution:stock-data-pipeline*:*")]},
            {"Sid": "ListStateMachines", "Effect": "Allow", "Action": ["states:ListStateMachines"], "Resource": "*"},
            {"Sid": "Schedule", "Effect": "Allow",
             "Action": ["events:DescribeRule", "events:PutRule", "events:DeleteRule", "events:PutTargets",
                        "events:RemoveTargets", "events:ListTargetsByRule", "events:TagResource",
                        "events:ListTagsForResource"],
             "Resource": arn("events", "rule/stockstream-daily*")},
            {"Sid": "Topic", "Effect": "Allow",
             "Action": ["sns:CreateTopic", "sns:DeleteTopic", "sns:GetTopicAttributes", "sns:Subscribe",
                        "sns:ListSubscriptionsByTopic", "sns:TagResource", "sns:ListTagsForResource"],
             "Resource": arn("sns", "stock-stream-alerts*")},
            {"Sid": "Alarms", "Effect": "Allow",
             "Action": ["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:TagResource",
                        "cloudwatch:ListTagsForResource"],
             "Resource": arn("cloudwatch", "alarm:stockstream-*")},
            {"Sid": "Dashboards", "Effect": "Allow",
             "Action": ["cloudwatch:GetDashboard", "cloudwatch:PutDashboard", "cloudwatch:DeleteDashboards"],
             "Resource": arn("cloudwatch", "dashboard/stockstream*", regional=False)},
            {"Sid": "DescribeAlarms", "Effect": "Allow", "Action": ["cloudwatch:DescribeAlarms"], "Resource": "*"},
            {"Sid": "LogGroups", "Effect": "Allow",
             "Action": ["logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:PutRetentionPolicy", "logs:TagResource",
                        "logs:ListTagsForResource", "logs:FilterLogEvents"],
             "Resource": [arn("logs", "log-group:/aws/lambda/asx-symbol-updater*"),
                          arn("logs", "log-group:/aws/lambda/stock-data-fetcher*"),
                          arn("logs", "log-group:/aws/vendedlogs/states/stock-data-pipeline*")]},
            {"Sid": "DescribeLogGroups", "Effect": "Allow",
             "Action": ["logs:DescribeLogGroups", "logs:CreateLogDelivery", "logs:GetLogDelivery",
                        "logs:UpdateLogDelivery", "logs:DeleteLogDelivery", "logs:ListLogDeliveries",
                        "logs:PutResourcePolicy", "logs:DescribeResourcePolicies"], "Resource": "*"},
            {"Sid": "ImageRepository", "Effect": "Allow",
             "Action": ["ecr:CreateRepository", "ecr:DeleteRepository", "ecr:DescribeRepositories", "ecr:DescribeImages",
                        "ecr:BatchGetImage", "ecr:GetRepositoryPolicy", "ecr:SetRepositoryPolicy",
                        "ecr:GetLifecyclePolicy", "ecr:PutLifecyclePolicy", "ecr:TagResource",
                        "ecr:ListTagsForResource", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart",
                        "ecr:CompleteLayerUpload", "ecr:BatchCheckLayerAvailability", "ecr:PutImage",
                        "ecr:GetDownloadUrlForLayer", "ecr:BatchDeleteImage"],
             "Resource": arn("ecr", "repository/stockstream-lambda*")},
            # the dataset in the Glue Data Catalog (DeleteDatabase is authorized on what the database holds too)
            {"Sid": "Catalog", "Effect": "Allow",
             "Action": ["glue:GetDatabase", "glue:CreateDatabase", "glue:DeleteDatabase", "glue:GetTags",
                        "glue:TagResource", "glue:GetTable", "glue:GetTables", "glue:CreateTable", "glue:UpdateTable",
                        "glue:DeleteTable", "glue:GetPartitions"],
             "Resource": [arn("glue", "catalog"), arn("glue", f"database/{database}"),
                          arn("glue", f"table/{database}/*"), arn("glue", f"userDefinedFunction/{database}/*")]},
            # the workgroup, and Athena queries in it (the README's): the user who deploys can query
            {"Sid": "Workgroup", "Effect": "Allow",
             "Action": ["athena:CreateWorkGroup", "athena:GetWorkGroup", "athena:UpdateWorkGroup",
                        "athena:DeleteWorkGroup", "athena:TagResource", "athena:ListTagsForResource",
                        "athena:StartQueryExecution", "athena:GetQueryExecution", "athena:GetQueryResults",
                        "athena:StopQueryExecution"],
             "Resource": arn("athena", f"workgroup/{workgroup}")},
            {"Sid": "QueryReads", "Effect": "Allow", "Action": ["s3:GetObject"],
             "Resource": [f"{bucket_arn}/{prefix}*" for prefix in (RAW_DATA_PREFIX, ACTIONS_PREFIX)]},
            {"Sid": "QueryResults", "Effect": "Allow",
             "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
             "Resource": f"{bucket_arn}/{RESULTS_PREFIX}*"},
            {"Sid": "RegistryLogin", "Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"},
            {"Sid": "BucketKey", "Effect": "Allow", "Action": ["kms:DescribeKey"], "Resource": "*"},
        ],
    }
