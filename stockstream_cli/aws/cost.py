"""What a deployment costs a month, from the execution profile the bucket records (or the defaults).

The profile is measured where it can be: the latest `runs/D/run.json` gives the symbols and batches, the
day's `runs/D/batch-N.json` the fetcher's seconds per batch. With no run yet, the defaults are the ASX's
~1,840 symbols in batches of 100 at the default 2 s between requests, on the deploy's fetcher threads per
batch (its shape: --workers, and --max-concurrency batches at once). Prices are AWS's list prices (USD,
2026, ap-southeast-2 and us-east-1 alike for these services); free tiers are left out, so it is an upper bound.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from ..dataset import layout
from ..settings import default_of
from . import defaults
from . import resources as res

PRICE_S3_PUT = 0.005 / 1000
PRICE_S3_GET = 0.0004 / 1000
PRICE_S3_GB_MONTH = 0.025
PRICE_ALARM_METRIC = 0.10  # per metric an alarm reads, a month
PRICE_DASHBOARD = 3.00
PRICE_CUSTOM_METRIC = 0.30
PRICE_LOGS_GB = 0.57
PRICE_ECR_GB_MONTH = 0.10
IMAGE_GB = 0.35  # the Lambda image, compressed in ECR (yfinance, polars, pandas)
EMF_METRICS = 8  # SymbolsFetched, SymbolsFailed, BatchesProcessed, BatchesFailed, TotalSymbols, DataIncomplete, RowsMissing, RowsSuspicious
DAYS_PER_MONTH = 30.4


def fetcher_seconds(workers: int, symbols_per_batch: int = 100) -> float:
    """A batch's billed seconds: its symbols on `workers` threads, each the default delay apart, plus about 5 s
    of work (B7 measures both shapes: ~200 s on 1 thread, ~39 s on 5)."""
    return symbols_per_batch / workers * default_of("delay") + 5.0


@dataclasses.dataclass(frozen=True)
class Profile:
    symbols: int = 1840
    batches: int = 19
    fetcher_seconds_per_batch: float = fetcher_seconds(res.FETCHER_WORKERS)
    updater_seconds: float = 10.0
    finalize_seconds: float = 30.0
    bytes_per_day: int = 19 * 60_000
    source: str = "default profile: no run in the bucket yet"


def measured_profile(store, workers: int = res.FETCHER_WORKERS) -> Profile | None:
    """The latest run the store holds, as a Profile; None when it holds none. A run without timings is priced
    at `workers` threads per batch."""
    days = sorted({day for key in store.list(layout.RUNS_PREFIX) if (day := layout.parse_run_summary_key(key))})
    if not days:
        return None
    day = days[-1]
    run = json.loads(store.get(layout.run_summary_key(day)))
    seconds = []
    for key in store.list(layout.run_prefix(day)):
        if layout.parse_batch_manifest_key(key):
            seconds.append(float(json.loads(store.get(key)).get("metadata", {}).get("execution_time", 0.0)))
    sizes = store.list_versions(layout.day_data_prefix(day)) if hasattr(store, "list_versions") else {}
    measured = [s for s in seconds if s > 0]
    return Profile(
        symbols=int(run.get("total_symbols") or 0),
        batches=int(run.get("num_batches") or len(seconds) or 1),
        fetcher_seconds_per_batch=sum(measured) / len(measured) if measured else fetcher_seconds(workers),
        bytes_per_day=int(sum(_size(v) for v in sizes.values())) or Profile.bytes_per_day,
        source=f"measured from {layout.run_prefix(day)} in the bucket",
    )


def _size(version: Any) -> int:
    match = re.search(r"(\d+)", str(version))
    return int(match.group(1)) if match else 0


def executions_per_month(schedule: str) -> float:
    """From the EventBridge expression: cron's hours and weekdays, or rate's period."""
    rate = re.match(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", schedule)
    if rate:
        per_day = {"minute": 1440, "hour": 24, "day": 1}[rate.group(2).rstrip("s")] / int(rate.group(1))
        return round(per_day * DAYS_PER_MONTH, 1)
    fields = schedule.removeprefix("cron(").removesuffix(")").split()
    if len(fields) != 6:
        return DAYS_PER_MONTH
    hours = len(fields[1].split(",")) if fields[1] not in {"*"} else 24
    weekday = fields[4].upper()
    share = 5 / 7 if weekday in {"MON-FRI", "2-6"} else (len(weekday.split(",")) / 7 if weekday not in {"*", "?"} else 1)
    return round(DAYS_PER_MONTH * hours * share, 1)


def estimate(document: dict, profile: Profile | None = None) -> dict[str, Any]:
    """The monthly cost of the deploy document's stack, line by line, for its shape (batches at once, threads each)."""
    shape = {"max_concurrency": document.get("max_concurrency", res.MAP_MAX_CONCURRENCY),
             "workers": document.get("workers", res.FETCHER_WORKERS)}
    shape["requests_per_second"] = round(shape["max_concurrency"] * shape["workers"] / default_of("delay"), 2)
    profile = profile or Profile(fetcher_seconds_per_batch=fetcher_seconds(shape["workers"]))
    runs = executions_per_month(document.get("schedule") or defaults.DEFAULT_SCHEDULE)
    arm = (document.get("arch") or defaults.DEFAULT_ARCH) == "arm64"
    gb_s = res.PRICE_LAMBDA_ARM_GB_S if arm else res.PRICE_LAMBDA_X86_GB_S
    memory = {spec.key: spec.memory_mb / 1024 for spec in res.FUNCTIONS}
    lambda_gb_s = (memory["updater"] * profile.updater_seconds
                   + memory["fetcher"] * (profile.fetcher_seconds_per_batch * profile.batches + profile.finalize_seconds))
    invocations = 1 + profile.batches + 1
    transitions = 8 + 2 * profile.batches
    s3_puts = 2 * profile.batches + 2
    s3_gets = 2 * profile.batches + 2 * profile.batches + 10  # merges read the batch back; the quality step reads the day
    alarm_metrics = sum(len(a.get("Metrics", [])) - 1 if a.get("Metrics") else 1 for a in res.alarms(_any_target()))
    lines = [
        ("Lambda compute", runs * lambda_gb_s * gb_s,
         f"{lambda_gb_s:,.0f} GB-s an execution: {profile.batches} batches x {profile.fetcher_seconds_per_batch:.0f} s at "
         f"{res.FUNCTIONS[1].memory_mb} MB, {shape['workers']} fetcher thread(s) each, {shape['max_concurrency']} at once"),
        ("Lambda requests", runs * invocations * res.PRICE_LAMBDA_REQUEST, f"{invocations} invocations an execution"),
        ("Step Functions", runs * transitions * res.PRICE_STATE_TRANSITION, f"{transitions} state transitions an execution"),
        ("S3 requests", runs * (s3_puts * PRICE_S3_PUT + s3_gets * PRICE_S3_GET), f"{s3_puts} PUT, {s3_gets} GET an execution"),
        ("S3 storage (grows)", runs * profile.bytes_per_day / 1e9 * PRICE_S3_GB_MONTH,
         f"{profile.bytes_per_day / 1e6:.1f} MB more each execution, priced for its first month"),
        ("CloudWatch alarms", alarm_metrics * PRICE_ALARM_METRIC, f"{alarm_metrics} alarm metrics"),
        ("CloudWatch dashboard", PRICE_DASHBOARD, "1 dashboard (an account's first 3 are free)"),
        ("CloudWatch metrics", EMF_METRICS * PRICE_CUSTOM_METRIC, f"{EMF_METRICS} custom metrics (the first 10 are free)"),
        ("CloudWatch Logs", runs * 0.002 * PRICE_LOGS_GB, "about 2 MB of logs an execution"),
        ("ECR storage", res.KEEP_IMAGES * IMAGE_GB * PRICE_ECR_GB_MONTH, f"up to {res.KEEP_IMAGES} images kept"),
    ]
    total = sum(cost for _, cost, _ in lines)
    return {
        "monthly_usd": round(total, 2),
        "per_execution_usd": round((lines[0][1] + lines[1][1] + lines[2][1] + lines[3][1]) / runs, 4) if runs else 0.0,
        "executions_per_month": runs,
        "shape": shape,
        "profile": dataclasses.asdict(profile),
        "lines": [{"item": item, "monthly_usd": round(cost, 2), "basis": basis} for item, cost, basis in lines],
    }


def _any_target() -> res.Target:
    return res.Target(account="000000000000", region="us-east-1", bucket="b", image_uri="r/i:t")
