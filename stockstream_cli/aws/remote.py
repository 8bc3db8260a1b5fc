"""The deployed pipeline seen from the command line: `rerun-failed --remote` and `status --remote`.

A remote rerun works out what failed from the store alone, exactly as the local one does (pipeline.plan_rerun:
batches without a result, symbols recorded as failed with a retryable reason), and starts an execution whose
input already carries those batches as `symbolBatches`, so the state machine skips the symbol step. The
fetcher merges a batch's refetched symbols into its stored files (fetch.fetch_batch), so nothing is lost.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from ..errors import AwsError, InputError
from . import resources as res

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


def _session(session, profile: str | None, region: str | None):
    if session is not None:
        return session
    from .deploy import aws_session

    return aws_session(profile, region)


def state_machine_arn(session) -> str:
    from .deploy import find_state_machine

    arn = find_state_machine(session.client("stepfunctions"), res.STATE_MACHINE)
    if arn is None:
        raise AwsError(f"no state machine {res.STATE_MACHINE} in {session.region_name}: run `stockstream deploy` first "
                       "(or pass the --region it was deployed to)")
    return arn


def deployed_store(session) -> str:
    """The store the deployed fetcher writes to: its STOCKSTREAM_STORE."""
    try:
        config = session.client("lambda").get_function_configuration(FunctionName=res.FETCHER_FUNCTION)
    except Exception as exc:
        raise AwsError(f"cannot read the deployed {res.FETCHER_FUNCTION} function ({exc}): run `stockstream deploy`, "
                       "or pass --store s3://bucket") from None
    store = config.get("Environment", {}).get("Variables", {}).get("STOCKSTREAM_STORE")
    if not store:
        raise AwsError(f"{res.FETCHER_FUNCTION} has no STOCKSTREAM_STORE: run `stockstream deploy` again")
    return store


def rerun_items(store, day: dt.date, *, include_all: bool = False) -> tuple[dict, dict, list[dict]]:
    """(batches, manifests, Map items): what failed on `day`, as the state machine's batch items."""
    from ..run.rerun import rerun_plan

    batches, manifests, jobs = rerun_plan(store, day, include_all=include_all)
    items = [{"symbols": list(job.to_fetch), "batchNumber": job.batch_number, "date": day.isoformat()} for job in jobs]
    return batches, manifests, items


def rerun_remote(day: dt.date, *, store_uri: str | None = None, wait: bool = True, include_all: bool = False,
                 profile: str | None = None, region: str | None = None, session=None,
                 poll_interval: float = 5.0, timeout: float = 6 * 3600,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Start an execution carrying only `day`'s failed batches; wait for it (unless `wait` is False) and
    return the day's run document (pipeline.run_document, as rerun-failed writes to runs/D/run.json) plus
    "execution_arn" and "execution_status" (NOT_STARTED when nothing had failed)."""
    from ..run.summary import read_manifests, run_document, write_run
    from ..run.types import Observer
    from ..store import open_store

    session = _session(session, profile, region)
    if store_uri is not None and not store_uri.startswith("s3://"):
        raise InputError(f"--remote reruns on the deployed bucket: give --store s3://bucket or leave it out, not {store_uri!r}")
    machine = state_machine_arn(session)
    store = open_store(store_uri or deployed_store(session), profile=profile, region=session.region_name)
    started = time.monotonic()
    batches, manifests, items = rerun_items(store, day, include_all=include_all)
    if not items:
        run = run_document(day, batches, manifests, time.monotonic() - started, command="rerun-failed --remote")
        return {**run, "execution_arn": None, "execution_status": "NOT_STARTED"}

    sfn = session.client("stepfunctions")
    name = f"rerun-{day.isoformat()}-{uuid.uuid4().hex[:12]}"
    execution = sfn.start_execution(stateMachineArn=machine, name=name,
                                    input=json.dumps({"date": day.isoformat(), "symbolBatches": items}))["executionArn"]
    if not wait:
        run = run_document(day, batches, manifests, time.monotonic() - started, command="rerun-failed --remote")
        return {**run, "execution_arn": execution, "execution_status": "RUNNING",
                "batches_started": [item["batchNumber"] for item in items]}

    described = wait_for_execution(sfn, execution, poll_interval=poll_interval, timeout=timeout, sleep=sleep)
    manifests = read_manifests(store, day, batches, Observer())
    errors = {r["batchNumber"]: r.get("error", "failed") for r in _batch_results(described) if r.get("failed")}
    run = run_document(day, batches, manifests, time.monotonic() - started, command="rerun-failed --remote",
                       batch_errors=errors)
    quality = (_json(described.get("output")) or {}).get("quality")
    if isinstance(quality, dict):  # the execution's CheckDataQuality step (it wrote run.json first)
        run["quality"] = quality
    write_run(store, day, run)
    return {**run, "execution_arn": execution, "execution_status": described["status"]}


def wait_for_execution(sfn, execution_arn: str, *, poll_interval: float, timeout: float,
                       sleep: Callable[[float], None] = time.sleep) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] in TERMINAL:
            return described
        if time.monotonic() > deadline:
            raise AwsError(f"execution {execution_arn} still running after {timeout:.0f} s: "
                           "follow it with `stockstream status --remote`")
        sleep(poll_interval)


def remote_status(*, limit: int = 10, day: dt.date | None = None, profile: str | None = None,
                  region: str | None = None, session=None) -> dict:
    """The deployed state machine's latest executions (of `day`, if given), newest first, with their outcome."""
    session = _session(session, profile, region)
    machine = state_machine_arn(session)
    sfn = session.client("stepfunctions")
    listed = []
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=machine):
        listed.extend(page.get("executions", []))
        if day is None and len(listed) >= limit:
            break
    listed.sort(key=lambda e: e["startDate"], reverse=True)
    executions = []
    for entry in listed:
        summary = execution_summary(sfn.describe_execution(executionArn=entry["executionArn"]))
        if day is None or summary["date"] == day.isoformat():
            executions.append(summary)
        if len(executions) >= limit:
            break
    return {"state_machine_arn": machine, "region": session.region_name, "executions": executions}


def execution_summary(described: dict) -> dict[str, Any]:
    start, stop = described.get("startDate"), described.get("stopDate")
    results = _batch_results(described)
    document_in = _json(described.get("input")) or {}
    document_out = _json(described.get("output")) or {}
    return {
        "name": described["name"],
        "status": described["status"],
        "date": document_out.get("date") or document_in.get("date"),
        "kind": "rerun" if "symbolBatches" in document_in else "daily",
        "started": start.isoformat() if start else None,
        "stopped": stop.isoformat() if stop else None,
        "duration": round((stop - start).total_seconds(), 1) if start and stop else None,
        "batches": len(results) if results else None,
        "batches_failed": sorted(r["batchNumber"] for r in results if r.get("failed")),
        "symbols_fetched": sum(int(r.get("symbolsFetched", 0)) for r in results if not r.get("failed")),
        "symbols_failed": sum(len(r.get("symbolsFailed") or []) for r in results if not r.get("failed")),
        "error": described.get("error"),
        "cause": described.get("cause"),
        "execution_arn": described["executionArn"],
    }


def _batch_results(described: dict) -> list[dict]:
    output = _json(described.get("output")) or {}
    results = output.get("batchResults") if isinstance(output, dict) else None
    return [r for r in results or [] if isinstance(r, dict)]


def _json(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


