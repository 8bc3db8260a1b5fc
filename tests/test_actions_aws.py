"""Issue 12 on the deployed pipeline: the ten-session play through the state machine on moto (the handlers
run in-process, as in tests/test_aws_pipeline.py) gives the same `load` as run-local: Yahoo's answer as of
the last day for every stored (symbol, date), and the actions the runs saw."""

from __future__ import annotations

import json

import boto3
import pytest

import actions_support as play
from aws_fake import REGION, deployed_pipeline, wait_for
from stockstream_cli.dataset.aggregate import DataAggregator
from stockstream_cli.dataset.store import LocalStore


@pytest.fixture
def pipeline(moto_endpoint, monkeypatch, fake_yahoo):
    with deployed_pipeline(moto_endpoint, monkeypatch, play.CODES, batch_size=play.BATCH_SIZE) as document:
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
