"""The deployed pipeline end to end, on moto: `deploy` builds it, Step Functions really runs infra/asl.json
(Choice, Map, Retry, Catch, sns:publish), and the Lambdas are the project's own handlers run in-process.

Then what a user does with it: `load --store s3://...` reads the data back, `rerun-failed --remote` finishes
a day that partly failed, `status --remote` lists the executions.
"""

from __future__ import annotations

import datetime as dt
import json

import boto3
import pytest

from asx_fake import serving
from aws_fake import POLL, REGION, deployed_pipeline, poll_pause, wait_for
from helpers import run_stockstream
from stockstream_cli.aws.remote import remote_status, rerun_remote

DAY = dt.date(2026, 11, 25)
CODES = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG", "HHH"]  # batches of 3: [AAA BBB CCC] [DDD EEE FFF] [GGG HHH]


@pytest.fixture
def pipeline(moto_endpoint, monkeypatch, fake_yahoo, tmp_path):
    """The pipeline deployed to moto, its state machine executing, its functions running here."""
    with deployed_pipeline(moto_endpoint, monkeypatch, CODES, batch_size=3) as document:
        yield {"yahoo": fake_yahoo, **document}


def _start(document: dict, name: str, payload: dict) -> dict:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = sfn.start_execution(stateMachineArn=document["state_machine_arn"], name=name, input=json.dumps(payload))
    return wait_for(sfn, arn["executionArn"])


def _alerts_queue(document: dict) -> str:
    """An SQS queue subscribed to the alert topic: what the topic publishes lands there."""
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns", region_name=REGION).subscribe(TopicArn=document["topic_arn"], Protocol="sqs", Endpoint=queue_arn)
    return queue


def _alerts(queue: str) -> list[dict]:
    messages = boto3.client("sqs", region_name=REGION).receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
    return [json.loads(message["Body"]) for message in messages.get("Messages", [])]


def _run_json(document: dict) -> dict:
    body = boto3.client("s3", region_name=REGION).get_object(Bucket=document["bucket"], Key="runs/2026-11-25/run.json")["Body"]
    return json.loads(body.read())


def _keys(bucket: str) -> set[str]:
    return {o["Key"] for o in boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=bucket).get("Contents", [])}


def test_an_execution_stores_the_data_that_load_returns(pipeline):
    queue = _alerts_queue(pipeline)
    execution = _start(pipeline, "daily-2026-11-25", {"date": DAY.isoformat()})
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    output = json.loads(execution["output"])
    assert output["date"] == "2026-11-25"
    assert [(r["batchNumber"], r["failed"], r["symbolsFetched"]) for r in output["batchResults"]] == [
        (0, False, 3), (1, False, 3), (2, False, 2)]
    # the data-quality step: the day (closed before the execution started) is complete, nobody is alerted
    assert output["quality"] == {"session": "2026-11-25", "complete": True, "missing": 0, "suspicious": 0, "alert": None}
    assert _alerts(queue) == []
    calls = pipeline["lambdas"].invocations
    assert [name for name, e in calls if e.get("action") == "finalize"] == ["stock-data-fetcher"]
    [finalize] = [e for _, e in calls if e.get("action") == "finalize"]
    assert (finalize["date"], finalize["execution"], finalize["batchNumbers"], finalize["batchFailed"]) == (
        "2026-11-25", "daily-2026-11-25", [0, 1, 2], [False, False, False])
    assert finalize["startedAt"].endswith("Z")
    run = _run_json(pipeline)  # the deployed run's summary, as run-local writes it
    assert {k: run[k] for k in ("date", "total_symbols", "num_batches", "batches_failed", "symbols_fetched", "symbols_failed")} == {
        "date": "2026-11-25", "total_symbols": 8, "num_batches": 3, "batches_failed": [], "symbols_fetched": 8, "symbols_failed": []}
    assert (run["command"], run["execution"], run["started_at"]) == ("stock-data-pipeline", "daily-2026-11-25", finalize["startedAt"])
    assert run["quality"] == {**output["quality"], "expected_rows": 8, "present_rows": 8}
    fetched = sorted((e["batchNumber"], e["date"], tuple(e["symbols"])) for name, e in calls if name == "stock-data-fetcher" and "action" not in e)
    assert fetched == [(0, "2026-11-25", ("AAA", "BBB", "CCC")), (1, "2026-11-25", ("DDD", "EEE", "FFF")),
                       (2, "2026-11-25", ("GGG", "HHH"))]
    assert {"symbols/2026-11-25-symbols.csv", "raw-data/2026-11-25-batch-2.parquet", "runs/2026-11-25/batch-2.json"} <= _keys(pipeline["bucket"])

    loaded = run_stockstream("load", "--store", pipeline["store"], "--date", "2026-11-25", "--format", "json")
    assert loaded.returncode == 0, loaded.stderr
    rows = json.loads(loaded.stdout)
    assert [row["symbol"] for row in rows] == CODES
    expected = pipeline["yahoo"].bar("BBB", DAY)
    bbb = rows[1]
    assert (bbb["open"], bbb["high"], bbb["low"], bbb["close"], bbb["volume"]) == (
        expected["open"], expected["high"], expected["low"], expected["close"], expected["volume"])


def test_a_failing_symbol_source_ends_in_the_alert(pipeline, monkeypatch):
    queue = _alerts_queue(pipeline)
    with serving(b"<html><head><title>Request Rejected</title></head></html>", content_type="text/html") as url:
        monkeypatch.setenv("STOCKSTREAM_SOURCE_URL", url)
        execution = _start(pipeline, "daily-broken-source", {"date": DAY.isoformat()})
    assert execution["status"] == "FAILED" and execution["error"] == "PipelineFailed"
    updater_calls = [name for name, _ in pipeline["lambdas"].invocations if name == "asx-symbol-updater"]
    assert len(updater_calls) == 4  # the first try and the three retries of UpdateASXSymbols
    [notification] = _alerts(queue)
    assert notification["Subject"] == "Stock Stream Pipeline Failed"
    assert "daily-broken-source" in notification["Message"] and "SourceError" in notification["Message"]
    assert not any(key.startswith("symbols/") for key in _keys(pipeline["bucket"]))


def test_a_failing_batch_is_caught_the_others_complete_and_a_remote_rerun_finishes_the_day(pipeline, monkeypatch):
    yahoo = pipeline["yahoo"]
    for code in ("DDD", "EEE", "FFF"):
        yahoo.fault(code, "rate_limited")  # every request: batch 1 fails as a whole, every attempt
    yahoo.fault("BBB", "timeout")  # one symbol of batch 0 fails, the batch itself succeeds
    queue = _alerts_queue(pipeline)
    execution = _start(pipeline, "daily-with-faults", {"date": DAY.isoformat()})
    assert execution["status"] == "SUCCEEDED"  # an incomplete day is an alert, not a failed execution
    output = json.loads(execution["output"])
    results = {r["batchNumber"]: r for r in output["batchResults"]}
    assert {k: output["quality"][k] for k in ("session", "complete", "missing")} == {
        "session": "2026-11-25", "complete": False, "missing": 4}  # BBB, and DDD EEE FFF of the failed batch
    [alert] = _alerts(queue)  # NotifyDataIncomplete
    assert alert["Subject"] == "Stock Stream Data Incomplete" and alert["Message"] == output["quality"]["alert"]
    assert "4 fetch_failed" in alert["Message"] and "BBB 2026-11-25" in alert["Message"]
    run = _run_json(pipeline)
    assert (run["batches_failed"], run["symbols_failed"], run["quality"]["complete"]) == ([1], ["BBB", "DDD", "EEE", "FFF"], False)
    assert run["batch_errors"] == {"1": "failed in execution daily-with-faults"}
    assert results[1] == {"batchNumber": 1, "failed": True, "error": "BatchFailed"}
    assert (results[0]["failed"], results[0]["symbolsFailed"], results[2]["symbolsFetched"]) == (False, ["BBB"], 2)
    batch_1_calls = [e for name, e in pipeline["lambdas"].invocations if e.get("batchNumber") == 1]
    assert len(batch_1_calls) == 3  # FetchStockData's first try and its 2 retries
    keys = _keys(pipeline["bucket"])
    assert "runs/2026-11-25/batch-1.json" not in keys and "raw-data/2026-11-25-batch-2.parquet" in keys

    # Yahoo is healthy again: rerun on the deployed pipeline exactly what failed
    yahoo.clear_faults()
    before = len(pipeline["lambdas"].invocations)
    run = rerun_remote(DAY, poll_interval=POLL, sleep=poll_pause)
    assert run["execution_status"] == "SUCCEEDED" and run["execution_arn"].split(":")[-1].startswith("rerun-2026-11-25-")
    assert {k: run[k] for k in ("date", "total_symbols", "num_batches", "batches_succeeded", "batches_failed",
                                "symbols_fetched", "symbols_failed")} == {
        "date": "2026-11-25", "total_symbols": 8, "num_batches": 3, "batches_succeeded": 3, "batches_failed": [],
        "symbols_fetched": 8, "symbols_failed": []}
    assert run["quality"]["complete"] is True and _alerts(queue) == []  # the day is whole again: no alert
    assert _run_json(pipeline)["quality"] == run["quality"]
    rerun_calls = [(name, e) for name, e in pipeline["lambdas"].invocations[before:] if "action" not in e]
    assert sorted((name, e["batchNumber"], tuple(e["symbols"])) for name, e in rerun_calls) == [
        ("stock-data-fetcher", 0, ("BBB",)), ("stock-data-fetcher", 1, ("DDD", "EEE", "FFF"))]
    loaded = run_stockstream("load", "--store", pipeline["store"], "--date", "2026-11-25", "--format", "json")
    assert [row["symbol"] for row in json.loads(loaded.stdout)] == CODES  # BBB merged into batch 0, batch 1 whole

    nothing = rerun_remote(DAY, poll_interval=POLL, sleep=poll_pause)
    assert nothing["execution_status"] == "NOT_STARTED" and nothing["symbols_fetched"] == 8
    assert len(pipeline["lambdas"].invocations) == before + 4  # two batches, the data-quality and compaction steps

    status = remote_status(limit=5)
    assert [(e["kind"], e["status"], e["date"]) for e in status["executions"]] == [
        ("rerun", "SUCCEEDED", "2026-11-25"), ("daily", "SUCCEEDED", "2026-11-25")]
    assert status["executions"][1]["batches_failed"] == [1] and status["executions"][0]["batches_failed"] == []
    assert (status["executions"][1]["symbols_fetched"], status["executions"][1]["symbols_failed"]) == (4, 1)  # AAA CCC GGG HHH; BBB
    assert status["executions"][0]["symbols_fetched"] == 6  # the rerun: batch totals after the merge, 3 + 3


def test_rerun_without_waiting_returns_at_once(pipeline):
    pipeline["yahoo"].fault("GGG", "rate_limited").fault("HHH", "rate_limited")
    assert _start(pipeline, "daily-batch-2-fails", {"date": DAY.isoformat()})["status"] == "SUCCEEDED"
    started = rerun_remote(DAY, wait=False)
    assert started["execution_status"] == "RUNNING" and started["batches_started"] == [2]
    assert started["batches_failed"] == [2]  # what the store said when it started
    sfn = boto3.client("stepfunctions", region_name=REGION)
    described = wait_for(sfn, started["execution_arn"])
    assert json.loads(described["input"])["symbolBatches"] == [{"symbols": ["GGG", "HHH"], "batchNumber": 2, "date": "2026-11-25"}]


def test_the_remote_commands_as_a_user_types_them(pipeline, monkeypatch):
    pipeline["yahoo"].fault("GGG", "rate_limited").fault("HHH", "rate_limited")
    assert _start(pipeline, "daily-for-the-cli", {"date": DAY.isoformat()})["status"] == "SUCCEEDED"

    status = run_stockstream("status", "--remote", "--json")
    assert status.returncode == 3, status.stderr  # the latest execution left a batch failed
    [latest] = json.loads(status.stdout)["executions"]
    assert (latest["name"], latest["status"], latest["batches_failed"]) == ("daily-for-the-cli", "SUCCEEDED", [2])
    human = run_stockstream("status", "--remote")
    assert "daily-for-the-cli" in human.stdout and "SUCCEEDED" in human.stdout

    pipeline["yahoo"].clear_faults()  # Yahoo is healthy again
    rerun = run_stockstream("rerun-failed", "--remote", "--date", "2026-11-25", "--json",
                            env={"STOCKSTREAM_POLL_INTERVAL": str(POLL)})
    assert rerun.returncode == 0, rerun.stderr
    document = json.loads(rerun.stdout)
    assert list(document)[:8] == ["date", "total_symbols", "num_batches", "batches_succeeded", "batches_failed",
                                  "symbols_fetched", "symbols_failed", "execution_time"]
    assert (document["symbols_fetched"], document["batches_failed"], document["execution_status"]) == (8, [], "SUCCEEDED")
    run_json = json.loads(boto3.client("s3", region_name=REGION).get_object(
        Bucket=pipeline["bucket"], Key="runs/2026-11-25/run.json")["Body"].read())
    assert run_json["command"] == "rerun-failed --remote" and run_json["symbols_fetched"] == 8

    again = run_stockstream("rerun-failed", "--remote", "--date", "2026-11-25")
    assert again.returncode == 0 and again.stdout.startswith("nothing to rerun on 2026-11-25")
    local_store = run_stockstream("rerun-failed", "--remote", "--date", "2026-11-25", "--store", "./data")
    assert local_store.returncode == 2 and "--store" in local_store.stderr
    assert run_stockstream("status", "--remote").returncode == 0  # the latest execution (the rerun) is clean


def test_run_remote_starts_the_pipeline_now_and_waits_for_its_outcome(pipeline, monkeypatch):
    from aws_fake import ExpectedBucketOwner

    owner = ExpectedBucketOwner().install(monkeypatch)
    result = run_stockstream("run-remote", "--date", "2026-11-25", "--wait", "--json",
                             env={"STOCKSTREAM_POLL_INTERVAL": str(POLL)})
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["status"], summary["date"], summary["kind"], summary["batches"], summary["symbols_fetched"]) == (
        "SUCCEEDED", "2026-11-25", "daily", 3, 8)
    assert summary["name"].startswith("manual-2026-11-25-")
    updater = [e for name, e in pipeline["lambdas"].invocations if name == "asx-symbol-updater"]
    assert updater == [{"date": "2026-11-25"}]  # the schedule's input, with the date asked for
    # every S3 call the handlers made named the bucket's owner (deploy sets STOCKSTREAM_BUCKET_OWNER on them):
    # the reader fetches the data files through boto3 too (aggregate._objects), not polars' own S3 client,
    # which has no way to send it
    assert len([r for r in owner.requests if r[2] == "123456789012"]) > 20
    assert owner.without_owner() == []

    pipeline["yahoo"].fault("GGG", "rate_limited").fault("HHH", "rate_limited")
    partial = run_stockstream("run-remote", "--date", "2026-11-25", "--wait",
                              env={"STOCKSTREAM_POLL_INTERVAL": str(POLL)})
    assert partial.returncode == 3, partial.stderr
    assert partial.stdout.startswith("SUCCEEDED: arn:aws:states:") and "failed: [2]" in partial.stdout

    started = run_stockstream("run-remote", "--json")  # no --wait: it returns at once, the execution running
    assert started.returncode == 0 and json.loads(started.stdout)["status"] in {"RUNNING", "SUCCEEDED"}
    sfn = boto3.client("stepfunctions", region_name=REGION)
    wait_for(sfn, json.loads(started.stdout)["execution_arn"])
