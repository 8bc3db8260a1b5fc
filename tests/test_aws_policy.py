"""The deployer's own IAM policy (`deploy --print-policy`), kept true: a deploy, a second deploy and a destroy
replayed as a user holding only that policy, with moto's IAM enforcement on.

moto enforces the action of every call, and the resource only for S3 (other services it checks mostly
against "*"), and it evaluates no conditions. So the replay checks every action deploy and destroy use; a
second test checks each scoped Resource pattern covers the ARNs of the stage's real names.
"""

from __future__ import annotations

import fnmatch
import json

import boto3
import pytest

from aws_support import IMAGE_URI, REGION
from helpers import run_stockstream
from stockstream_cli.aws import resources as res

ACCOUNT = "123456789012"
# moto checks the resource of S3 requests (bucket and key ARNs); of IAM ones only for a role that exists already
# (a new role's request is checked against "*"); of the rest never. Only S3's Resource is kept as written.
NOT_CHECKED_BY_MOTO = ("s3",)
# moto authorises some S3 requests under names IAM does not use (its ACTION_MAP): the IAM action, and moto's name
MOTO_S3_NAMES = {"s3:ListBucket": ["s3:HeadBucket"], "s3:GetBucketPublicAccessBlock": ["s3:GetPublicAccessBlock"],
                 "s3:PutBucketPublicAccessBlock": ["s3:PutPublicAccessBlock"]}

# ... and some services under their endpoint's name rather than IAM's prefix
MOTO_SERVICE_NAMES = {"cloudwatch": "monitoring", "ecr": "api.ecr"}


def _as_moto_checks_it(policy: dict) -> dict:
    statements = []
    for statement in policy["Statement"]:
        statement = {k: v for k, v in statement.items() if k != "Condition"}
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        statement["Action"] = actions + [alias for a in actions for alias in MOTO_S3_NAMES.get(a, [])] + [
            f"{MOTO_SERVICE_NAMES[a.split(':')[0]]}:{a.split(':')[1]}" for a in actions if a.split(":")[0] in MOTO_SERVICE_NAMES]
        if not all(a.split(":")[0] in NOT_CHECKED_BY_MOTO for a in actions):
            statement["Resource"] = "*"
        statements.append(statement)
    return {**policy, "Statement": statements}


def test_print_policy_prints_the_policy_as_json():
    result = run_stockstream("deploy", "--print-policy", "--region", REGION)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == res.deployer_policy(region=REGION)
    staged = json.loads(run_stockstream("deploy", "--print-policy", "--region", REGION, "--stage", "prod").stdout)
    assert staged == res.deployer_policy(region=REGION, stage="prod")


def test_a_deploy_and_a_destroy_need_nothing_the_printed_policy_does_not_grant(monkeypatch):
    from moto import mock_aws
    from moto.core import set_initial_no_auth_action_count
    from moto.iam.access_control import IAMRequest

    # moto 5.2 miscomputes the SigV4 signature of Lambda's REST requests (every one is SignatureDoesNotMatch
    # once enforcement is on); this test is about what the policy authorises, so signatures are not checked
    monkeypatch.setattr(IAMRequest, "check_signature", lambda self: None)

    from stockstream_cli.aws.deploy import DeployOptions, deploy
    from stockstream_cli.aws.destroy import destroy

    from stockstream_cli.aws import image as image_module

    pushed = []

    def push(engine, files, image_uri, arch, ecr):
        repository, tag = image_uri.rsplit("/", 1)[1].split(":")
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                    "config": {"digest": "sha256:" + "0" * 64, "size": 1}, "layers": []}
        ecr.get_authorization_token()
        ecr.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag)
        image_module.check_pushed_manifest(ecr, image_uri)
        pushed.append(image_uri)

    monkeypatch.setattr(image_module, "build_and_push", push)
    narrowed = _as_moto_checks_it(res.deployer_policy(region=REGION))
    narrowed["Statement"] = [s for s in narrowed["Statement"] if s["Sid"] != "Functions"]

    @set_initial_no_auth_action_count(6)  # two users, their policies and keys are made unchecked; then all is
    @mock_aws
    def scenario():
        from stockstream_cli.errors import AwsError

        iam = boto3.client("iam", region_name=REGION)
        sessions = {}
        for user, policy in (("deployer", _as_moto_checks_it(res.deployer_policy(region=REGION))), ("narrow", narrowed)):
            iam.create_user(UserName=user)
            iam.put_user_policy(UserName=user, PolicyName="stockstream-deployer", PolicyDocument=json.dumps(policy))
            key = iam.create_access_key(UserName=user)["AccessKey"]
            sessions[user] = boto3.session.Session(aws_access_key_id=key["AccessKeyId"],
                                                   aws_secret_access_key=key["SecretAccessKey"], region_name=REGION)
        as_deployer = sessions["deployer"]
        first = deploy(DeployOptions(image_uri=IMAGE_URI), session=as_deployer, sleep=lambda s: None, waiter_delay=1)
        assert first["applied"] == 18
        again = deploy(DeployOptions(image_uri=IMAGE_URI), session=as_deployer, sleep=lambda s: None, waiter_delay=1)
        assert again["changes"] == []
        gone = destroy(session=as_deployer)
        assert len(gone["removed"]) == 13
        # a deploy that builds: the repository, its policies, the push (as the fake engine does it), the check
        built = deploy(DeployOptions(stage="built", arch="arm64"), session=as_deployer, sleep=lambda s: None,
                       waiter_delay=1, engine_finder=lambda: "podman")
        assert [c["resource"] for c in built["changes"][:2]] == ["ecr repository", "lambda image"] and pushed
        assert len(destroy(session=as_deployer, stage="built")["removed"]) == 14  # and the repository
        # and the enforcement is real: without the Functions statement the same deploy is refused
        with pytest.raises(AwsError, match="not authorized to perform: lambda:GetFunction"):
            deploy(DeployOptions(image_uri=IMAGE_URI), session=sessions["narrow"], sleep=lambda s: None, waiter_delay=1)

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
    }
    for sid, arns in wanted.items():
        for arn in arns:
            assert any(fnmatch.fnmatchcase(arn, pattern) for pattern in by_sid[sid]), (sid, arn)
    # a stage's policy does not reach the default stack's roles
    if stage:
        default_role = target.role_arn(res.Names(None, REGION).lambda_role)
        assert not any(fnmatch.fnmatchcase(default_role, p) for p in by_sid["Roles"])
