"""infra/asl.json: the state machine's structure, as the design and the contract describe it."""

from __future__ import annotations

import json

import pytest

from stockstream_cli.aws import resources as res
from stockstream_cli.aws.assets import find_sources

LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
}
THROTTLED = ["Lambda.TooManyRequestsException"]


@pytest.fixture(scope="module")
def asl() -> dict:
    return json.loads(find_sources().asl_path.read_text())


def _fetch_task(asl):
    return asl["States"]["SplitIntoBatches"]["ItemProcessor"]["States"]["FetchStockData"]


def test_every_state_is_reachable_and_every_transition_lands(asl):
    states = asl["States"]
    seen, todo = set(), [asl["StartAt"]]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        state = states[name]
        nexts = [state.get("Next"), state.get("Default")]
        nexts += [c["Next"] for c in state.get("Choices", [])] + [c["Next"] for c in state.get("Catch", [])]
        todo.extend(n for n in nexts if n)
        assert n_is_terminal_or_continues(state), name
    assert seen == set(states)


def n_is_terminal_or_continues(state: dict) -> bool:
    return state["Type"] in {"Choice", "Fail", "Succeed"} or bool(state.get("Next")) != bool(state.get("End"))


def test_input_with_symbol_batches_skips_the_symbol_step(asl):
    start = asl["States"][asl["StartAt"]]
    assert start["Type"] == "Choice"
    assert start["Choices"] == [{"Variable": "$.symbolBatches", "IsPresent": True, "Next": "SplitIntoBatches"}]
    assert start["Default"] == "UpdateASXSymbols"


def test_symbol_step_retries_then_notifies(asl):
    task = asl["States"]["UpdateASXSymbols"]
    assert task["Type"] == "Task" and task["Resource"] == "arn:${Partition}:states:::lambda:invoke"
    assert task["Parameters"]["FunctionName"] == "${AsxSymbolUpdaterArn}"
    assert task["Retry"] == [{"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 60, "MaxAttempts": 3, "BackoffRate": 2.0}]
    assert task["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "NotifyFailure"}]
    # only what the Map needs flows on: the date, the batches, the metadata; never the flat symbol list twice
    assert set(task["ResultSelector"]) == {"date.$", "symbolBatches.$", "metadata.$"}
    assert task["Next"] == "SplitIntoBatches"


def test_the_map_fans_out_batches_with_the_runs_date(asl):
    split = asl["States"]["SplitIntoBatches"]
    assert split["Type"] == "Map"
    assert split["ItemsPath"] == "$.symbolBatches"
    assert split["MaxConcurrency"] == 10  # x 1 worker per invocation at 2 s: the design's 5 requests/s
    assert split["ItemSelector"]["date.$"] == "$.date"
    assert split["ItemSelector"]["symbols.$"] == "$$.Map.Item.Value.symbols"
    assert split["ItemSelector"]["batchNumber.$"] == "$$.Map.Item.Value.batchNumber"
    assert split["ItemSelector"]["execution.$"] == "$$.Execution.Name"  # the batch lock's owner (locks.py)
    assert split["ResultPath"] == "$.batchResults"
    assert split["Next"] == "AggregateResults"
    aggregate = asl["States"]["AggregateResults"]
    assert aggregate["Type"] == "Pass" and aggregate["Next"] == "CheckDataQuality"


def test_fetch_task_retries_lambda_service_errors_and_task_failures(asl):
    task = _fetch_task(asl)
    assert task["Parameters"]["FunctionName"] == "${StockDataFetcherArn}"
    by_errors = {frozenset(r["ErrorEquals"]): r for r in task["Retry"]}
    assert frozenset(LAMBDA_SERVICE_ERRORS) in by_errors
    task_failed = by_errors[frozenset({"States.TaskFailed"})]
    assert (task_failed["MaxAttempts"], task_failed["IntervalSeconds"]) == (2, 30)
    # the service errors come first: the first matching retrier wins
    assert task["Retry"][0]["ErrorEquals"] == THROTTLED and set(task["Retry"][1]["ErrorEquals"]) == LAMBDA_SERVICE_ERRORS


def test_a_failed_batch_is_recorded_and_the_map_goes_on(asl):
    task = _fetch_task(asl)
    assert task["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "RecordBatchFailure"}]
    record = asl["States"]["SplitIntoBatches"]["ItemProcessor"]["States"]["RecordBatchFailure"]
    assert record["Type"] == "Pass" and record["End"] is True
    assert record["Parameters"] == {"batchNumber.$": "$.batchNumber", "failed": True, "error.$": "$.error.Error"}


def test_rows_never_flow_between_states(asl):
    selected = _fetch_task(asl)["ResultSelector"]
    assert all(path.startswith("$.Payload.metadata.") for key, path in selected.items() if key.endswith(".$"))
    assert "body" not in json.dumps(selected)


def test_failure_notifies_the_topic_then_fails(asl):
    notify = asl["States"]["NotifyFailure"]
    assert notify["Resource"] == "arn:${Partition}:states:::sns:publish"
    assert notify["Parameters"]["TopicArn"] == "${AlertTopicArn}"
    assert notify["Parameters"]["Subject"] == "Stock Stream Pipeline Failed"
    assert "$.error.Error" in notify["Parameters"]["Message.$"] and "$.error.Cause" in notify["Parameters"]["Message.$"]
    assert asl["States"][notify["Next"]]["Type"] == "Fail"


def test_deploy_fills_every_placeholder():
    target = res.Target(account="111122223333", region="ap-southeast-2", bucket="b", image_uri="x/y:z")
    definition = res.state_machine_definition(find_sources().asl_path.read_text(), target)
    text = json.dumps(definition)
    assert "${" not in text
    assert "arn:aws:lambda:ap-southeast-2:111122223333:function:asx-symbol-updater" in text
    assert "arn:aws:lambda:ap-southeast-2:111122223333:function:stock-data-fetcher" in text
    assert "arn:aws:sns:ap-southeast-2:111122223333:stock-stream-alerts" in text


def test_unknown_placeholder_is_refused():
    target = res.Target(account="1", region="r", bucket="b", image_uri="x/y:z")
    with pytest.raises(ValueError, match="Unknown"):
        res.state_machine_definition('{"a": "${Unknown}"}', target)


def test_the_data_quality_step_runs_on_the_fetcher_with_a_small_event(asl):
    check = asl["States"]["CheckDataQuality"]
    assert check["Type"] == "Task" and check["Resource"] == "arn:${Partition}:states:::lambda:invoke"
    assert check["Parameters"]["FunctionName"] == "${StockDataFetcherArn}"  # an existing function: no new Lambda or IAM
    assert check["Parameters"]["Payload"] == {
        "action": "finalize",
        "date.$": "$.date",
        "startedAt.$": "$$.Execution.StartTime",  # which session had closed is decided by when the run started
        "execution.$": "$$.Execution.Name",
        "batchNumbers.$": "$.batchResults[*].batchNumber",  # numbers and flags, never the symbol lists
        "batchFailed.$": "$.batchResults[*].failed",
    }
    assert set(check["ResultSelector"]) == {"session.$", "complete.$", "missing.$", "suspicious.$", "alert.$"}
    assert check["ResultPath"] == "$.quality"  # date and batchResults stay in the output (status --remote reads them)
    assert check["Retry"][0]["ErrorEquals"] == THROTTLED and set(check["Retry"][1]["ErrorEquals"]) == LAMBDA_SERVICE_ERRORS
    assert check["Next"] == "CompactEarlierDays"


def test_the_earlier_days_are_compacted_after_the_check_and_a_failure_there_never_fails_the_run(asl):
    step = asl["States"]["CompactEarlierDays"]
    assert step["Type"] == "Task" and step["Resource"] == "arn:${Partition}:states:::lambda:invoke"
    assert step["Parameters"] == {"FunctionName": "${StockDataFetcherArn}",
                                  "Payload": {"action": "compact", "date.$": "$.date"}}
    assert set(step["ResultSelector"]) == {"months.$", "files.$", "kept.$", "skipped.$"}  # small: no per-file lists
    assert step["ResultPath"] == "$.compaction"  # the quality block stays where IsDataComplete reads it
    assert step["Next"] == "IsDataComplete"
    assert step["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.compactionError", "Next": "IsDataComplete"}]
    assert step["Retry"][0]["ErrorEquals"] == THROTTLED and set(step["Retry"][1]["ErrorEquals"]) == LAMBDA_SERVICE_ERRORS
    assert not any(r["ErrorEquals"] == ["States.TaskFailed"] for r in step["Retry"])  # a failed compaction waits for the next run


def test_an_incomplete_day_notifies_the_topic_and_the_run_still_succeeds(asl):
    states = asl["States"]
    choice = states["IsDataComplete"]
    assert choice["Type"] == "Choice"
    assert choice["Choices"] == [{"Variable": "$.quality.complete", "BooleanEquals": False, "Next": "NotifyDataIncomplete"}]
    assert states[choice["Default"]]["Type"] == "Succeed"
    notify = states["NotifyDataIncomplete"]
    assert notify["Resource"] == "arn:${Partition}:states:::sns:publish"
    assert notify["Parameters"] == {"TopicArn": "${AlertTopicArn}", "Subject": "Stock Stream Data Incomplete",
                                    "Message.$": "$.quality.alert"}
    assert notify["ResultPath"] is None and states[notify["Next"]]["Type"] == "Succeed"


def test_a_failure_of_the_quality_step_never_fails_the_run(asl):
    states = asl["States"]
    [catch] = states["CheckDataQuality"]["Catch"]
    assert catch["ErrorEquals"] == ["States.ALL"] and catch["ResultPath"] not in ("$", "$.quality")
    notify = states[catch["Next"]]
    assert notify["Resource"] == "arn:${Partition}:states:::sns:publish" and notify["Parameters"]["TopicArn"] == "${AlertTopicArn}"
    assert notify["Parameters"]["Subject"] == "Stock Stream Data Check Failed"
    assert states[notify["Next"]]["Type"] == "Succeed"
    for name in ("NotifyDataIncomplete", catch["Next"]):  # nor does an alert that cannot be sent
        [notify_catch] = states[name]["Catch"]
        assert notify_catch["ErrorEquals"] == ["States.ALL"] and states[notify_catch["Next"]]["Type"] == "Succeed"
    # every path after the aggregate ends in Succeed: only the symbol step can fail an execution
    assert [name for name, state in states.items() if state["Type"] == "Fail"] == ["PipelineFailed"]


@pytest.mark.parametrize("partition", ["aws", "aws-cn", "aws-us-gov"])
def test_every_service_integration_is_in_the_targets_partition(asl, partition):
    """No `arn:aws:` is written into asl.json: the partition comes from the credentials (aws-cn, aws-us-gov)."""
    assert '"arn:aws:' not in find_sources().asl_path.read_text()
    target = res.Target(account="111122223333", region="cn-north-1", bucket="b", image_uri="x/y:z", partition=partition)
    definition = res.state_machine_definition(find_sources().asl_path.read_text(), target)
    resources = []

    def collect(states):
        for state in states.values():
            if "Resource" in state:
                resources.append(state["Resource"])
            if "ItemProcessor" in state:
                collect(state["ItemProcessor"]["States"])

    collect(definition["States"])
    assert len(resources) == 7 and all(r.startswith(f"arn:{partition}:states:::") for r in resources)
    assert f"arn:{partition}:lambda:cn-north-1:111122223333:function:stock-data-fetcher" in json.dumps(definition)


def test_the_maps_concurrency_is_the_one_deploy_reserves(asl):
    from stockstream_cli.settings import default_of

    assert asl["States"]["SplitIntoBatches"]["MaxConcurrency"] == res.MAP_MAX_CONCURRENCY == default_of("max_concurrency")


def test_the_deployed_fetchers_ask_yahoo_as_politely_as_the_design(asl):
    # the design: 10 invocations at once, one worker each, 2 s apart = 5 requests/s; each Map item one batch
    from stockstream_cli.settings import Settings

    target = res.Target("1", "r", "b", "i")
    invocations = res.state_machine_definition(json.dumps(asl), target)["States"]["SplitIntoBatches"]["MaxConcurrency"]
    workers = int(res.function_environment(target)["STOCKSTREAM_WORKERS"])
    assert (invocations, workers) == (res.MAP_MAX_CONCURRENCY, res.FETCHER_WORKERS) == (10, 1)
    assert invocations * workers / Settings().delay == 10 * 1 / 2.0 == 5.0
    assert asl["States"]["SplitIntoBatches"]["ItemSelector"]["symbols.$"] == "$$.Map.Item.Value.symbols"


def _retry_window(retrier: dict) -> float:
    """The longest a retrier keeps trying: the sum of its waits, each capped by MaxDelaySeconds."""
    cap = retrier.get("MaxDelaySeconds", float("inf"))
    return sum(min(retrier["IntervalSeconds"] * retrier["BackoffRate"] ** i, cap) for i in range(retrier["MaxAttempts"]))


@pytest.mark.parametrize("path", [("SplitIntoBatches", "FetchStockData"), ("CheckDataQuality",), ("CompactEarlierDays",)])
def test_a_throttled_invocation_rides_out_a_burst(asl, path):
    """Lambda throttles when the account's concurrency is used up (another stack, a rerun): waits of 5 s
    doubling to a 2-minute cap, jittered so the Map's items do not come back at once, span over 4 minutes."""
    state = asl["States"][path[0]]
    if len(path) == 2:
        state = state["ItemProcessor"]["States"][path[1]]
    [throttle] = [r for r in state["Retry"] if r["ErrorEquals"] == THROTTLED]
    assert state["Retry"][0] is throttle  # before the generic retriers, so it wins
    assert throttle["JitterStrategy"] == "FULL" and throttle["MaxDelaySeconds"] == 120
    assert _retry_window(throttle) == 5 + 10 + 20 + 40 + 80 + 120 >= 240
