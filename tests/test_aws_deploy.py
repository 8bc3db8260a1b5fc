"""`stockstream deploy` and `destroy` against moto: the resources, idempotence, a changed setting, the dry
run, the image, the IAM policies (their structure, and moto enforcing them), and destroy."""

from __future__ import annotations

import dataclasses
import json
import os
import re

import boto3
import pytest

from aws_fake import IMAGE_URI, REGION, allow_plain_http_in_moto, with_moto_action_names
from helpers import run_stockstream
from stockstream_cli.aws import image as image_module
from stockstream_cli.aws import resources as res
from stockstream_cli.aws.assets import find_sources
from stockstream_cli.aws.deploy import READ_ONLY_PREFIXES, DeployOptions, deploy
from stockstream_cli.options import flag
from stockstream_cli.errors import InputError

ACCOUNT = "123456789012"
BUCKET = f"stockstream-data-{ACCOUNT}-{REGION}"
TARGET = res.Target(account=ACCOUNT, region=REGION, bucket=BUCKET, image_uri=IMAGE_URI)
NAMES = TARGET.names
ROLES = {NAMES.lambda_role, NAMES.states_role, NAMES.schedule_role}
ALARMS = {"stockstream-failed-executions", "stockstream-lambda-error-rate", "stockstream-fetcher-duration",
          "stockstream-fetch-success-rate", "stockstream-no-execution"}
# bucket, topic, 3 log groups, 3 roles, 2 functions, state machine, rule, 5 alarms, dashboard; the results' lifecycle
# rule, the Glue database, its 2 tables and 2 views, the Athena workgroup
FIRST_DEPLOY_STEPS = 25


def _deploy_json(*args: str) -> dict:
    result = run_stockstream("deploy", "--image-uri", IMAGE_URI, "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _client(service: str):
    return boto3.client(service, region_name=REGION)


def _tags(pairs, key="Key", value="Value") -> dict:
    return {p[key]: p[value] for p in pairs}


class MutatingCalls:
    """An independent count of the AWS calls a session makes that are not reads."""

    def __init__(self, session):
        self.operations: list[str] = []
        session.events.register("before-call", self)

    def __call__(self, model=None, **_):
        if model is not None and not model.name.startswith(READ_ONLY_PREFIXES):
            self.operations.append(model.name)


# ---------------------------------------------------------------- deploy, again, changed, dry run, destroy


def test_dry_run_on_an_empty_account_plans_everything_and_creates_nothing(moto_endpoint):
    plan = _deploy_json("--dry-run")
    assert plan["dry_run"] is True and plan["mutating_calls"] == 0 and plan["applied"] == 0
    kinds = [(c["action"], c["resource"], c["name"]) for c in plan["changes"]]
    assert ("create", "s3 bucket", BUCKET) in kinds
    assert ("create", "state machine", "stock-data-pipeline") in kinds
    assert {n for a, r, n in kinds if r == "lambda function"} == {"asx-symbol-updater", "stock-data-fetcher"}
    assert {n for a, r, n in kinds if r == "iam role"} == ROLES == {
        "stockstream-lambda-ap-southeast-2", "stockstream-states-ap-southeast-2", "stockstream-schedule-ap-southeast-2"}
    assert {n for a, r, n in kinds if r == "cloudwatch alarm"} == ALARMS
    assert _client("s3").list_buckets()["Buckets"] == []
    assert _client("lambda").list_functions()["Functions"] == []
    assert _client("stepfunctions").list_state_machines()["stateMachines"] == []
    assert not [r for r in _client("iam").list_roles()["Roles"] if r["RoleName"].startswith("stockstream")]


def test_deploy_builds_the_pipeline_and_a_second_deploy_changes_nothing(moto_endpoint):
    first = _deploy_json()
    assert first["applied"] == len(first["changes"]) == FIRST_DEPLOY_STEPS and first["mutating_calls"] > FIRST_DEPLOY_STEPS
    _check_bucket()
    _check_functions(IMAGE_URI)
    _check_state_machine_rule_topic_alarms()

    second = _deploy_json()
    assert second["changes"] == [] and second["mutating_calls"] == 0
    human = run_stockstream("deploy", "--image-uri", IMAGE_URI)
    assert human.returncode == 0 and human.stdout.startswith("no changes")
    # no duplicates
    assert len(_client("stepfunctions").list_state_machines()["stateMachines"]) == 1
    assert len(_client("sns").list_topics()["Topics"]) == 1
    assert len(_client("lambda").list_functions()["Functions"]) == 2
    assert len(_client("events").list_targets_by_rule(Rule=res.SCHEDULE_RULE)["Targets"]) == 1
    groups = {g["logGroupName"]: g["retentionInDays"] for g in _client("logs").describe_log_groups()["logGroups"]}
    assert groups == {"/aws/lambda/asx-symbol-updater": 30, "/aws/lambda/stock-data-fetcher": 30,
                      "/aws/vendedlogs/states/stock-data-pipeline": 30}
    assert len(_client("cloudwatch").describe_alarms()["MetricAlarms"]) == 5


def _check_bucket() -> None:
    s3 = _client("s3")
    assert s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"] == res.PUBLIC_ACCESS_BLOCK
    rule = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    [statement] = json.loads(s3.get_bucket_policy(Bucket=BUCKET)["Policy"])["Statement"]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert _tags(s3.get_bucket_tagging(Bucket=BUCKET)["TagSet"]) == {"app": "stockstream"}


def _check_functions(image_uri: str) -> None:
    lam = _client("lambda")
    expected = {"asx-symbol-updater": (256, 300, "asx_symbol_updater.handler"),
                "stock-data-fetcher": (512, 900, "stock_data_fetcher.handler")}
    for name, (memory, timeout, handler) in expected.items():
        function = lam.get_function(FunctionName=name)
        config = function["Configuration"]
        assert (config["MemorySize"], config["Timeout"]) == (memory, timeout)
        assert config["PackageType"] == "Image" and function["Code"]["ImageUri"] == image_uri
        assert config["ImageConfigResponse"]["ImageConfig"]["Command"] == [handler]
        assert config["Architectures"] == ["arm64"]
        assert config["Role"] == f"arn:aws:iam::{ACCOUNT}:role/stockstream-lambda-{REGION}"
        assert config["Environment"]["Variables"] == {"STOCKSTREAM_STORE": f"s3://{BUCKET}",
                                                      "STOCKSTREAM_CACHE_DIR": "/tmp/stockstream-cache",
                                                      "STOCKSTREAM_BUCKET_OWNER": ACCOUNT,
                                                      "STOCKSTREAM_WORKERS": "1"}
        assert function["Tags"] == {"app": "stockstream"}


def _check_state_machine_rule_topic_alarms() -> None:
    sfn = _client("stepfunctions")
    [machine] = sfn.list_state_machines()["stateMachines"]
    described = sfn.describe_state_machine(stateMachineArn=machine["stateMachineArn"])
    assert json.loads(described["definition"]) == res.state_machine_definition(find_sources().asl_path.read_text(), TARGET)
    assert described["roleArn"].endswith(f":role/stockstream-states-{REGION}")
    assert described["loggingConfiguration"]["level"] == "ERROR"
    assert described["loggingConfiguration"]["destinations"][0]["cloudWatchLogsLogGroup"]["logGroupArn"] == (
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/vendedlogs/states/stock-data-pipeline:*")
    assert _tags(sfn.list_tags_for_resource(resourceArn=machine["stateMachineArn"])["tags"], "key", "value") == res.APP_TAG

    events = _client("events")
    rule = events.describe_rule(Name=res.SCHEDULE_RULE)
    assert rule["ScheduleExpression"] == "cron(0 20 * * ? *)" and rule["State"] == "ENABLED"
    [target] = events.list_targets_by_rule(Rule=res.SCHEDULE_RULE)["Targets"]
    assert target["Arn"] == machine["stateMachineArn"] and target["RoleArn"].endswith(f":role/stockstream-schedule-{REGION}")
    assert _tags(events.list_tags_for_resource(ResourceARN=rule["Arn"])["Tags"]) == res.APP_TAG

    sns = _client("sns")
    [topic] = sns.list_topics()["Topics"]
    assert topic["TopicArn"].endswith(":stock-stream-alerts")
    assert _tags(sns.list_tags_for_resource(ResourceArn=topic["TopicArn"])["Tags"]) == res.APP_TAG

    cloudwatch = _client("cloudwatch")
    alarms = {a["AlarmName"]: a for a in cloudwatch.describe_alarms()["MetricAlarms"]}
    assert set(alarms) == ALARMS
    assert all(a["AlarmActions"] == [topic["TopicArn"]] for a in alarms.values())
    assert alarms["stockstream-fetcher-duration"]["Threshold"] == 14 * 60 * 1000
    error_rate = {m["Id"]: m for m in alarms["stockstream-lambda-error-rate"]["Metrics"]}
    assert error_rate["errorrate"]["Expression"] == "100 * (errors1 + errors2) / (calls1 + calls2)"
    assert alarms["stockstream-lambda-error-rate"]["Threshold"] == 10
    success = alarms["stockstream-fetch-success-rate"]
    assert (success["Threshold"], success["ComparisonOperator"]) == (90, "LessThanThreshold")
    for alarm in alarms.values():
        assert _tags(cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"]) == res.APP_TAG
    widgets = json.loads(cloudwatch.get_dashboard(DashboardName=NAMES.dashboard)["DashboardBody"])["widgets"]
    assert len(widgets) == 6


def _deploy_in_process(**options) -> dict:
    options = {"image_uri": IMAGE_URI, **options}
    return deploy(DeployOptions(**options), sleep=lambda s: None, waiter_delay=1)


def test_a_changed_setting_updates_just_that_resource(moto_endpoint):
    _deploy_in_process()
    changed = _deploy_json("--schedule", "cron(0 21 * * ? *)")
    assert [(c["action"], c["resource"]) for c in changed["changes"]] == [("update", "schedule rule")]
    assert changed["mutating_calls"] == 1
    assert _client("events").describe_rule(Name=res.SCHEDULE_RULE)["ScheduleExpression"] == "cron(0 21 * * ? *)"

    new_image = IMAGE_URI.replace("test-1", "test-2")
    result = run_stockstream("deploy", "--image-uri", new_image, "--schedule", "cron(0 21 * * ? *)", "--json")
    changes = json.loads(result.stdout)["changes"]
    assert [(c["resource"], c["name"]) for c in changes] == [("lambda function", "asx-symbol-updater"),
                                                            ("lambda function", "stock-data-fetcher")]
    assert all(c["details"] == [f"image {new_image}"] for c in changes)
    _check_functions(new_image)

    email = _deploy_in_process(image_uri=new_image, schedule="cron(0 21 * * ? *)", alert_email="ops@example.com")
    assert [(c["resource"], c["name"]) for c in email["changes"]] == [("sns subscription", "ops@example.com")]
    subscriptions = _client("sns").list_subscriptions()["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [("email", "ops@example.com")]


def test_second_deploy_makes_no_mutating_call_counted_independently(moto_endpoint):
    options = DeployOptions(image_uri=IMAGE_URI)
    deploy(options, sleep=lambda s: None, waiter_delay=1)
    session = boto3.session.Session(region_name=REGION)
    counter = MutatingCalls(session)
    document = deploy(options, session=session, sleep=lambda s: None, waiter_delay=1)
    assert document["changes"] == [] and counter.operations == []


def test_destroy_removes_everything_but_the_bucket_and_its_data(moto_endpoint):
    _deploy_in_process()
    with pytest.raises(Exception, match="AccessDenied|Forbidden"):  # moto applies the Deny without its TLS condition
        _client("s3").put_object(Bucket=BUCKET, Key="raw-data/2026-11-25-batch-0.parquet", Body=b"data")
    allow_plain_http_in_moto(BUCKET)
    _client("s3").put_object(Bucket=BUCKET, Key="raw-data/2026-11-25-batch-0.parquet", Body=b"data")
    refused = run_stockstream("destroy")  # no terminal to confirm in
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert len(_client("lambda").list_functions()["Functions"]) == 2

    result = run_stockstream("destroy", "--yes", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    removed = {(c["resource"], c["name"]) for c in document["removed"]}
    assert ("state machine", "stock-data-pipeline") in removed and ("sns topic", "stock-stream-alerts") in removed
    assert len(removed) == 19 and document["kept"]["bucket"] == BUCKET  # + 3 log groups
    assert {("glue database", "stockstream"), ("athena workgroup", "stockstream")} <= removed
    assert _client("glue").get_databases()["DatabaseList"] == []
    assert [w["Name"] for w in _client("athena").list_work_groups()["WorkGroups"]] == ["primary"]
    assert _client("logs").describe_log_groups()["logGroups"] == []
    assert _client("lambda").list_functions()["Functions"] == []
    assert _client("stepfunctions").list_state_machines()["stateMachines"] == []
    assert _client("sns").list_topics()["Topics"] == []
    assert _client("cloudwatch").describe_alarms()["MetricAlarms"] == []
    assert _client("events").list_rules()["Rules"] == []
    assert not [r for r in _client("iam").list_roles()["Roles"] if r["RoleName"].startswith("stockstream")]
    assert _client("s3").get_object(Bucket=BUCKET, Key="raw-data/2026-11-25-batch-0.parquet")["Body"].read() == b"data"

    again = run_stockstream("destroy", "--yes")
    assert again.returncode == 0 and again.stdout.startswith("nothing to remove")
    redeploy = _deploy_in_process()  # the kept bucket is adopted, its missing policy put back
    bucket_changes = [c["details"] for c in redeploy["changes"] if c["resource"] == "s3 bucket"]
    assert bucket_changes == [["deny non-TLS requests (bucket policy)"]]


# ---------------------------------------------------------------- configuration errors: exit 2, nothing sent


def test_no_region_exits_2_with_the_fix(moto_endpoint):
    env = {k: v for k, v in os.environ.items() if k not in {"AWS_DEFAULT_REGION", "AWS_REGION"}}
    os.environ.pop("AWS_DEFAULT_REGION")
    result = run_stockstream("deploy", "--image-uri", IMAGE_URI, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--region" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--bucket", "Not_A_Bucket"], "--bucket"),
    (["--alert-email", "nobody"], "--alert-email"),
    (["--schedule", "daily"], "--schedule"),
    (["--arch", "sparc"], "--arch"),
])
def test_bad_options_exit_2(moto_endpoint, args, message):
    result = run_stockstream("deploy", "--image-uri", IMAGE_URI, *args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert _client("s3").list_buckets()["Buckets"] == []


def test_without_an_engine_or_image_uri_deploy_exits_2_saying_what_to_do(moto_endpoint):
    """This machine has a docker client but no engine: that must count as no Docker."""
    if image_module.find_engine() is not None:
        pytest.skip("a container engine is running here")
    result = run_stockstream("deploy")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"stockstream: error: {image_module.NoEngine().naming(flag)}"]
    assert result.stderr.strip().endswith("push it to ECR and pass --image-uri URI")


# ---------------------------------------------------------------- the image


def test_find_engine_needs_a_working_engine_not_just_a_client():
    class Result:
        def __init__(self, code):
            self.returncode = code

    answers = {"docker": 1, "podman": 0}
    run = lambda command, **kw: Result(answers[command[0]])  # noqa: E731
    assert image_module.find_engine(run=run, which=lambda name: f"/usr/bin/{name}") == "podman"
    assert image_module.find_engine(run=run, which=lambda name: "/usr/bin/docker" if name == "docker" else None) is None
    answers["docker"] = 0
    assert image_module.find_engine(run=run, which=lambda name: f"/usr/bin/{name}") == "docker"


def test_the_dockerfile_installs_the_locked_dependencies_then_the_project_on_the_lambda_python_312_image():
    text = find_sources().dockerfile.read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert instructions[0] == "FROM public.ecr.aws/lambda/python:3.12"
    run = " ".join(text.split("RUN ", 1)[1].split("\n\n", 1)[0].replace("\\\n", " ").split())
    assert run.startswith("pip install --no-cache-dir --require-hashes -r infra/requirements.lock.txt "
                          "&& pip install --no-cache-dir --no-deps . ")
    assert "COPY lambda_src/asx_symbol_updater.py lambda_src/stock_data_fetcher.py ${LAMBDA_TASK_ROOT}/" in instructions
    files = image_module.context_files(find_sources())
    for copied in ("pyproject.toml", "README.md", "stockstream_cli/cli.py", "stockstream_cli/fetch/batch.py",
                   "lambda_src/stock_data_fetcher.py", "infra/asl.json", "infra/requirements.lock.txt", "Dockerfile"):
        assert copied in files


def test_image_tag_follows_the_content_and_the_architecture():
    files = image_module.context_files(find_sources())
    tag = image_module.content_tag(files, "arm64")
    assert tag == image_module.content_tag(dict(files), "arm64") and tag.startswith("arm64-")
    assert image_module.content_tag(files, "x86_64") != tag
    assert image_module.content_tag({**files, "stockstream_cli/fetch/batch.py": b"changed"}, "arm64") != tag
    assert image_module.content_tag({**files, "infra/requirements.lock.txt": b"pandas==3.0.0"}, "arm64") != tag


def test_installed_package_gets_a_pyproject_with_the_same_dependencies():
    text = image_module.pyproject_from_metadata()
    import tomllib

    generated = tomllib.loads(text)
    with open(find_sources().project_root / "pyproject.toml", "rb") as handle:
        real = tomllib.load(handle)
    assert sorted(generated["project"]["dependencies"]) == sorted(real["project"]["dependencies"])
    assert generated["tool"]["setuptools"]["package-dir"] == real["tool"]["setuptools"]["package-dir"]


def test_built_images_are_pushed_once_and_an_unchanged_build_deploys_nothing(moto_endpoint, monkeypatch):
    """With an engine, deploy builds and pushes to its ECR repository; the content tag then matches."""
    pushed = []

    def fake_build_and_push(engine, files, image_uri, arch, ecr):
        repository, tag = image_uri.rsplit("/", 1)[1].split(":")
        manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                               "config": {"digest": "sha256:" + "0" * 64}, "layers": []})
        ecr.put_image(repositoryName=repository, imageManifest=manifest, imageTag=tag)
        pushed.append((engine, image_uri, arch, sorted(files)))

    monkeypatch.setattr("stockstream_cli.aws.image.build_and_push", fake_build_and_push)
    options = DeployOptions(arch="arm64")
    first = deploy(options, sleep=lambda s: None, waiter_delay=1, engine_finder=lambda: "podman")
    resources = [(c["action"], c["resource"]) for c in first["changes"]]
    assert resources[:2] == [("create", "ecr repository"), ("create", "lambda image")]
    [(engine, uri, arch, files)] = pushed
    assert (engine, arch) == ("podman", "arm64") and "Dockerfile" in files
    assert uri == first["image_uri"] and re.search(r"/stockstream-lambda:arm64-[0-9a-f]{24}$", uri)
    _check_functions(uri)
    repo = _client("ecr").describe_repositories(repositoryNames=["stockstream-lambda"])["repositories"][0]
    assert _tags(_client("ecr").list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]) == res.APP_TAG
    again = deploy(options, sleep=lambda s: None, waiter_delay=1, engine_finder=lambda: "podman")
    assert again["changes"] == [] and again["mutating_calls"] == 0 and len(pushed) == 1


def test_a_new_role_is_retried_while_it_propagates(moto_endpoint):
    """Real IAM takes seconds before Lambda can assume a new role; moto never shows it, so inject it."""
    session = boto3.session.Session(region_name=REGION)
    refusals = {"left": 2}

    class Http:
        status_code = 400

    def refuse_while_propagating(model=None, **_):
        if model.name == "CreateFunction" and refusals["left"]:
            refusals["left"] -= 1
            return Http(), {"Error": {"Code": "InvalidParameterValueException",
                                      "Message": "The role defined for the function cannot be assumed by Lambda."},
                            "ResponseMetadata": {"HTTPStatusCode": 400}}
        return None

    session.events.register("before-call.lambda.CreateFunction", refuse_while_propagating)
    waits = []
    document = deploy(DeployOptions(image_uri=IMAGE_URI), session=session, sleep=waits.append, waiter_delay=1)
    assert document["applied"] == FIRST_DEPLOY_STEPS and refusals["left"] == 0
    assert waits == [2.0, 3.0]
    assert len(_client("lambda").list_functions()["Functions"]) == 2


# ---------------------------------------------------------------- IAM: structure, then enforcement


def _statements(policy: dict) -> list[dict]:
    return policy["Statement"]


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


TRACED_KMS = dataclasses.replace(TARGET, tracing=True, kms_key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234")
# Actions AWS does not let a resource scope (its own documented policies use "*" for them)
UNSCOPABLE = {"logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
              "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
              "logs:DescribeLogGroups", "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
              "xray:GetSamplingTargets"}


@pytest.mark.parametrize("policy", [res.lambda_role_policy(TRACED_KMS), res.states_role_policy(TRACED_KMS),
                                    res.schedule_role_policy(TARGET), res.bucket_policy(TARGET)])
def test_no_policy_allows_every_action_or_any_resource_it_could_scope(policy):
    for statement in _statements(policy):
        actions = _as_list(statement["Action"])
        assert "*" not in actions and not any(a.endswith(":*") for a in actions if statement["Effect"] == "Allow")
        assert "cloudwatch:PutMetricData" not in actions  # metrics go out as EMF log lines
        if statement["Effect"] == "Allow" and "*" in _as_list(statement["Resource"]):
            assert set(actions) <= UNSCOPABLE, statement["Sid"]


def test_lambda_role_reads_and_writes_only_the_data_keys():
    statements = {s["Sid"]: s for s in _statements(res.lambda_role_policy(TARGET))}
    data = statements["ReadWriteDataKeys"]
    assert sorted(data["Action"]) == ["s3:GetObject", "s3:PutObject"]
    assert data["Resource"] == [f"arn:aws:s3:::{BUCKET}/symbols/*", f"arn:aws:s3:::{BUCKET}/raw-data/*",
                                f"arn:aws:s3:::{BUCKET}/runs/*", f"arn:aws:s3:::{BUCKET}/actions/*",
                                f"arn:aws:s3:::{BUCKET}/locks/*", f"arn:aws:s3:::{BUCKET}/repairs/*",
                                f"arn:aws:s3:::{BUCKET}/suspicions/*"]
    assert statements["ListDataBucket"]["Resource"] == f"arn:aws:s3:::{BUCKET}"
    # only compaction deletes, and only the batch files it folded in (raw-data/)
    assert statements["DeleteCompactedBatchFiles"]["Action"] == "s3:DeleteObject"
    assert statements["DeleteCompactedBatchFiles"]["Resource"] == f"arn:aws:s3:::{BUCKET}/raw-data/*"
    assert statements["OwnLogs"]["Resource"] == [
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/asx-symbol-updater:*",
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/stock-data-fetcher:*",
    ]


def test_state_machine_and_schedule_roles_reach_only_their_targets():
    states = _statements(res.states_role_policy(TARGET))
    invoke = next(s for s in states if s["Action"] == "lambda:InvokeFunction")
    functions = {r.removesuffix(":*") for r in invoke["Resource"]}
    assert functions == {f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:asx-symbol-updater",
                         f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:stock-data-fetcher"}
    publish = next(s for s in states if s["Action"] == "sns:Publish")
    assert publish["Resource"] == f"arn:aws:sns:{REGION}:{ACCOUNT}:stock-stream-alerts"
    [start] = _statements(res.schedule_role_policy(TARGET))
    assert (start["Action"], start["Resource"]) == ("states:StartExecution", TARGET.state_machine_arn)
    assert res.trust_policy("lambda.amazonaws.com")["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}


def test_moto_enforces_that_the_fetchers_role_stays_inside_its_keys():
    """With IAM enforcement on, credentials of the Lambda role may use symbols/, raw-data/, runs/ only."""
    from botocore.exceptions import ClientError
    from moto import mock_aws
    from moto.core import set_initial_no_auth_action_count

    @set_initial_no_auth_action_count(5)  # the setup below runs unauthenticated; everything after is checked
    @mock_aws
    def scenario():
        s3 = boto3.client("s3", region_name=REGION)
        iam = boto3.client("iam", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_object(Bucket=BUCKET, Key="private/secret.txt", Body=b"secret")
        role = iam.create_role(RoleName=NAMES.lambda_role,
                               AssumeRolePolicyDocument=json.dumps(res.trust_policy("lambda.amazonaws.com")))["Role"]
        iam.put_role_policy(RoleName=NAMES.lambda_role, PolicyName=res.ROLE_POLICY,
                            PolicyDocument=json.dumps(with_moto_action_names(res.lambda_role_policy(TARGET))))
        credentials = boto3.client("sts", region_name=REGION).assume_role(
            RoleArn=role["Arn"], RoleSessionName="fetcher")["Credentials"]
        as_fetcher = boto3.client("s3", region_name=REGION, aws_access_key_id=credentials["AccessKeyId"],
                                  aws_secret_access_key=credentials["SecretAccessKey"],
                                  aws_session_token=credentials["SessionToken"])
        for key in ("symbols/2026-11-25-symbols.csv", "raw-data/2026-11-25-batch-0.parquet", "runs/2026-11-25/batch-0.json"):
            as_fetcher.put_object(Bucket=BUCKET, Key=key, Body=b"ok")
            assert as_fetcher.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"ok"
        assert len(as_fetcher.list_objects_v2(Bucket=BUCKET)["Contents"]) == 4
        denied = []
        for attempt in (lambda: as_fetcher.get_object(Bucket=BUCKET, Key="private/secret.txt"),
                        lambda: as_fetcher.put_object(Bucket=BUCKET, Key="private/new.txt", Body=b"x"),
                        lambda: as_fetcher.put_object(Bucket=BUCKET, Key="symbols.csv", Body=b"x"),
                        lambda: as_fetcher.delete_object(Bucket=BUCKET, Key="runs/2026-11-25/batch-0.json"),
                        lambda: as_fetcher.delete_object(Bucket=BUCKET, Key="symbols/2026-11-25-symbols.csv"),
                        lambda: as_fetcher.delete_bucket_policy(Bucket=BUCKET)):
            with pytest.raises(ClientError) as refused:
                attempt()
            denied.append(refused.value.response["Error"]["Code"])
        assert denied == ["AccessDenied"] * 6
        # compaction deletes the batch files it folded in: raw-data/ only
        as_fetcher.delete_object(Bucket=BUCKET, Key="raw-data/2026-11-25-batch-0.parquet")

    scenario()


def test_deploy_options_are_checked_before_anything_is_sent():
    with pytest.raises(InputError, match="^image_uri"):
        DeployOptions(image_uri="not an image").check()
    DeployOptions(image_uri=IMAGE_URI, bucket="my-data.bucket", alert_email="a@b.co", schedule="rate(1 day)").check()
