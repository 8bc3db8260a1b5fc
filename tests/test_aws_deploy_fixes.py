"""Issue 23's deploy fixes: refusals that only mean "not yet" are retried, a poisoned image tag is rebuilt, the
no-execution alarm stays quiet until a pipeline that ran stops, and the Map has the design's shape by default."""

from __future__ import annotations

import json

import boto3
import pytest

from aws_fake import IMAGE_URI, REGION
from stockstream_cli.aws.deploy import DeployOptions, deploy
from stockstream_cli.aws.executor import Executor
from stockstream_cli.aws.plan import Call, step
from stockstream_cli.errors import AwsError


def _client(service: str):
    return boto3.client(service, region_name=REGION)


# ---------------------------------------------------------------- 4. transient refusals


class _Http:
    status_code = 400


def _refuse(session, operation: str, code: str, message: str, times: int) -> dict:
    """Answer the next `times` calls of `operation` with AWS's error, as real AWS does while it catches up."""
    left = {"n": times}

    def refuse(model=None, **_):
        if left["n"]:
            left["n"] -= 1
            return _Http(), {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}}
        return None

    session.events.register(f"before-call.{operation}", refuse)
    return left


LOG_DESTINATION = "The IAM Role is not authorized to access the Log Destination"


def test_a_new_states_role_not_yet_allowed_to_deliver_logs_is_waited_for(moto_endpoint):
    session = boto3.session.Session(region_name=REGION)
    left = _refuse(session, "states.CreateStateMachine", "AccessDeniedException", LOG_DESTINATION, times=3)
    waits: list[float] = []
    document = deploy(DeployOptions(image_uri=IMAGE_URI), session=session, sleep=waits.append, waiter_delay=1)
    assert left["n"] == 0 and waits == [2.0, 3.0, 4.5]
    assert [m["name"] for m in _client("stepfunctions").list_state_machines()["stateMachines"]] == ["stock-data-pipeline"]
    assert document["applied"] == len(document["changes"])


def test_the_log_destination_refusal_with_an_old_unchanged_role_is_a_real_error(moto_endpoint):
    deploy(DeployOptions(image_uri=IMAGE_URI), sleep=lambda s: None, waiter_delay=1)
    sfn = _client("stepfunctions")
    sfn.delete_state_machine(stateMachineArn=sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"])
    session = boto3.session.Session(region_name=REGION)
    _refuse(session, "states.CreateStateMachine", "AccessDeniedException", LOG_DESTINATION, times=1)
    waits: list[float] = []
    with pytest.raises(AwsError, match="not authorized to access the Log Destination"):
        deploy(DeployOptions(image_uri=IMAGE_URI), session=session, sleep=waits.append, waiter_delay=1)
    assert waits == []


class _FakeSession:
    """A session whose one client answers `create_state_machine` with the errors given, then succeeds."""

    def __init__(self, errors: list[Exception]):
        self.errors = errors
        self.calls = 0

    def client(self, service: str):
        return self

    def create_state_machine(self, **params):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return {"stateMachineArn": "arn:aws:states:ap-southeast-2:123456789012:stateMachine:m"}


def _client_error(code: str, message: str) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": message}}, "CreateStateMachine")


CREATE = step("create", "state machine", "m", [], Call("stepfunctions", "create_state_machine", {"name": "m"},
                                                       output=("state_machine", "stateMachineArn")))


def test_a_state_machine_still_being_deleted_is_waited_for_and_then_created():
    """destroy then deploy: the old state machine of that name is still going away."""
    session = _FakeSession([_client_error("StateMachineDeleting", "State machine is being deleted")] * 4)
    waits: list[float] = []
    executor = Executor(session, sleep=waits.append)
    executor.execute([CREATE])
    assert session.calls == 5 and waits == [2.0, 3.0, 4.5, 6.75]
    assert executor.variables["state_machine"].endswith(":stateMachine:m")


def test_the_waiting_is_bounded():
    session = _FakeSession([_client_error("StateMachineDeleting", "State machine is being deleted")] * 50)
    waits: list[float] = []
    with pytest.raises(AwsError, match="StateMachineDeleting"):
        Executor(session, sleep=waits.append).execute([CREATE])
    assert session.calls == 12 and len(waits) == 11 and max(waits) == 10.0 and sum(waits) < 90


def test_any_other_refusal_is_not_retried():
    session = _FakeSession([_client_error("InvalidDefinition", "bad ASL")])
    waits: list[float] = []
    with pytest.raises(AwsError, match="InvalidDefinition: bad ASL"):
        Executor(session, sleep=waits.append).execute([CREATE])
    assert session.calls == 1 and waits == []


# ---------------------------------------------------------------- 6. the no-execution alarm


def _evaluate(alarm: dict, datapoint: float | None, state: str) -> tuple[str, list[str]]:
    """CloudWatch's rule for a one-period alarm: the new state, and the actions its change notifies (a state that
    does not change notifies nobody). `datapoint` None: no data in the period."""
    if datapoint is None:
        new = {"breaching": "ALARM", "notBreaching": "OK", "missing": "INSUFFICIENT_DATA",
               "ignore": state}[alarm.get("TreatMissingData", "missing")]
    else:
        below = datapoint < alarm["Threshold"]
        assert alarm["ComparisonOperator"] == "LessThanThreshold"
        new = "ALARM" if below else "OK"
    if new == state:
        return state, []
    actions = {"ALARM": "AlarmActions", "OK": "OKActions", "INSUFFICIENT_DATA": "InsufficientDataActions"}[new]
    return new, list(alarm.get(actions, []))


def test_no_execution_is_quiet_until_the_first_run_and_alerts_when_a_pipeline_that_ran_stops():
    from stockstream_cli.aws import resources as res

    target = res.Target(account="123456789012", region=REGION, bucket="b", image_uri=IMAGE_URI)
    [alarm] = [a for a in res.alarms(target) if a["AlarmName"] == "stockstream-no-execution"]
    assert alarm["MetricName"] == "ExecutionsStarted" and alarm["Period"] == 86400
    state, told = "INSUFFICIENT_DATA", []  # every new CloudWatch alarm starts here
    for day, started in enumerate([None, None, 1.0, 1.0, None, None, 1.0]):  # deployed; 2 days idle; runs; stops
        state, notified = _evaluate(alarm, started, state)
        told += [(day, state, topic) for topic in notified]
    assert told == [(4, "INSUFFICIENT_DATA", target.topic_arn)]  # only when the runs stopped, once
    assert state == "OK"


# ---------------------------------------------------------------- 7. the design's shape by default


def _map_concurrency(machine_arn: str) -> int:
    definition = _client("stepfunctions").describe_state_machine(stateMachineArn=machine_arn)["definition"]
    return json.loads(definition)["States"]["SplitIntoBatches"]["MaxConcurrency"]


def _reserving(session, unreserved: int = 1000):
    """moto has no GetAccountSettings: answer it as Lambda does for an account with room to reserve."""
    answer = {"AccountLimit": {"ConcurrentExecutions": 1000, "UnreservedConcurrentExecutions": unreserved},
              "AccountUsage": {}, "ResponseMetadata": {"HTTPStatusCode": 200}}

    class Http:
        status_code = 200

    session.events.register("before-call.lambda.GetAccountSettings", lambda **_: (Http(), answer))
    return session


def test_deploy_dry_run_shows_the_designs_ten_batches_at_once_on_one_thread_each(moto_endpoint):
    from helpers import run_stockstream

    result = run_stockstream("deploy", "--image-uri", IMAGE_URI, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert ("+ create state machine stock-data-pipeline: from infra/asl.json; at most 10 batches at once, "
            "1 fetcher thread(s) each") in result.stdout
    assert "shape: at most 10 batches at once, 1 fetcher thread(s) each: 5 requests/s toward Yahoo" in result.stdout
    plan = json.loads(run_stockstream("deploy", "--image-uri", IMAGE_URI, "--dry-run", "--json").stdout)
    [create] = [c for s in plan["changes"] for c in s["calls"] if c.get("operation") == "create_state_machine"]
    assert json.loads(create["params"]["definition"])["States"]["SplitIntoBatches"]["MaxConcurrency"] == 10
    [fetcher] = [c for s in plan["changes"] for c in s["calls"]
                 if c.get("operation") == "create_function" and c["params"]["FunctionName"] == "stock-data-fetcher"]
    assert fetcher["params"]["Environment"]["Variables"]["STOCKSTREAM_WORKERS"] == "1"
    assert (plan["max_concurrency"], plan["workers"]) == (10, 1)


def test_max_concurrency_and_workers_change_the_map_the_reserved_concurrency_and_the_fetchers_threads(moto_endpoint):
    from stockstream_cli.aws import resources as res

    session = _reserving(boto3.session.Session(region_name=REGION))
    first = deploy(DeployOptions(image_uri=IMAGE_URI), session=session, sleep=lambda s: None, waiter_delay=1)
    lam = _client("lambda")
    assert _map_concurrency(first["state_machine_arn"]) == 10
    assert lam.get_function_concurrency(FunctionName="stock-data-fetcher")["ReservedConcurrentExecutions"] == 10

    session = _reserving(boto3.session.Session(region_name=REGION))
    second = deploy(DeployOptions(image_uri=IMAGE_URI, max_concurrency=4, workers=3), session=session,
                    sleep=lambda s: None, waiter_delay=1)
    changed = {(s["resource"], s["name"], tuple(s["details"])) for s in second["changes"]}
    assert ("state machine", "stock-data-pipeline",
            ("definition (at most 4 batches at once, 3 fetcher thread(s) each)",)) in changed
    assert ("lambda function", "stock-data-fetcher", ("reserved concurrency 4 (the Map's)",)) in changed
    assert _map_concurrency(second["state_machine_arn"]) == 4
    assert lam.get_function_concurrency(FunctionName="stock-data-fetcher")["ReservedConcurrentExecutions"] == 4
    variables = lam.get_function_configuration(FunctionName="stock-data-fetcher")["Environment"]["Variables"]
    assert variables[res.WORKERS_ENV] == "3"


def test_the_shape_comes_from_the_command_line_or_the_environment(moto_endpoint, monkeypatch):
    from helpers import run_stockstream

    monkeypatch.setenv("STOCKSTREAM_MAX_CONCURRENCY", "2")
    monkeypatch.setenv("STOCKSTREAM_WORKERS", "5")
    from_env = json.loads(run_stockstream("deploy", "--image-uri", IMAGE_URI, "--dry-run", "--json").stdout)
    assert (from_env["max_concurrency"], from_env["workers"]) == (2, 5)
    assert from_env["cost"]["shape"] == {"max_concurrency": 2, "workers": 5, "requests_per_second": 5.0}
    typed = json.loads(run_stockstream("deploy", "--image-uri", IMAGE_URI, "--dry-run", "--json",
                                       "--max-concurrency", "4").stdout)
    assert (typed["max_concurrency"], typed["workers"]) == (4, 5)  # the command line beats the environment
    refused = run_stockstream("deploy", "--image-uri", IMAGE_URI, "--dry-run", "--max-concurrency", "0")
    assert refused.returncode == 2 and "--max-concurrency must be at least 1, got 0" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_the_cost_estimate_follows_the_shape_and_the_readme_quotes_it():
    """The README's monthly figures are the code's estimate for the default profile, both shapes."""
    import re
    from pathlib import Path

    from stockstream_cli.aws.cost import estimate

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()

    def monthly(arch: str, concurrency: int, workers: int) -> str:
        return f"${estimate({'arch': arch, 'max_concurrency': concurrency, 'workers': workers})['monthly_usd']:.2f}"

    design, small = (10, 1), (2, 5)
    assert estimate({"max_concurrency": 2, "workers": 5})["lines"][0]["monthly_usd"] < \
        estimate({"max_concurrency": 10, "workers": 1})["lines"][0]["monthly_usd"]
    quoted = re.search(r"about\s+\*\*(\$[\d.]+) a month\*\* \(x86_64: (\$[\d.]+)\)", readme)
    assert quoted and quoted.groups() == (monthly("arm64", *design), monthly("x86_64", *design))
    two_by_five = re.search(r"--max-concurrency 2 --workers 5`[^$]*(\$[\d.]+) a month", readme)
    assert two_by_five and two_by_five.group(1) == monthly("arm64", *small)


# ---------------------------------------------------------------- 5. a poisoned image tag


def test_an_image_lambda_cannot_run_under_the_content_tag_is_deleted_and_built_again(moto_endpoint, monkeypatch):
    """A refused push whose delete never happened (an interrupted deploy) must not make deploy skip the build."""
    from stockstream_cli.aws import image as image_module

    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"digest": "sha256:" + "0" * 64, "size": 1}, "layers": []}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}
    pushed = []

    def fake_build_and_push(engine, files, image_uri, arch, ecr):
        repository, tag = image_uri.rsplit("/", 1)[1].split(":")
        ecr.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag)
        pushed.append(image_uri)

    dry = deploy(DeployOptions(arch="arm64"), dry_run=True, engine_finder=lambda: None)
    ecr = _client("ecr")
    ecr.create_repository(repositoryName="stockstream-lambda", imageTagMutability="IMMUTABLE")
    tag = dry["image_uri"].rsplit(":", 1)[1]
    ecr.put_image(repositoryName="stockstream-lambda", imageTag=tag, imageManifest=json.dumps(index))

    monkeypatch.setattr(image_module, "build_and_push", fake_build_and_push)
    document = deploy(DeployOptions(arch="arm64"), sleep=lambda s: None, waiter_delay=1, engine_finder=lambda: "podman")
    [rebuild] = [s for s in document["changes"] if s["resource"] == "lambda image"]
    assert rebuild["action"] == "update" and "application/vnd.oci.image.index.v1+json" in rebuild["details"][0]
    assert [c.get("operation") for c in rebuild["calls"]] == ["batch_delete_image", None]  # then the build
    assert pushed == [dry["image_uri"]]
    [image] = ecr.describe_images(repositoryName="stockstream-lambda")["imageDetails"]
    assert image["imageManifestMediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    functions = _client("lambda").list_functions()["Functions"]
    assert len(functions) == 2
    assert _client("lambda").get_function(FunctionName="stock-data-fetcher")["Code"]["ImageUri"] == dry["image_uri"]
