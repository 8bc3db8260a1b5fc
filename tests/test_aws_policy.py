"""The deployer's own IAM policy (`deploy --print-policy`), kept true.

First, as data: every boto3 call that `deploy` (a first and a second), `run-remote`, `rerun-failed --remote`,
`status --remote`, `logs`, a deploy that builds its image into a bucket of the user's choosing, and `destroy`
(of a stage, of the default stack with its roles from before stages, in a second region) make is turned into
what AWS authorizes it on (tests/iam_oracle.py: the action, the resource ARN, and the actions AWS authorizes
implicitly: iam:PassRole, tagging at creation, logs delivery, the image push), and the policy printed for that
command's region, stage and bucket is evaluated against each pair with moto's IAM evaluator, as printed.

Then a replay on moto with its request-level enforcement on: moto knows the resource of a request only for IAM
(the role it names) and S3, and checks every other service's against "*", so the replay keeps the IAM and S3
statements' resources as printed and widens the others' to "*" (the check as data covers those).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import threading

import boto3
import pytest

from asx_fake import markit_csv, serving
from aws_fake import (IMAGE_URI, POLL, REGION, InProcessLambdas, allow_plain_http_in_moto, iso_execution_start_time,
                      no_retry_intervals, poll_pause, run_state_machines, with_moto_action_names)
from helpers import run_stockstream
from iam_oracle import Need, Where, denied, needs_of_call, needs_of_push
from stockstream_cli.aws import resources as res

ACCOUNT = "123456789012"
OTHER_REGION = "us-east-1"
DAY = dt.date(2026, 11, 25)
CODES = ["AAA", "BBB", "CCC", "DDD"]  # batches of 2: [AAA BBB] [CCC DDD]
OWN_BUCKET = "acme-market-data"  # a --bucket nothing like stockstream's default name
# the services whose requests moto authorizes on the resource they name
RESOURCE_SEEN_BY_MOTO = ("s3", "iam")


def test_print_policy_prints_the_policy_as_json():
    result = run_stockstream("deploy", "--print-policy", "--region", REGION)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == res.deployer_policy(region=REGION)
    staged = json.loads(run_stockstream("deploy", "--print-policy", "--region", REGION, "--stage", "prod").stdout)
    assert staged == res.deployer_policy(region=REGION, stage="prod")


def _printed_policy(region: str, stage: str | None = None, bucket: str | None = None) -> dict:
    args = ["--region", region] + (["--stage", stage] if stage else []) + (["--bucket", bucket] if bucket else [])
    result = run_stockstream("deploy", "--print-policy", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


class CallRecorder:
    """Every boto3 call made on the test's own thread, under the command it belongs to. The deployed functions
    run on moto's threads (the state machine invokes them there): their calls are their role's, not the user's.
    The commands checked make theirs on the calling thread (none of them reads the store with a thread pool);
    `test_every_call...` asserts the calls it means them to make were seen."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, dict, str]] = []  # (command, service, operation, params, region)
        self.command: str | None = None

    def install(self, monkeypatch) -> "CallRecorder":
        import botocore.client

        original = botocore.client.BaseClient._make_api_call
        recorder, main = self, threading.current_thread()

        def _make_api_call(client, operation_name, api_params):
            if recorder.command and threading.current_thread() is main:
                recorder.calls.append((recorder.command, client.meta.service_model.service_name, operation_name,
                                       json.loads(json.dumps(api_params, default=str)), client.meta.region_name))
            return original(client, operation_name, api_params)

        monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", _make_api_call)
        return self

    def recording(self, command: str):
        import contextlib

        @contextlib.contextmanager
        def scope():
            self.command = command
            try:
                yield
            finally:
                self.command = None
        return scope()

    def operations(self, command: str) -> set[str]:
        return {f"{service}:{operation}" for c, service, operation, _, _ in self.calls if c == command}


def _roles_from_before_stages() -> None:
    """The account-wide roles an earlier stockstream made, naming REGION, one with a managed policy attached
    (by its user, say, for X-Ray)."""
    iam = boto3.client("iam", region_name=REGION)
    target = res.Target(account=ACCOUNT, region=REGION, bucket="b", image_uri=IMAGE_URI)
    for name in res.LEGACY_ROLES:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(res.trust_policy("lambda.amazonaws.com")))
        iam.put_role_policy(RoleName=name, PolicyName="stockstream", PolicyDocument=json.dumps(res.states_role_policy(target)))
    tracing = iam.create_policy(PolicyName="stockstream-xray", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["xray:PutTraceSegments"], "Resource": "*"}]}))
    iam.attach_role_policy(RoleName=res.LEGACY_ROLES[0], PolicyArn=tracing["Policy"]["Arn"])


def _fake_push(pushed: list[str]):
    """What build_and_push does against ECR, with put_image standing in for the engine's push."""
    from stockstream_cli.aws import image as image_module

    def push(engine, files, image_uri, arch, ecr):
        repository, tag = image_uri.rsplit("/", 1)[1].split(":")
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                    "config": {"digest": "sha256:" + "0" * 64, "size": 1}, "layers": []}
        ecr.get_authorization_token()
        ecr.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag)
        image_module.check_pushed_manifest(ecr, image_uri)
        pushed.append(image_uri)

    return push


def _pushes(document: dict) -> list[str]:
    """The image URIs a deploy's plan built and pushed (its BuildImage instructions)."""
    from stockstream_cli.aws.plan import BuildImage, step_from_dict

    return [i.image_uri for s in document["changes"] for i in step_from_dict(s).instructions if isinstance(i, BuildImage)]


@pytest.fixture
def every_command_recorded(moto_endpoint, monkeypatch, fake_yahoo):
    """Each AWS command run once as a user would, against moto, the state machine executing for real; yields
    the recorder, the images pushed, and for each command the (region, stage, bucket) its policy is printed for."""
    from stockstream_cli.aws import image as image_module
    from stockstream_cli.aws.deploy import DeployOptions, deploy
    from stockstream_cli.aws.destroy import destroy
    from stockstream_cli.aws.remote import read_logs, remote_status, rerun_remote, start_remote

    recorder = CallRecorder().install(monkeypatch)
    _roles_from_before_stages()
    run_state_machines(moto_endpoint)
    no_retry_intervals(monkeypatch)
    iso_execution_start_time(monkeypatch)
    InProcessLambdas().install(monkeypatch)
    pushed: list[str] = []
    monkeypatch.setattr(image_module, "build_and_push", _fake_push(pushed))
    quick = {"sleep": lambda s: None, "waiter_delay": 1}
    default, built = (REGION, None, None), (REGION, "built", OWN_BUCKET)
    policies = {"deploy": default, "deploy (second)": default, "run-remote": default, "rerun-failed --remote": default,
                "status --remote": default, "logs": default, "deploy --stage built --bucket": built,
                "destroy --stage built": built, "destroy (second region)": (OTHER_REGION, None, None),
                "destroy": default}
    documents = {}

    with recorder.recording("deploy"):
        documents["deploy"] = deploy(DeployOptions(image_uri=IMAGE_URI), **quick)
    with recorder.recording("deploy (second)"):
        assert deploy(DeployOptions(image_uri=IMAGE_URI), **quick)["changes"] == []
    allow_plain_http_in_moto(documents["deploy"]["bucket"])
    monkeypatch.setenv("STOCKSTREAM_STORE", documents["deploy"]["store"])
    monkeypatch.setenv("STOCKSTREAM_BATCH_SIZE", "2")
    with serving(markit_csv(CODES)) as url:
        monkeypatch.setenv("STOCKSTREAM_SOURCE_URL", url)
        fake_yahoo.fault("CCC", "rate_limited").fault("DDD", "rate_limited")  # batch 1 fails
        with recorder.recording("run-remote"):
            assert start_remote(DAY, wait=True, poll_interval=POLL, sleep=poll_pause)["batches_failed"] == [1]
        fake_yahoo.clear_faults()
        with recorder.recording("rerun-failed --remote"):
            assert rerun_remote(DAY, poll_interval=POLL, sleep=poll_pause)["execution_status"] == "SUCCEEDED"
    with recorder.recording("status --remote"):
        assert len(remote_status(limit=5)["executions"]) == 2
    with recorder.recording("logs"):
        read_logs(since="1d", on_event=lambda event: None)
    with recorder.recording("deploy --stage built --bucket"):
        documents["deploy --stage built --bucket"] = deploy(
            DeployOptions(stage="built", bucket=OWN_BUCKET, arch="arm64"), engine_finder=lambda: "podman", **quick)
    assert pushed
    with recorder.recording("destroy --stage built"):
        destroy(stage="built")
    with recorder.recording("destroy (second region)"):
        assert destroy(region=OTHER_REGION)["removed"] == []  # the roles from before stages name REGION
    with recorder.recording("destroy"):
        removed = [s["name"] for s in destroy()["removed"]]
    assert set(res.LEGACY_ROLES) <= set(removed)
    yield {"recorder": recorder, "pushes": {c: _pushes(d) for c, d in documents.items()}, "policies": policies}


def test_every_call_of_every_aws_command_is_granted_by_the_policy_deploy_prints(every_command_recorded):
    recorder, pushes = every_command_recorded["recorder"], every_command_recorded["pushes"]
    printed = {args: _printed_policy(*args) for args in set(every_command_recorded["policies"].values())}
    refused, checked = [], 0
    for command, args in every_command_recorded["policies"].items():
        calls = [c for c in recorder.calls if c[0] == command]
        assert calls, f"{command} made no call"
        needs: list[tuple[str, Need]] = []
        for _, service, operation, params, region in calls:
            where = Where("aws", ACCOUNT, region)
            needs += [(f"{service}.{operation}", need) for need in needs_of_call(where, service, operation, params)]
        needs += [("image push", need) for uri in pushes.get(command, ())
                  for need in needs_of_push(Where("aws", ACCOUNT, args[0]), uri)]
        checked += len(needs)
        refused += [f"{command}: {call} needs {need.action} on {need.resource}"
                    for call, need in needs if denied(printed[args], [need])]
    assert refused == [], "\n".join(refused)
    assert checked > 300
    # what the commands were meant to exercise, they did
    assert "s3:CreateBucket" in recorder.operations("deploy --stage built --bucket")
    assert {"iam:GetRole", "iam:GetRolePolicy"} <= recorder.operations("destroy (second region)")
    assert "iam:DetachRolePolicy" in recorder.operations("destroy")
    assert {"s3:GetObject", "s3:PutObject", "states:StartExecution"} <= {
        op.replace("stepfunctions:", "states:") for op in recorder.operations("rerun-failed --remote")}
    assert "logs:FilterLogEvents" in recorder.operations("logs")
    assert pushes["deploy --stage built --bucket"]
    assert {"glue:CreateDatabase", "glue:CreateTable", "athena:CreateWorkGroup",
            "s3:PutBucketLifecycleConfiguration"} <= recorder.operations("deploy --stage built --bucket")
    assert {"glue:DeleteTable", "glue:DeleteDatabase", "athena:DeleteWorkGroup"} <= recorder.operations("destroy")


def test_the_evaluator_refuses_what_a_policy_does_not_grant():
    """The check above can fail: a statement left out, a resource outside the pattern, the wrong service."""
    policy = res.deployer_policy(region=REGION)
    where = Where("aws", ACCOUNT, REGION)
    create = needs_of_call(where, "lambda", "CreateFunction", {
        "FunctionName": "stock-data-fetcher", "Role": f"arn:aws:iam::{ACCOUNT}:role/stockstream-lambda-{REGION}",
        "Tags": {"app": "stockstream"}})
    assert [n.action for n in create] == ["lambda:CreateFunction", "lambda:TagResource", "iam:PassRole"]
    assert denied(policy, create) == []
    without_functions = {**policy, "Statement": [s for s in policy["Statement"] if s["Sid"] != "Functions"]}
    assert [n.action for n in denied(without_functions, create)] == ["lambda:CreateFunction", "lambda:TagResource"]
    elsewhere = needs_of_call(where, "lambda", "GetFunction", {"FunctionName": "someone-elses-function"})
    assert denied(policy, elsewhere) == elsewhere
    to_another_service = [Need("iam:PassRole", create[2].resource, (("iam:PassedToService", "ec2.amazonaws.com"),))]
    assert denied(policy, to_another_service) == to_another_service
    with pytest.raises(KeyError, match="no rule for lambda:Invoke"):
        needs_of_call(where, "lambda", "Invoke", {"FunctionName": "stock-data-fetcher"})


def _as_moto_sees_it(policy: dict) -> dict:
    """The printed policy for the replay on moto: moto's action names beside IAM's (aws_fake), and "*" as
    the Resource of the statements of services whose requests moto checks against "*"."""
    statements = []
    for statement in with_moto_action_names(policy)["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if not all(a.split(":")[0] in RESOURCE_SEEN_BY_MOTO for a in actions):
            statement = {**statement, "Resource": "*"}
        statements.append(statement)
    return {**policy, "Statement": statements}


def test_a_deploy_and_a_destroy_need_nothing_the_printed_policy_does_not_grant(monkeypatch):
    from moto import mock_aws
    from moto.core import set_initial_no_auth_action_count
    from moto.iam.access_control import IAMRequest

    # moto 5.2 miscomputes the SigV4 signature of Lambda's REST requests (every one is SignatureDoesNotMatch
    # once enforcement is on); this test is about what the policy authorises, so signatures are not checked
    monkeypatch.setattr(IAMRequest, "check_signature", lambda self: None)
    # moto authorizes a request on a role that does not exist yet (CreateRole, the first GetRole) on "*":
    # name the role's ARN, as IAM does, so the Roles statement's resource is checked on every role request
    from moto.iam.responses import IamResponse

    monkeypatch.setattr(IamResponse, "_resolve_resource_arn",
                        lambda self, role_name: f"arn:{self.partition}:iam::{self.current_account}:role/{role_name}")

    from stockstream_cli.aws.deploy import DeployOptions, deploy
    from stockstream_cli.aws.destroy import destroy

    from stockstream_cli.aws import image as image_module

    pushed: list[str] = []
    monkeypatch.setattr(image_module, "build_and_push", _fake_push(pushed))
    narrowed = _as_moto_sees_it(_printed_policy(REGION))
    narrowed["Statement"] = [s for s in narrowed["Statement"] if s["Sid"] != "Functions"]

    other_stage = _as_moto_sees_it(_printed_policy(REGION, "other"))

    @set_initial_no_auth_action_count(9)  # three users, their policies and keys are made unchecked; then all is
    @mock_aws
    def scenario():
        from stockstream_cli.errors import AwsError

        iam = boto3.client("iam", region_name=REGION)
        sessions = {}
        for user, policy in (("deployer", _as_moto_sees_it(_printed_policy(REGION))), ("narrow", narrowed),
                             ("other-stage", other_stage)):
            iam.create_user(UserName=user)
            iam.put_user_policy(UserName=user, PolicyName="stockstream-deployer", PolicyDocument=json.dumps(policy))
            key = iam.create_access_key(UserName=user)["AccessKey"]
            sessions[user] = boto3.session.Session(aws_access_key_id=key["AccessKeyId"],
                                                   aws_secret_access_key=key["SecretAccessKey"], region_name=REGION)
        as_deployer = sessions["deployer"]
        first = deploy(DeployOptions(image_uri=IMAGE_URI), session=as_deployer, sleep=lambda s: None, waiter_delay=1)
        assert first["applied"] == 25  # 18, and the lifecycle rule, the database, its 4 tables, the workgroup
        again = deploy(DeployOptions(image_uri=IMAGE_URI), session=as_deployer, sleep=lambda s: None, waiter_delay=1)
        assert again["changes"] == []
        gone = destroy(session=as_deployer)
        assert len(gone["removed"]) == 19  # 13, and the workgroup, the 4 tables, the database
        # a deploy that builds: the repository, its policies, the push (as the fake engine does it), the check
        built = deploy(DeployOptions(stage="built", arch="arm64"), session=as_deployer, sleep=lambda s: None,
                       waiter_delay=1, engine_finder=lambda: "podman")
        assert [c["resource"] for c in built["changes"][:2]] == ["ecr repository", "lambda image"] and pushed
        assert len(destroy(session=as_deployer, stage="built")["removed"]) == 20  # and the repository
        # and the enforcement is real: without the Functions statement the same deploy is refused
        with pytest.raises(AwsError, match="not authorized to perform: lambda:GetFunction"):
            deploy(DeployOptions(image_uri=IMAGE_URI), session=sessions["narrow"], sleep=lambda s: None, waiter_delay=1)
        # and so is the resource of a role request: another stage's policy cannot read this stage's roles
        with pytest.raises(AwsError, match="not authorized to perform: iam:GetRole"):
            deploy(DeployOptions(image_uri=IMAGE_URI), session=sessions["other-stage"], sleep=lambda s: None, waiter_delay=1)

    scenario()


@pytest.mark.parametrize("stage", [None, "prod"])
def test_every_scoped_resource_pattern_covers_the_stages_own_arns(stage):
    target = res.Target(account=ACCOUNT, region=REGION, stage=stage, image_uri=IMAGE_URI,
                        bucket=res.default_bucket(ACCOUNT, REGION, stage))
    names = target.names
    policy = res.deployer_policy(account=ACCOUNT, region=REGION, stage=stage)
    by_sid = {s["Sid"]: s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]] for s in policy["Statement"]}
    wanted = {
        "Bucket": [target.bucket_arn],
        "Roles": [target.role_arn(n) for n in (names.lambda_role, names.states_role, names.schedule_role)],
        "PassRoles": [target.role_arn(names.lambda_role)],
        "Functions": [target.function_arn(n) for n in names.functions],
        "StateMachine": [target.state_machine_arn],
        "Schedule": [target.rule_arn],
        "Topic": [target.topic_arn],
        "Alarms": [target.arn("cloudwatch", f"alarm:{a['AlarmName']}") for a in res.alarms(target)],
        "Dashboards": [target.arn("cloudwatch", f"dashboard/{names.dashboard}", regional=False)],
        "LogGroups": [target.log_group_arn(g) for g in names.log_groups],
        "ImageRepository": [target.repository_arn],
        "Catalog": [target.arn("glue", "catalog"), target.arn("glue", f"database/{names.database}"),
                    target.arn("glue", f"table/{names.database}/prices")],
        "Workgroup": [target.arn("athena", f"workgroup/{names.workgroup}")],
    }
    for sid, arns in wanted.items():
        for arn in arns:
            assert any(fnmatch.fnmatchcase(arn, pattern) for pattern in by_sid[sid]), (sid, arn)
    # a stage's policy does not reach the default stack's roles, nor the roles named before stages
    if stage:
        default_role = target.role_arn(res.Names(None, REGION).lambda_role)
        assert not any(fnmatch.fnmatchcase(default_role, p) for p in by_sid["Roles"])
        assert "RolesBeforeStages" not in by_sid
    else:
        assert by_sid["RolesBeforeStages"] == [target.role_arn(name) for name in res.LEGACY_ROLES]


def test_print_policy_with_a_bucket_scopes_the_bucket_statements_to_that_bucket():
    printed = _printed_policy(REGION, bucket=OWN_BUCKET)
    by_sid = {s["Sid"]: s["Resource"] for s in printed["Statement"]}
    assert by_sid["Bucket"] == f"arn:aws:s3:::{OWN_BUCKET}"
    assert by_sid["Data"] == [f"arn:aws:s3:::{OWN_BUCKET}/{prefix}/*" for prefix in ("symbols", "raw-data", "runs")]
    assert by_sid["RunRecords"] == f"arn:aws:s3:::{OWN_BUCKET}/runs/*"
    assert not any("stockstream-data" in json.dumps(s) for s in printed["Statement"])
    refused = run_stockstream("deploy", "--print-policy", "--bucket", "Not_A_Bucket")
    assert refused.returncode == 2 and "--bucket 'Not_A_Bucket'" in refused.stderr and not refused.stdout


@pytest.mark.parametrize("stage", [None, "prod"])
def test_the_printed_policy_lets_its_user_run_the_readmes_athena_query(stage):
    """`SELECT * FROM <db>.prices WHERE symbol = 'BHP' ORDER BY date` in the stage's workgroup: Athena asks the
    caller for the query in the workgroup, the catalog's view and table, the files, and the results' prefix."""
    names, bucket = res.Names(stage, REGION), res.default_bucket(ACCOUNT, REGION, stage)
    where = Where("aws", ACCOUNT, REGION)
    workgroup = where.arn("athena", f"workgroup/{names.workgroup}")
    needs = needs_of_call(where, "athena", "StartQueryExecution", {
        "QueryString": f"SELECT * FROM {names.database}.prices WHERE symbol = 'BHP' ORDER BY date",
        "WorkGroup": names.workgroup})
    needs += [Need(f"athena:{action}", workgroup) for action in ("GetQueryExecution", "GetQueryResults")]
    for table in ("prices", "raw_prices"):
        needs += needs_of_call(where, "glue", "GetTable", {"DatabaseName": names.database, "Name": table})
    needs += needs_of_call(where, "glue", "GetDatabase", {"Name": names.database})
    needs += [Need("s3:ListBucket", f"arn:aws:s3:::{bucket}"), Need("s3:GetBucketLocation", f"arn:aws:s3:::{bucket}"),
              Need("s3:GetObject", f"arn:aws:s3:::{bucket}/raw-data/2026-11-25-batch-0.parquet"),
              Need("s3:PutObject", f"arn:aws:s3:::{bucket}/athena-results/{names.workgroup}/q.csv"),
              Need("s3:GetObject", f"arn:aws:s3:::{bucket}/athena-results/{names.workgroup}/q.csv")]
    policy = res.deployer_policy(account=ACCOUNT, region=REGION, stage=stage)
    assert denied(policy, needs) == []
    without = {**policy, "Statement": [s for s in policy["Statement"] if s["Sid"] != "QueryResults"]}
    assert [n.action for n in denied(without, needs)] == ["s3:PutObject", "s3:GetObject"]


def test_a_poisoned_image_tag_can_be_deleted_under_the_printed_policy():
    """The planner deletes an image Lambda cannot run before building again (ecr.BatchDeleteImage); the replay
    above never meets one, so this call is checked on its own."""
    where = Where("aws", ACCOUNT, REGION)
    needs = needs_of_call(where, "ecr", "BatchDeleteImage",
                          {"repositoryName": res.ECR_REPOSITORY, "imageIds": [{"imageTag": "0123abcd"}]})
    assert [n.action for n in needs] == ["ecr:BatchDeleteImage"]
    assert denied(res.deployer_policy(region=REGION), needs) == []
