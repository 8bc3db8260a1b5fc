"""B7: what one day of the deployed pipeline costs in Lambda GB-seconds, and how long it takes.

An execution of the real state machine (infra/asl.json as `stockstream deploy` fills it in) on a moto server
in this process, with moto running it (Choice, Map with its MaxConcurrency, Retry, Catch) and the project's
own two handlers invoked in-process (tests/aws_fake.py's moto_server and InProcessLambdas, as the tests use
them), over a generated list of the full ASX size served by a local HTTP server (tests/asx_fake.py), Yahoo being tests/yahoo_fake.py's
FakeYahoo at the HTTP transport with 20 ms per request and no limit (a healthy day), and the default
politeness: 2 s between the requests of each worker (Settings().delay).

A benchmark cannot sleep 2 s a request for an hour of Lambda time, so time is simulated where the code
waits and measured where it works:

- every wait the fetcher's pacer asks for (the --delay between a worker's requests) and the simulated
  Yahoo's 20 ms per request go to a simulated clock of the waiting thread (tests/clock.py's ThreadClocks)
  instead of sleeping (the pacer takes an injectable clock and sleep: `pacing.pacer_from_settings` is given
  them here);
- an invocation's billed duration is its real time in the handler (the parse, cleaning, polars, Parquet,
  moto's S3: all real work, run here, slower than on Lambda's own CPU only when this machine is busier)
  plus the simulated waits of its slowest worker thread (an upper bound: that thread's real work is counted
  as if no other thread had run meanwhile);
- billed GB-seconds: the sum over invocations of that duration times the function's configured memory
  (moto's function configuration, as deploy set it);
- wall time: the symbol step, then the Map scheduled as Step Functions does (items in order, at most
  MaxConcurrency at once, each taking its billed duration), then the data-quality step; Step Functions'
  own transitions (tens of ms each) are left out.

The same execution is measured in deploy's default shape (the design's: 1 fetcher thread per invocation, 10
invocations at once) and in `deploy --max-concurrency 2 --workers 5` (the same 5 requests/s toward Yahoo from a
fifth of the functions), each deployed with those options, beside the design's own table: 2,655 GB-s and 12
minutes a day.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import threading
import time
from collections.abc import Iterator

from benchmarks.common import Figure
from benchmarks.fake_server import use_test_fakes

DESIGN_GB_S = 2655.0  # the design's cost table: a day of the original sizing
DESIGN_WALL_S = 12 * 60.0
DAY = "2026-11-25"


@dataclasses.dataclass
class Invocation:
    function: str
    kind: str  # symbols, batch, finalize, compact
    batch: int | None
    memory_mb: int
    real: float
    waited: float

    @property
    def billed(self) -> float:
        return self.real + self.waited


@dataclasses.dataclass
class Day:
    label: str
    workers: int
    max_concurrency: int
    invocations: list[Invocation]
    status: str
    fetched: int
    total: int
    real_seconds: float

    @property
    def gb_s(self) -> float:
        return sum(i.billed * i.memory_mb / 1024 for i in self.invocations)

    @property
    def batches(self) -> list[Invocation]:
        return sorted((i for i in self.invocations if i.kind == "batch"), key=lambda i: i.batch)

    @property
    def wall(self) -> float:
        lanes = [0.0] * self.max_concurrency
        for item in self.batches:  # Step Functions starts the items in order, MaxConcurrency at a time
            lane = lanes.index(min(lanes))
            lanes[lane] += item.billed
        others = sum(i.billed for i in self.invocations if i.kind != "batch")
        return others + max(lanes, default=0.0)


@contextlib.contextmanager
def moto_environment() -> Iterator[str]:
    """A moto server in this process (tests/aws_fake.py), every AWS access pointed at it and no STOCKSTREAM_*
    setting of the caller's; yields its endpoint."""
    use_test_fakes()
    from aws_fake import moto_server, pointed_at, reset

    with moto_server() as endpoint, pointed_at(endpoint):
        for name in [n for n in os.environ if n.startswith("STOCKSTREAM_")]:
            del os.environ[name]
        try:
            yield endpoint
        finally:
            reset(endpoint)  # moto's state outlives the server


def run_day(*, symbols: int, latency: float, workers: int, max_concurrency: int, label: str, work) -> Day:
    """One execution of the state machine deployed with `--max-concurrency max_concurrency --workers workers`
    over `symbols` symbols (see the module docstring)."""
    import boto3
    import pytest

    use_test_fakes()
    from asx_fake import asx_codes, markit_csv, serving
    from aws_fake import (IMAGE_URI, REGION, InProcessLambdas, allow_plain_http_in_moto, iso_execution_start_time,
                          no_retry_intervals, run_state_machines, wait_for)
    from clock import ThreadClocks
    from yahoo_fake import FakeYahoo

    from stockstream_cli.aws import resources as res
    from stockstream_cli.aws.deploy import DeployOptions, deploy
    from stockstream_cli.fetch import pacing

    waits = ThreadClocks(base=time.monotonic)  # each thread's waits simulated, added to its real time
    invocations: list[Invocation] = []
    real_pacer_for = pacing.pacer_for
    memory = {res.SYMBOL_FUNCTION: res.FUNCTIONS[0].memory_mb, res.FETCHER_FUNCTION: res.FUNCTIONS[1].memory_mb}

    class TimedLambdas(InProcessLambdas):
        def invoke(self, function, event):
            event = event if isinstance(event, dict) else json.loads(event or "{}")
            kind = ("symbols" if function.function_name == res.SYMBOL_FUNCTION
                    else event["action"] if event.get("action") in ("finalize", "compact") else "batch")
            me = threading.current_thread().name
            waits.take({me})
            started = time.perf_counter()
            answer = super().invoke(function, event)
            real = time.perf_counter() - started
            batch = event.get("batchNumber") if kind == "batch" else None
            waited = waits.take({me, f"fetch-batch-{batch}_"}) if kind == "batch" else 0.0
            invocations.append(Invocation(function.function_name, kind, batch,
                                          int(getattr(function, "memory_size", 0) or memory[function.function_name]),
                                          real, waited))
            return answer

    def simulated_pacer(settings, *, sleep=None, clock=None, budget=None):
        return real_pacer_for(settings, sleep=waits.sleep, clock=waits, budget=budget)

    codes = asx_codes(symbols)
    with moto_environment() as endpoint, pytest.MonkeyPatch.context() as patch, \
            FakeYahoo(latency=latency, sleep=waits.sleep).installed() as fake:
        run_state_machines(endpoint)
        no_retry_intervals(patch)
        iso_execution_start_time(patch)
        lambdas = TimedLambdas().install(patch)
        patch.setattr(pacing, "pacer_from_settings", simulated_pacer)
        patch.setattr(pacing, "pacer_for", simulated_pacer)
        document = deploy(DeployOptions(image_uri=IMAGE_URI, max_concurrency=max_concurrency, workers=workers),
                          sleep=lambda s: None, waiter_delay=1)
        allow_plain_http_in_moto(document["bucket"])
        lam = boto3.client("lambda", region_name=REGION)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        definition = json.loads(sfn.describe_state_machine(stateMachineArn=document["state_machine_arn"])["definition"])
        concurrency = definition["States"]["SplitIntoBatches"]["MaxConcurrency"]
        configured = lam.get_function_configuration(FunctionName=res.FETCHER_FUNCTION)["Environment"]["Variables"]
        cache = work / f"b7-cache-{label.split(':')[0].replace(' ', '-')}"
        patch.setenv("STOCKSTREAM_CACHE_DIR", str(cache))
        with serving(markit_csv(codes)) as url, contextlib.redirect_stdout(io.StringIO()):  # the handlers' EMF lines
            patch.setenv("STOCKSTREAM_SOURCE_URL", url)
            started = time.perf_counter()
            arn = sfn.start_execution(stateMachineArn=document["state_machine_arn"], name=f"b7-{label.split(':')[0]}",
                                      input=json.dumps({"date": DAY}))["executionArn"]
            execution = wait_for(sfn, arn, attempts=10 ** 6)
            real_seconds = time.perf_counter() - started
        output = json.loads(execution.get("output") or "{}")
        fetched = sum(r.get("symbolsFetched", 0) for r in output.get("batchResults", []))
    return Day(label, int(configured.get("STOCKSTREAM_WORKERS", 1)), concurrency, invocations, execution["status"],
               fetched, symbols, real_seconds)


def measure(*, symbols: int, latency: float, work, both: bool = True) -> list[Figure]:
    """B7 in deploy's default shape and (with `both`) in the 2 x 5 one: each with its own target."""
    from stockstream_cli.aws import resources as res

    shapes = [(res.MAP_MAX_CONCURRENCY, res.FETCHER_WORKERS, "default"), (2, 5, "2 x 5")][: 2 if both else 1]
    days = [run_day(symbols=symbols, latency=latency, workers=workers, max_concurrency=concurrency, work=work,
                    label=f"{name}: --max-concurrency {concurrency} --workers {workers}")
            for concurrency, workers, name in shapes]
    # the default shape is the design's: its table is the target; 2 x 5 is there to cost a fifth of it
    gb_s_targets = {"default": DESIGN_GB_S, "2 x 5": DESIGN_GB_S / 5}
    figures = []
    for day in days:
        limit = gb_s_targets[day.label.split(":")[0]]
        batches = day.batches
        per_batch = sum(b.billed for b in batches) / max(len(batches), 1)
        rate = day.workers * day.max_concurrency / 2.0
        detail = (f"{day.status}, {day.fetched} of {day.total} symbols; {len(day.invocations)} invocations: "
                  f"{len(batches)} batches of ~{per_batch:.0f} s ({sum(b.real for b in batches) / max(len(batches), 1):.1f} s "
                  f"of it real work), {day.workers} workers each, at most {day.max_concurrency} at once = "
                  f"{rate:g} requests/s toward Yahoo; measured in {day.real_seconds:.0f} s of real time")
        target = f"<= {limit:,.0f}" + (" (the design's table)" if limit == DESIGN_GB_S else f" (1/5 of {DESIGN_GB_S:,.0f})")
        figures.append(Figure("B7", f"{day.label}: billed Lambda GB-s a day", day.gb_s, "GB-s", target,
                              day.gb_s <= limit and day.fetched == day.total and day.status == "SUCCEEDED", detail))
        figures.append(Figure("B7", f"{day.label}: wall time of the day", day.wall, "s",
                              f"<= {DESIGN_WALL_S:.0f} s (the design's)", day.wall <= DESIGN_WALL_S,
                              f"symbol step + the Map at MaxConcurrency {day.max_concurrency} + the quality step"))
    if len(days) == 2:
        figures.append(Figure("B7", "2 x 5 vs the default shape: GB-s, measured both ways", days[1].gb_s / days[0].gb_s,
                              "x", note=f"the design's own table: {DESIGN_GB_S:,.0f} GB-s, {DESIGN_WALL_S / 60:.0f} min"))
    return figures
