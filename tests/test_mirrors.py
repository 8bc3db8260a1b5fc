"""Facts that must be stated twice, compared with their original so a drift fails here.

infra/asl.json's retries mirror the run's own retry policy (run/types.py), which run-local follows on
threads; the IAM policy's data prefixes (aws/resources.py) must cover every key layout.py writes; the
Lambda image's cache folder (infra/Dockerfile) is the one deploy sets (settings.LAMBDA_CACHE_DIR).
"""

from __future__ import annotations

import datetime as dt
import json

from stockstream_cli.dataset import layout
from stockstream_cli import backoff, settings
from stockstream_cli.aws import resources
from stockstream_cli.aws.assets import find_sources
from stockstream_cli.run import types as run_types

DAY = dt.date(2026, 11, 25)


def states() -> dict:
    machine = json.loads(find_sources().asl_path.read_text(encoding="utf-8"))
    found = dict(machine["States"])
    for state in machine["States"].values():
        found.update((state.get("ItemProcessor") or state.get("Iterator") or {}).get("States", {}))
    return found


def task_failed_retry(state: dict) -> dict:
    (retry,) = [r for r in state["Retry"] if r["ErrorEquals"] == ["States.TaskFailed"]]
    return retry


def test_the_symbols_step_retries_as_run_local_does():
    retry = task_failed_retry(states()["UpdateASXSymbols"])
    assert retry["MaxAttempts"] == run_types.SYMBOLS_STEP_RETRIES
    assert retry["BackoffRate"] == backoff.BACKOFF_RATE


def test_a_batch_retries_as_run_local_does():
    retry = task_failed_retry(states()["FetchStockData"])
    assert retry["MaxAttempts"] == run_types.BATCH_RETRIES
    assert retry["BackoffRate"] == backoff.BACKOFF_RATE


def test_the_iam_policy_grants_exactly_the_layouts_prefixes():
    target = resources.Target(account="111122223333", region="ap-southeast-2", bucket="b", image_uri="x/y:z")
    statement = {s["Sid"]: s for s in resources.lambda_role_policy(target)["Statement"]}["ReadWriteDataKeys"]
    granted = {arn.removeprefix(f"{target.bucket_arn}/").removesuffix("*") for arn in statement["Resource"]}
    assert granted == set(layout.DATA_PREFIXES) == {"symbols/", "raw-data/", "runs/", "actions/", "locks/",
                                                          "repairs/", "suspicions/"}
    written = [layout.symbols_key(DAY), layout.batch_data_key(DAY, 3), layout.batch_manifest_key(DAY, 3),
               layout.run_summary_key(DAY), layout.backfill_data_key(DAY, 0), layout.backfill_manifest_key(DAY, 0),
               layout.compacted_data_key("2026-11"), layout.repairs_key("AXE"), layout.SUSPICIONS_KEY]
    assert all(any(key.startswith(prefix) for prefix in granted) for key in written), written


def test_the_images_cache_folder_is_the_one_deploy_sets():
    lines = find_sources().dockerfile.read_text(encoding="utf-8").splitlines()
    (line,) = [line for line in lines if line.startswith(f"ENV {settings.CACHE_DIR_ENV}=")]
    assert line.split("=", 1)[1] == settings.LAMBDA_CACHE_DIR == "/tmp/stockstream-cache"
    target = resources.Target(account="111122223333", region="ap-southeast-2", bucket="b", image_uri="x/y:z")
    assert resources.function_environment(target)[settings.CACHE_DIR_ENV] == settings.LAMBDA_CACHE_DIR


def test_the_state_machines_actions_are_the_fetchers():
    """Every action a state of infra/asl.json sends the fetcher is one its handler knows."""
    from stockstream_cli.run.lambda_runtime import ACTIONS

    sent = {state["Parameters"]["Payload"].get("action") for state in states().values()
            if isinstance(state.get("Parameters", {}).get("Payload"), dict)}
    assert sent - {None} == {"finalize", "compact"} and sent - {None} <= set(ACTIONS)
