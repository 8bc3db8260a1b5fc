"""Issue 23's deploy fixes: refusals that only mean "not yet" are retried, a poisoned image tag is rebuilt, the
no-execution alarm stays quiet until a pipeline that ran stops, and the Map has the design's shape by default."""

from __future__ import annotations

import json

import boto3
import pytest

from aws_support import IMAGE_URI, REGION
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
