"""Issue 12 on the deployed pipeline: the ten-session play through the state machine on moto (the handlers
run in-process, as in tests/test_aws_pipeline.py) gives the same `load` as run-local: Yahoo's answer as of
the last day for every stored (symbol, date), and the actions the runs saw."""

from __future__ import annotations

import json

import boto3
import pytest

import actions_support as play
from aws_support import (IMAGE_URI, REGION, InProcessLambdas, allow_plain_http_in_moto, iso_execution_start_time,
                         markit_csv, no_retry_intervals, run_state_machines, serving, wait_for)
from stockstream_cli.aws.deploy import DeployOptions, deploy
from stockstream_cli.read.aggregate import DataAggregator
from stockstream_cli.store import LocalStore


@pytest.fixture
def pipeline(moto_endpoint, monkeypatch, fake_yahoo):
    run_state_machines(moto_endpoint)
    no_retry_intervals(monkeypatch)
    iso_execution_start_time(monkeypatch)
    InProcessLambdas().install(monkeypatch)
    document = deploy(DeployOptions(image_uri=IMAGE_URI), sleep=lambda s: None, waiter_delay=1)
    allow_plain_http_in_moto(document["bucket"])
    monkeypatch.setenv("STOCKSTREAM_STORE", document["store"])
    monkeypatch.setenv("STOCKSTREAM_CACHE_DIR", "/tmp/stockstream-cache")
    monkeypatch.setenv("STOCKSTREAM_BATCH_SIZE", str(play.BATCH_SIZE))
    with serving(markit_csv(play.CODES)) as url:
        monkeypatch.setenv("STOCKSTREAM_SOURCE_URL", url)
        yield {"yahoo": fake_yahoo, **document}


def test_the_ten_session_play_through_the_state_machine_loads_as_run_local_does(pipeline, tmp_path):
    fake = pipeline["yahoo"]
    play.program(fake)
    sfn = boto3.client("stepfunctions", region_name=REGION)
    for day in play.SESSIONS:
        fake.set_as_of(play.after_close(day))
        started = sfn.start_execution(stateMachineArn=pipeline["state_machine_arn"], name=f"daily-{day}",
                                      input=json.dumps({"date": day.isoformat()}))
        execution = wait_for(sfn, started["executionArn"])
        assert execution["status"] == "SUCCEEDED", execution.get("cause")
    deployed = DataAggregator(pipeline["store"])
    frame = play.assert_restated(deployed.store, fake)
    assert play.refetches(fake) == play.ACTIONS

    local = LocalStore(tmp_path / "local")
    play.play_local(local, fake, play.write_list(tmp_path / "asx.csv"))
    ignore = ["fetch_timestamp"]
    assert frame.drop(ignore).equals(DataAggregator(local).load().drop(ignore))
    assert deployed.load_actions().drop(ignore).equals(DataAggregator(local).load_actions().drop(ignore))
