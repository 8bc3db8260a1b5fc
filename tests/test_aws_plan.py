"""Deploy and destroy as plans of data: built from reads alone, compared with the expected calls, printed by
--dry-run (deploy and destroy) with no container engine, and executed by the one executor."""

from __future__ import annotations

import json

import boto3
import pytest

from aws_fake import IMAGE_URI, REGION
from helpers import run_stockstream
from stockstream_cli.aws import resources as res
from stockstream_cli.aws.deploy import READ_ONLY_PREFIXES, DeployOptions, deploy, prepare
from stockstream_cli.aws.executor import resolve
from stockstream_cli.aws.plan import Call, calls_of, var
from stockstream_cli.aws.planner import _plan_function, plan_deploy, plan_destroy
from stockstream_cli.aws.remote_state import RemoteState

ACCOUNT = "123456789012"
BUCKET = f"stockstream-data-{ACCOUNT}-{REGION}"

EMPTY_ACCOUNT_PLAN = [
    ("create", "s3 bucket", BUCKET, ["s3.create_bucket", "s3.put_public_access_block", "s3.put_bucket_encryption",
                                     "s3.put_bucket_policy", "s3.put_bucket_tagging"]),
    ("create", "sns topic", "stock-stream-alerts", ["sns.create_topic"]),
    ("create", "log group", "/aws/lambda/asx-symbol-updater", ["logs.create_log_group", "logs.put_retention_policy"]),
    ("create", "log group", "/aws/lambda/stock-data-fetcher", ["logs.create_log_group", "logs.put_retention_policy"]),
    ("create", "log group", "/aws/vendedlogs/states/stock-data-pipeline", ["logs.create_log_group", "logs.put_retention_policy"]),
    ("create", "iam role", "stockstream-lambda-ap-southeast-2", ["iam.create_role", "iam.put_role_policy"]),
    ("create", "iam role", "stockstream-states-ap-southeast-2", ["iam.create_role", "iam.put_role_policy"]),
    ("create", "iam role", "stockstream-schedule-ap-southeast-2", ["iam.create_role", "iam.put_role_policy"]),
    ("create", "lambda function", "asx-symbol-updater", ["lambda.create_function"]),
    ("create", "lambda function", "stock-data-fetcher", ["lambda.create_function"]),
    ("create", "state machine", "stock-data-pipeline", ["stepfunctions.create_state_machine"]),
    ("create", "schedule rule", "stockstream-daily", ["events.put_rule", "events.put_targets"]),
    ("create", "cloudwatch alarm", "stockstream-failed-executions", ["cloudwatch.put_metric_alarm"]),
    ("create", "cloudwatch alarm", "stockstream-lambda-error-rate", ["cloudwatch.put_metric_alarm"]),
    ("create", "cloudwatch alarm", "stockstream-fetcher-duration", ["cloudwatch.put_metric_alarm"]),
    ("create", "cloudwatch alarm", "stockstream-fetch-success-rate", ["cloudwatch.put_metric_alarm"]),
    ("create", "cloudwatch alarm", "stockstream-no-execution", ["cloudwatch.put_metric_alarm"]),
    ("create", "cloudwatch dashboard", "stockstream-ap-southeast-2", ["cloudwatch.put_dashboard"]),
    ("create", "s3 lifecycle rule", "stockstream-data-123456789012-ap-southeast-2/athena-results/",
     ["s3.put_bucket_lifecycle_configuration"]),
    ("create", "glue database", "stockstream", ["glue.create_database"]),
    ("create", "glue table", "stockstream.raw_prices", ["glue.create_table"]),
    ("create", "glue table", "stockstream.raw_actions", ["glue.create_table"]),
    ("create", "glue table", "stockstream.prices", ["glue.create_table"]),
    ("create", "glue table", "stockstream.actions", ["glue.create_table"]),
    ("create", "athena workgroup", "stockstream", ["athena.create_work_group"]),
]


class Operations:
    """Every operation a session sends, counted by a botocore event hook independent of the code under test."""

    def __init__(self, session):
        self.names: list[str] = []
        session.events.register("before-call", self)

    def __call__(self, model=None, **_):
        if model is not None:
            self.names.append(model.name)

    @property
    def mutating(self) -> list[str]:
        return [n for n in self.names if not n.startswith(READ_ONLY_PREFIXES)]


def _session():
    return boto3.session.Session(region_name=REGION)


def _summary(plan) -> list[tuple]:
    return [(s.action, s.resource, s.name, [f"{c.service}.{c.operation}" for c in s.calls]) for s in plan.steps]


def test_a_plan_is_built_from_reads_alone_and_is_the_expected_list_of_calls(moto_endpoint):
    session = _session()
    operations = Operations(session)
    prepared = prepare(DeployOptions(image_uri=IMAGE_URI), session=session)
    plan = plan_deploy(prepared.target, prepared.remote, build_image=False)
    assert operations.names and operations.mutating == []
    assert _summary(plan) == EMPTY_ACCOUNT_PLAN
    calls = {(c.service, c.operation, c.params.get("RoleName") or c.params.get("FunctionName") or c.params.get("Name")
              or c.params.get("AlarmName")): c for c in calls_of(plan.steps)}
    # a later call takes an earlier one's result through an output variable
    role = calls[("iam", "create_role", "stockstream-lambda-ap-southeast-2")]
    assert role.output == ("role.lambda", "Role.Arn")
    fetcher = calls[("lambda", "create_function", "stock-data-fetcher")]
    assert fetcher.params["Role"] == var("role.lambda") == "${var:role.lambda}" and fetcher.role_propagation
    assert fetcher.output == ("function.fetcher", "FunctionArn")
    assert fetcher.params["LoggingConfig"] == {"LogFormat": "JSON", "LogGroup": "/aws/lambda/stock-data-fetcher"}
    machine = calls[("stepfunctions", "create_state_machine", None)]
    assert machine.params["roleArn"] == var("role.states")
    definition = machine.params["definition"]
    assert var("function.fetcher") in definition and var("function.updater") in definition and var("topic") in definition
    assert calls[("cloudwatch", "put_metric_alarm", "stockstream-no-execution")].params["AlarmActions"] == [var("topic")]
    assert calls[("events", "put_targets", None)].params["Targets"][0]["Arn"] == var("state_machine")
    assert resolve({"a": [var("x") + "/y"]}, {"x": "arn:1"}) == {"a": ["arn:1/y"]}


def test_an_unchanged_stack_plans_nothing_and_a_changed_schedule_is_one_call(moto_endpoint):
    deploy(DeployOptions(image_uri=IMAGE_URI), sleep=lambda s: None, waiter_delay=1)
    session = _session()
    operations = Operations(session)
    prepared = prepare(DeployOptions(image_uri=IMAGE_URI), session=session)
    assert plan_deploy(prepared.target, prepared.remote, build_image=False).steps == []
    changed = prepare(DeployOptions(image_uri=IMAGE_URI, schedule="cron(0 21 * * ? *)"), session=session)
    plan = plan_deploy(changed.target, changed.remote, build_image=False)
    assert calls_of(plan.steps) == [Call("events", "put_rule", {
        "Name": "stockstream-daily", "ScheduleExpression": "cron(0 21 * * ? *)", "State": "ENABLED",
        "Description": "stockstream: start the daily pipeline", "Tags": [{"Key": "app", "Value": "stockstream"}]})]
    assert operations.mutating == []


def test_destroy_is_a_plan_too_and_its_dry_run_removes_nothing(moto_endpoint):
    deploy(DeployOptions(image_uri=IMAGE_URI), sleep=lambda s: None, waiter_delay=1)
    session = _session()
    operations = Operations(session)
    prepared = prepare(DeployOptions(), session=session, need_image=False)
    plan = plan_destroy(prepared.target, RemoteState(session))
    assert operations.mutating == []
    assert [(s.resource, [f"{c.service}.{c.operation}" for c in s.calls]) for s in plan.steps] == [
        ("athena workgroup", ["athena.delete_work_group"]),
        *[("glue table", ["glue.delete_table"])] * 4,
        ("glue database", ["glue.delete_database"]),
        ("schedule rule", ["events.remove_targets", "events.delete_rule"]),
        ("state machine", ["stepfunctions.delete_state_machine"]),
        ("lambda function", ["lambda.delete_function"]),
        ("lambda function", ["lambda.delete_function"]),
        ("cloudwatch alarm", ["cloudwatch.delete_alarms"]),
        ("cloudwatch dashboard", ["cloudwatch.delete_dashboards"]),
        ("sns topic", ["sns.delete_topic"]),
        ("iam role", ["iam.delete_role_policy", "iam.delete_role"]),
        ("iam role", ["iam.delete_role_policy", "iam.delete_role"]),
        ("iam role", ["iam.delete_role_policy", "iam.delete_role"]),
        ("log group", ["logs.delete_log_group"]),
        ("log group", ["logs.delete_log_group"]),
        ("log group", ["logs.delete_log_group"]),
    ]

    dry = run_stockstream("destroy", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    document = json.loads(dry.stdout)
    assert document["removed"] == [] and document["mutating_calls"] == 0
    assert [s["resource"] for s in document["to_remove"]] == [s.resource for s in plan.steps]
    assert document["to_remove"][8]["calls"] == [{"service": "lambda", "operation": "delete_function",
                                                  "params": {"FunctionName": "asx-symbol-updater"}}]
    human = run_stockstream("destroy", "--dry-run")
    assert human.returncode == 0
    assert "- delete lambda function asx-symbol-updater" in human.stdout
    assert "    lambda.delete_function(FunctionName=asx-symbol-updater)" in human.stdout
    assert "nothing applied (--dry-run)" in human.stdout
    assert len(boto3.client("lambda", region_name=REGION).list_functions()["Functions"]) == 2


def test_deploy_dry_run_needs_no_container_engine_and_plans_the_image(moto_endpoint, tmp_path):
    """No docker or podman on PATH at all: the image is planned ("would build") with its content tag."""
    import os
    import sys

    bare_path = os.path.dirname(sys.executable)  # python, and nothing named docker or podman
    assert not any(os.path.exists(os.path.join(bare_path, e)) for e in ("docker", "podman"))
    result = run_stockstream("deploy", "--dry-run", "--arch", "arm64", env={"PATH": bare_path})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "+ create ecr repository stockstream-lambda: scan on push, tags immutable; Lambda may pull " \
                       f"(this account's functions); keep the last {res.KEEP_IMAGES} images"
    [image] = [line for line in lines if line.startswith("+ create lambda image ")]
    assert f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/stockstream-lambda:arm64-" in image
    assert any(line.strip().startswith("build and push ") and line.endswith("-- would build") for line in lines)
    assert "plan: 27 change(s), nothing applied (--dry-run)" in lines  # 18, the image's 2, Athena's 7
    as_json = json.loads(run_stockstream("deploy", "--dry-run", "--arch", "arm64", "--json", env={"PATH": bare_path}).stdout)
    assert as_json["mutating_calls"] == 0
    assert as_json["changes"][1]["calls"] == [{"build": {"image_uri": as_json["image_uri"], "arch": "arm64"}}]
    refused = run_stockstream("deploy", "--arch", "arm64", env={"PATH": bare_path})  # for real it needs the engine
    assert refused.returncode == 2 and "Docker or Podman" in refused.stderr
    assert boto3.client("s3", region_name=REGION).list_buckets()["Buckets"] == []


# ---------------------------------------------------------------- the pure diffs


def _function(state: str = "Active", last_update: str = "Successful") -> dict:
    target = res.Target(account=ACCOUNT, region=REGION, bucket=BUCKET, image_uri=IMAGE_URI)
    spec = res.FUNCTIONS[1]
    config = res.function_configuration(target, spec, target.role_arn(target.names.lambda_role))
    actual = {"Configuration": {**config, "FunctionArn": target.function_arn("stock-data-fetcher"), "State": state,
                                "LastUpdateStatus": last_update, "Architectures": ["arm64"],
                                "ImageConfigResponse": {"ImageConfig": config["ImageConfig"]}},
              "Code": {"ImageUri": IMAGE_URI}, "Tags": dict(res.APP_TAG)}
    return target, spec, actual


def test_a_function_as_wanted_plans_nothing():
    target, spec, actual = _function()
    steps, arn = _plan_function(target, spec, target.role_arn(target.names.lambda_role), actual)
    assert steps == [] and arn == target.function_arn("stock-data-fetcher")


@pytest.mark.parametrize("state, last_update", [("Failed", "Successful"), ("Active", "Failed")])
def test_a_failed_function_is_planned_for_a_code_update_at_once(state, last_update):
    target, spec, actual = _function(state, last_update)
    [step] = _plan_function(target, spec, target.role_arn(target.names.lambda_role), actual)[0]
    assert step.details[0].startswith("resume: the function is ")
    assert [type(i).__name__ for i in step.instructions] == ["Call", "Wait"]  # no waiter first: it would fail
    assert step.calls == [Call("lambda", "update_function_code", {"FunctionName": "stock-data-fetcher",
                                                                  "ImageUri": IMAGE_URI, "Architectures": ["arm64"]})]


def test_environment_variables_deploy_does_not_own_are_kept():
    target, spec, actual = _function()
    actual["Configuration"]["Environment"]["Variables"]["MY_PROXY"] = "http://proxy:3128"
    assert _plan_function(target, spec, target.role_arn(target.names.lambda_role), actual)[0] == []
    with_env = res.Target(**{**target.__dict__, "env": (("STOCKSTREAM_DELAY", "3"),)})
    [step] = _plan_function(with_env, spec, target.role_arn(target.names.lambda_role), actual)[0]
    [update] = step.calls
    assert update.params["Environment"]["Variables"] == {
        "MY_PROXY": "http://proxy:3128", "STOCKSTREAM_STORE": f"s3://{BUCKET}",
        "STOCKSTREAM_CACHE_DIR": "/tmp/stockstream-cache", "STOCKSTREAM_BUCKET_OWNER": ACCOUNT,
        "STOCKSTREAM_WORKERS": "1", "STOCKSTREAM_DELAY": "3"}
