"""The deployed pipeline seen from the command line: `run-remote`, `rerun-failed --remote`, `status --remote`.

`run-remote` starts an execution now, as the schedule would. A remote rerun works out what failed from the store alone, exactly as the local one does (run.rerun.plan_rerun:
batches without a result, symbols recorded as failed with a retryable reason), and starts an execution whose
input already carries those batches as `symbolBatches`, so the state machine skips the symbol step. The
fetcher merges a batch's refetched symbols into its stored files (run.batch.fetch_batch), so nothing is lost.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from .. import hints
from ..errors import AwsError, InputError, aws_error_code, named
from ..settings import STORE_ENV
from . import resources as res

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


def _session(session, profile: str | None, region: str | None):
    if session is not None:
        return session
    from .deploy import aws_session

    return aws_session(profile, region)


def _names(session, stage: str | None) -> res.Names:
    return res.Names(res.check_stage(stage), session.region_name)


def state_machine_arn(session, stage: str | None = None) -> str:
    from .remote_state import RemoteState

    names = _names(session, stage)
    arn = RemoteState(session).state_machine_arn(names.state_machine)
    if arn is None:
        deploy = hints.command("deploy", *(("--stage", stage) if stage else ()))
        raise AwsError(f"no state machine {names.state_machine} in {session.region_name}: run `{deploy}` "
                       f"first (or pass the {named('region')} and {named('stage')} it was deployed with)")
    return arn


def deployed_store(session, stage: str | None = None) -> str:
    """The store the deployed fetcher writes to: its STOCKSTREAM_STORE."""
    fetcher = _names(session, stage).fetcher_function
    try:
        config = session.client("lambda").get_function_configuration(FunctionName=fetcher)
    except Exception as exc:
        raise AwsError(f"cannot read the deployed {fetcher} function ({exc}): run `stockstream deploy`, "
                       f"or pass {named('store')} s3://bucket") from None
    store = config.get("Environment", {}).get("Variables", {}).get(STORE_ENV)
    if not store:
        raise AwsError(f"{fetcher} has no {STORE_ENV}: run `stockstream deploy` again")
    return store


def running_executions(sfn, machine: str, day: dt.date) -> list[str]:
    """The names of the executions of `day` (or undated daily ones started today) still running."""
    running = []
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=machine, statusFilter="RUNNING"):
        for entry in page.get("executions", []):
            document = _json(sfn.describe_execution(executionArn=entry["executionArn"]).get("input")) or {}
            started = entry["startDate"]
            undated_today = not document.get("date") and _sydney_date(started) == day
            if document.get("date") == day.isoformat() or undated_today:
                running.append(entry["name"])
    return running


def _sydney_date(moment: dt.datetime) -> dt.date:
    from zoneinfo import ZoneInfo

    from ..calendar import SYDNEY

    return moment.astimezone(ZoneInfo(SYDNEY)).date()


def start_remote(day: dt.date | None, *, stage: str | None = None, wait: bool = False, profile: str | None = None,
                 region: str | None = None, session=None, poll_interval: float = 5.0, timeout: float = 6 * 3600,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """`run-remote`: start the deployed pipeline now with the schedule's input (plus the date, if given);
    with `wait`, until it ends. Returns the execution's summary (execution_summary)."""
    session = _session(session, profile, region)
    machine = state_machine_arn(session, stage)
    sfn = session.client("stepfunctions")
    label = day.isoformat() if day else dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H%M%S")
    payload = {"date": day.isoformat()} if day else json.loads(res.SCHEDULE_INPUT)
    name = f"manual-{label}-{uuid.uuid4().hex[:8]}"
    execution = sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(payload))["executionArn"]
    if not wait:
        return execution_summary(sfn.describe_execution(executionArn=execution))
    return execution_summary(wait_for_execution(sfn, execution, poll_interval=poll_interval, timeout=timeout, sleep=sleep))


def rerun_items(store, day: dt.date, *, include_all: bool = False) -> tuple[dict, dict, list[dict]]:
    """(batches, manifests, Map items): what failed on `day`, as the state machine's batch items."""
    from ..run.rerun import rerun_plan

    batches, manifests, jobs = rerun_plan(store, day, include_all=include_all)
    items = [{"symbols": list(job.to_fetch), "batchNumber": job.batch_number, "date": day.isoformat()} for job in jobs]
    return batches, manifests, items


def rerun_remote(day: dt.date, *, store_uri: str | None = None, wait: bool = True, include_all: bool = False,
                 stage: str | None = None, profile: str | None = None, region: str | None = None, session=None,
                 poll_interval: float = 5.0, timeout: float = 6 * 3600,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Start an execution carrying only `day`'s failed batches; wait for it (unless `wait` is False) and
    return the day's run document (dataset.summary.run_document, as rerun-failed writes to runs/D/run.json) plus
    "execution_arn" and "execution_status" (NOT_STARTED when nothing had failed)."""
    from ..dataset.commit import day_writer
    from ..dataset.summary import read_manifests, run_document, utc_now
    from ..run.types import Observer
    from ..dataset.store import open_store

    session = _session(session, profile, region)
    if store_uri is not None and not store_uri.startswith("s3://"):
        raise InputError(f"reruns on the deployed bucket: give {named('store')} s3://bucket or leave it out, "
                         f"not {store_uri!r}", parameter="remote")
    machine = state_machine_arn(session, stage)
    sfn = session.client("stepfunctions")
    running = running_executions(sfn, machine, day)
    if running:  # two runs of a day at once would double the fetchers asking Yahoo, and race on the files
        raise InputError(f"the pipeline is still running {day.isoformat()} ({', '.join(running)}): wait for it to end "
                         f"({hints.command('status', '--remote')}), then rerun what failed")
    store = open_store(store_uri or deployed_store(session, stage), profile=profile, region=session.region_name)
    started = time.monotonic()
    batches, manifests, items = rerun_items(store, day, include_all=include_all)
    if not items:
        run = run_document(day, batches, manifests, time.monotonic() - started, command="rerun-failed --remote",
                           finished_at=utc_now())
        return {**run, "execution_arn": None, "execution_status": "NOT_STARTED"}

    name = f"rerun-{day.isoformat()}-{uuid.uuid4().hex[:12]}"
    execution = sfn.start_execution(stateMachineArn=machine, name=name,
                                    input=json.dumps({"date": day.isoformat(), "symbolBatches": items}))["executionArn"]
    if not wait:
        run = run_document(day, batches, manifests, time.monotonic() - started, command="rerun-failed --remote",
                           finished_at=utc_now())
        return {**run, "execution_arn": execution, "execution_status": "RUNNING",
                "batches_started": [item["batchNumber"] for item in items]}

    described = wait_for_execution(sfn, execution, poll_interval=poll_interval, timeout=timeout, sleep=sleep)
    manifests = read_manifests(store, day, batches, Observer().note)
    errors = {r["batchNumber"]: r.get("error", "failed") for r in _batch_results(described) if r.get("failed")}
    run = run_document(day, batches, manifests, time.monotonic() - started, command="rerun-failed --remote",
                       finished_at=utc_now(), batch_errors=errors)
    quality = (_json(described.get("output")) or {}).get("quality")
    if isinstance(quality, dict):  # the execution's CheckDataQuality step (it wrote run.json first)
        run["quality"] = quality
    with day_writer(store, day, "rerun-failed --remote", wait=True) as writer:  # the execution's batches are done
        writer.commit_run(day, run)
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
                           f"follow it with `{hints.command('status', '--remote')}`")
        sleep(poll_interval)


def remote_status(*, limit: int = 10, day: dt.date | None = None, stage: str | None = None,
                  profile: str | None = None, region: str | None = None, session=None) -> dict:
    """The deployed state machine's latest executions (of `day`, if given), newest first, with their outcome."""
    session = _session(session, profile, region)
    machine = state_machine_arn(session, stage)
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
    return {"state_machine_arn": machine, "region": session.region_name, "stage": stage, "executions": executions}


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




# ---------------------------------------------------------------- `stockstream logs`

_SINCE_RE = __import__("re").compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """`1h`, `30m`, `2d` ago, or an ISO date or time (UTC unless it says otherwise)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    match = _SINCE_RE.match(text.strip().lower())
    if match:
        return now - dt.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"{text!r}: use a duration (90s, 30m, 1h, 2d) or an ISO time (2026-11-25T20:00)",
                         parameter="since") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def log_groups(stage: str | None, region: str, function: str | None) -> list[str]:
    names = res.Names(res.check_stage(stage), region)
    chosen = {"updater": [names.symbol_function], "fetcher": [names.fetcher_function], None: list(names.functions)}
    if function not in chosen:
        raise InputError(f"{function!r}: use updater or fetcher", parameter="function")
    return [names.function_log_group(name) for name in chosen[function]]


def read_logs(*, function: str | None = None, since: str = "1h", follow: bool = False, stage: str | None = None,
              profile: str | None = None, region: str | None = None, session=None,
              on_event: Callable[[dict], None], poll_interval: float = 2.0, max_polls: int | None = None,
              sleep: Callable[[float], None] = time.sleep) -> int:
    """Every event of the functions' log groups since `since`, oldest first, to `on_event` ({"group", "timestamp",
    "message"}); with `follow`, keeps polling for new ones (until interrupted, or `max_polls`). Returns the count."""
    session = _session(session, profile, region)
    groups = log_groups(stage, session.region_name, function)
    logs = session.client("logs")
    start = int(parse_since(since).timestamp() * 1000)
    seen: set[str] = set()
    count, polls = 0, 0
    while True:
        events = []
        for group in groups:
            try:
                for page in logs.get_paginator("filter_log_events").paginate(logGroupName=group, startTime=start):
                    events.extend({"group": group, **e} for e in page.get("events", []))
            except Exception as exc:
                if aws_error_code(exc) != "ResourceNotFoundException":
                    raise
        for event in sorted(events, key=lambda e: (e["timestamp"], e.get("eventId", ""))):
            key = event.get("eventId") or f"{event['group']}:{event['timestamp']}:{event['message']}"
            if key in seen:
                continue
            seen.add(key)
            start = max(start, event["timestamp"])
            on_event({"group": event["group"], "timestamp": event["timestamp"], "message": event["message"].rstrip("\n")})
            count += 1
        polls += 1
        if not follow or (max_polls is not None and polls >= max_polls):
            return count
        sleep(poll_interval)
