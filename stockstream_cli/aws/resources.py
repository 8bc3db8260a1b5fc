"""The desired state of a deployment, as plain data: names, ARNs, IAM policies, function settings, alarms.

Pure functions of a `Target` (account, region, bucket, image, options): nothing here calls AWS, so the
plan can be shown before anything is touched and the policies can be checked in tests.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from ..layout import DATA_PREFIXES
from ..settings import LAMBDA_CACHE_DIR
from ..run.lambda_runtime import METRICS_NAMESPACE

APP_TAG = {"app": "stockstream"}

SYMBOL_FUNCTION = "asx-symbol-updater"
FETCHER_FUNCTION = "stock-data-fetcher"
STATE_MACHINE = "stock-data-pipeline"
TOPIC = "stock-stream-alerts"
LAMBDA_ROLE = "stockstream-lambda"
STATES_ROLE = "stockstream-states"
SCHEDULE_ROLE = "stockstream-schedule"
ROLE_POLICY = "stockstream"
SCHEDULE_RULE = "stockstream-daily"
DASHBOARD = "stockstream"
ECR_REPOSITORY = "stockstream-lambda"
DEFAULT_SCHEDULE = "cron(0 20 * * ? *)"  # 20:00 UTC: 06:00 AEST, 07:00 AEDT, after the ASX close data settles
ALARM_PREFIX = "stockstream-"


@dataclasses.dataclass(frozen=True)
class FunctionSpec:
    name: str
    handler: str
    memory_mb: int
    timeout_s: int
    description: str


FUNCTIONS = (
    FunctionSpec(SYMBOL_FUNCTION, "asx_symbol_updater.handler", 256, 300, "stockstream: the day's ASX list and its batches"),
    # The fetcher also runs the run's data-quality step (finalize), which peaks at ~240 MB RSS on a full ASX
    # day (benchmarks/quality_step.py): too close to the symbol updater's 256 MB.
    FunctionSpec(FETCHER_FUNCTION, "stock_data_fetcher.handler", 512, 900, "stockstream: one batch of daily bars from Yahoo, and the run's data-quality step"),
)


@dataclasses.dataclass(frozen=True)
class Target:
    """Where and what to deploy: everything the desired state depends on."""

    account: str
    region: str
    bucket: str
    image_uri: str
    partition: str = "aws"
    arch: str = "arm64"
    schedule: str = DEFAULT_SCHEDULE
    alert_email: str | None = None

    def arn(self, service: str, resource: str, *, regional: bool = True, account: bool = True) -> str:
        return f"arn:{self.partition}:{service}:{self.region if regional else ''}:{self.account if account else ''}:{resource}"

    def function_arn(self, name: str) -> str:
        return self.arn("lambda", f"function:{name}")

    def role_arn(self, name: str) -> str:
        return self.arn("iam", f"role/{name}", regional=False)

    @property
    def bucket_arn(self) -> str:
        return self.arn("s3", self.bucket, regional=False, account=False)

    @property
    def topic_arn(self) -> str:
        return self.arn("sns", TOPIC)

    @property
    def state_machine_arn(self) -> str:
        return self.arn("states", f"stateMachine:{STATE_MACHINE}")

    @property
    def rule_arn(self) -> str:
        return self.arn("events", f"rule/{SCHEDULE_RULE}")

    @property
    def store_uri(self) -> str:
        return f"s3://{self.bucket}"


def default_bucket(account: str, region: str) -> str:
    """Bucket names are global: the account and region make the default one this account's own."""
    return f"stockstream-data-{account}-{region}"


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


# ---------------------------------------------------------------- IAM


def trust_policy(service: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }


def lambda_role_policy(target: Target) -> dict:
    """The functions may read and write only the data keys, list the bucket, log, and put StockStream metrics."""
    log_groups = [target.arn("logs", f"log-group:/aws/lambda/{spec.name}:*") for spec in FUNCTIONS]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadWriteDataKeys",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": [f"{target.bucket_arn}/{prefix}*" for prefix in DATA_PREFIXES],
            },
            {"Sid": "ListDataBucket", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": target.bucket_arn},
            {
                "Sid": "OwnLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": log_groups,
            },
            {
                # PutMetricData cannot be scoped by resource; the namespace condition is AWS's way to scope it.
                "Sid": "OwnMetrics",
                "Effect": "Allow",
                "Action": "cloudwatch:PutMetricData",
                "Resource": "*",
                "Condition": {"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}},
            },
        ],
    }


def states_role_policy(target: Target) -> dict:
    functions = [target.function_arn(spec.name) for spec in FUNCTIONS]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "InvokePipelineFunctions",
                "Effect": "Allow",
                "Action": "lambda:InvokeFunction",
                "Resource": functions + [f"{arn}:*" for arn in functions],
            },
            {"Sid": "PublishAlerts", "Effect": "Allow", "Action": "sns:Publish", "Resource": target.topic_arn},
        ],
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
    name: str
    service: str
    policy: dict
    description: str


def roles(target: Target) -> list[RoleSpec]:
    return [
        RoleSpec(LAMBDA_ROLE, "lambda.amazonaws.com", lambda_role_policy(target), "stockstream Lambda functions"),
        RoleSpec(STATES_ROLE, "states.amazonaws.com", states_role_policy(target), "stockstream state machine"),
        RoleSpec(SCHEDULE_ROLE, "events.amazonaws.com", schedule_role_policy(target), "stockstream daily schedule"),
    ]


# ---------------------------------------------------------------- Lambda


def function_environment(target: Target) -> dict[str, str]:
    return {"STOCKSTREAM_STORE": target.store_uri, "STOCKSTREAM_CACHE_DIR": LAMBDA_CACHE_DIR}


def function_configuration(target: Target, spec: FunctionSpec) -> dict[str, Any]:
    """What update_function_configuration sets (and get_function_configuration reads back)."""
    return {
        "Role": target.role_arn(LAMBDA_ROLE),
        "MemorySize": spec.memory_mb,
        "Timeout": spec.timeout_s,
        "Description": spec.description,
        "Environment": {"Variables": function_environment(target)},
        "ImageConfig": {"Command": [spec.handler]},
    }


# ---------------------------------------------------------------- Step Functions and the schedule


def state_machine_definition(asl_text: str, target: Target) -> dict:
    """infra/asl.json with its ARN placeholders filled in."""
    placeholders = {
        "${AsxSymbolUpdaterArn}": target.function_arn(SYMBOL_FUNCTION),
        "${StockDataFetcherArn}": target.function_arn(FETCHER_FUNCTION),
        "${AlertTopicArn}": target.topic_arn,
    }
    for placeholder, value in placeholders.items():
        asl_text = asl_text.replace(placeholder, value)
    left = re.findall(r"\$\{[A-Za-z]+\}", asl_text)
    if left:
        raise ValueError(f"infra/asl.json has placeholders deploy does not know: {sorted(set(left))}")
    return json.loads(asl_text)


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


def alarms(target: Target) -> list[dict[str, Any]]:
    """The four alarms of the design, as put_metric_alarm arguments, each wired to the alert topic."""
    common = {"AlarmActions": [target.topic_arn], "ActionsEnabled": True, "TreatMissingData": "notBreaching"}
    hour = 3600
    fetcher = {"FunctionName": FETCHER_FUNCTION}
    updater = {"FunctionName": SYMBOL_FUNCTION}
    return [
        {
            "AlarmName": f"{ALARM_PREFIX}failed-executions",
            "AlarmDescription": "A stockstream pipeline execution failed.",
            "Namespace": "AWS/States",
            "MetricName": "ExecutionsFailed",
            "Dimensions": [{"Name": "StateMachineArn", "Value": target.state_machine_arn}],
            "Statistic": "Sum",
            "Period": 300,
            "EvaluationPeriods": 1,
            "Threshold": 0.0,
            "ComparisonOperator": "GreaterThanThreshold",
            **common,
        },
        {
            "AlarmName": f"{ALARM_PREFIX}lambda-error-rate",
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
            "AlarmName": f"{ALARM_PREFIX}fetcher-duration",
            "AlarmDescription": "A batch took over 14 minutes: close to the fetcher's 15-minute timeout.",
            "Namespace": "AWS/Lambda",
            "MetricName": "Duration",
            "Dimensions": [{"Name": "FunctionName", "Value": FETCHER_FUNCTION}],
            "Statistic": "Maximum",
            "Period": 300,
            "EvaluationPeriods": 1,
            "Threshold": 840000.0,
            "ComparisonOperator": "GreaterThanThreshold",
            **common,
        },
        {
            "AlarmName": f"{ALARM_PREFIX}fetch-success-rate",
            "AlarmDescription": "Fewer than 90% of the symbols asked for were fetched in an hour.",
            "Metrics": [
                {"Id": "fetched", "MetricStat": _metric(METRICS_NAMESPACE, "SymbolsFetched", "Sum", hour), "ReturnData": False},
                {"Id": "failed", "MetricStat": _metric(METRICS_NAMESPACE, "SymbolsFailed", "Sum", hour), "ReturnData": False},
                {
                    "Id": "successrate",
                    "Expression": "100 * fetched / (fetched + failed)",
                    "Label": "Symbols fetched (%)",
                    "ReturnData": True,
                },
            ],
            "EvaluationPeriods": 1,
            "Threshold": 90.0,
            "ComparisonOperator": "LessThanThreshold",
            **common,
        },
    ]


def dashboard_body(target: Target) -> dict:
    """Executions, the symbols fetched and failed, the batches, and the functions' duration and errors."""

    def widget(x: int, y: int, title: str, metrics: list, stat: str = "Sum", period: int = 3600) -> dict:
        return {
            "type": "metric",
            "x": x,
            "y": y,
            "width": 12,
            "height": 6,
            "properties": {
                "title": title,
                "region": target.region,
                "metrics": metrics,
                "stat": stat,
                "period": period,
                "view": "timeSeries",
            },
        }

    machine = ["StateMachineArn", target.state_machine_arn]
    return {
        "widgets": [
            widget(0, 0, "Pipeline executions", [
                ["AWS/States", "ExecutionsSucceeded", *machine],
                ["AWS/States", "ExecutionsFailed", *machine],
                ["AWS/States", "ExecutionsTimedOut", *machine],
            ], period=86400),
            widget(12, 0, "Symbols fetched and failed", [
                [METRICS_NAMESPACE, "SymbolsFetched"],
                [METRICS_NAMESPACE, "SymbolsFailed"],
            ]),
            widget(0, 6, "Batches processed and failed", [
                [METRICS_NAMESPACE, "BatchesProcessed"],
                [METRICS_NAMESPACE, "BatchesFailed"],
            ]),
            widget(12, 6, "Fetcher duration (ms)", [
                ["AWS/Lambda", "Duration", "FunctionName", FETCHER_FUNCTION, {"stat": "Maximum"}],
                ["AWS/Lambda", "Duration", "FunctionName", FETCHER_FUNCTION, {"stat": "Average"}],
            ], stat="Maximum", period=300),
            widget(0, 12, "Lambda errors and invocations", [
                ["AWS/Lambda", "Errors", "FunctionName", FETCHER_FUNCTION],
                ["AWS/Lambda", "Errors", "FunctionName", SYMBOL_FUNCTION],
                ["AWS/Lambda", "Invocations", "FunctionName", FETCHER_FUNCTION],
                ["AWS/Lambda", "Throttles", "FunctionName", FETCHER_FUNCTION],
            ]),
        ]
    }
