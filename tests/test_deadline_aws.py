"""The fetcher's deadline through the deployed state machine on moto: a batch whose Lambda time runs out half
way stores what it fetched, records the rest as interrupted and fails with BatchInterrupted; the Map's Retry
sends the item again, and that attempt fetches exactly the interrupted symbols (counted at the transport)."""

from __future__ import annotations

import datetime as dt
import json

import boto3
import pytest

from aws_fake import REGION, deployed_pipeline, wait_for
from clock import ChartClock
from stockstream_cli.run.lambda_runtime import lambda_settings

DAY = dt.date(2026, 11, 25)
CODES = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG", "HHH"]  # batches of 3


@pytest.fixture
def pipeline(moto_endpoint, monkeypatch, fake_yahoo):
    attempts: dict[int, int] = {}

    def context_for(name: str, event: dict):
        if name != "stock-data-fetcher" or "batchNumber" not in event:
            return None
        number = int(event["batchNumber"])
        attempts[number] = attempts.get(number, 0) + 1
        if number == 0 and attempts[number] == 1:
            return ChartClock.for_symbols(fake_yahoo, 1, lambda_settings())  # time for one symbol of three
        return ChartClock(fake_yahoo)

    with deployed_pipeline(moto_endpoint, monkeypatch, CODES, batch_size=3, context_for=context_for) as document:
        yield {"yahoo": fake_yahoo, "attempts": attempts, **document}


def test_a_deadline_half_way_is_continued_by_the_maps_retry_with_exactly_the_missing_requests(pipeline):
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = sfn.start_execution(stateMachineArn=pipeline["state_machine_arn"], name="daily-deadline",
                              input=json.dumps({"date": DAY.isoformat()}))["executionArn"]
    execution = wait_for(sfn, arn)
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    output = json.loads(execution["output"])
    assert [(r["batchNumber"], r["failed"], r["symbolsFetched"]) for r in output["batchResults"]] == [
        (0, False, 3), (1, False, 3), (2, False, 2)]
    assert pipeline["attempts"] == {0: 2, 1: 1, 2: 1}
    assert [e for e in pipeline["lambdas"].errors if "BatchInterrupted" in e] and len(pipeline["lambdas"].errors) == 1
    fetches = [e for name, e in pipeline["lambdas"].invocations if name == "stock-data-fetcher" and "action" not in e]
    assert sorted(e["symbols"] for e in fetches if e["batchNumber"] == 0) == [["AAA", "BBB", "CCC"]] * 2  # same item
    # every symbol's chart asked for once: the retry sent only BBB's and CCC's
    assert pipeline["yahoo"].per_ticker() == {f"{code}.AX": 1 for code in CODES}
    s3 = boto3.client("s3", region_name=REGION)
    manifest = json.loads(s3.get_object(Bucket=pipeline["bucket"], Key="runs/2026-11-25/batch-0.json")["Body"].read())
    assert manifest["metadata"]["failure_reasons"] == {} and manifest["metadata"]["symbols_fetched"] == 3
