"""B1 pacing and B2 requests per symbol: `stockstream run-local` as a whole process against a simulated Yahoo.

B2 counts every HTTP request at the transport (cookie, crumb, consent, chart, other), in a run of its own
against a Yahoo with no limit (a healthy day).

The list is generated in the Markit directory format (tests/asx_fake.py: valid codes, names with
commas); Yahoo is a FakeYahoo with a latency per request and a server-side limit (429 beyond R requests
in any second), served to the measured process through benchmarks/fake_server.py. Every mode starts with
a cold yfinance cache and an empty store, and keeps the default retries and retry wait (2 s, doubling).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

from benchmarks.common import DAY, Figure, ProcessRun, asx_list, launch_argv, run_process, stockstream_env
from benchmarks.fake_server import FakeServer
from benchmarks.launch import DESIGN_PACING_ENV


@dataclasses.dataclass
class Mode:
    key: str
    label: str
    args: tuple[str, ...]
    design: bool = False  # the original design's pacing: a fixed delay per worker, no shared budget


def modes(rate: float, workers: int) -> list[Mode]:
    return [
        Mode("rate", f"--rate {rate:g}", ("--rate", f"{rate:g}")),
        Mode("adaptive", "adaptive (--delay 0, no --rate)", ("--delay", "0")),
        Mode("design", f"design: {workers} workers, --delay {workers / rate:g}",
             ("--delay", f"{workers / rate:g}"), design=True),
    ]


@dataclasses.dataclass
class PacingRun:
    mode: Mode
    process: ProcessRun
    summary: dict
    requests: int  # chart requests the simulator received
    refused: int  # of which answered 429
    tz_probes: int
    simulator_cpu: float  # CPU seconds this process (the simulated Yahoo) spent serving the run
    by_kind: dict = dataclasses.field(default_factory=dict)  # every HTTP request the simulator received, by kind
    started_at: float = 0.0  # the process's start, on the simulator's clock (time.monotonic)
    first_request_at: float = 0.0
    last_request_at: float = 0.0
    requests_all: int = 0  # every kind

    @property
    def start_up(self) -> float:
        """Seconds from the process's start to the first request Yahoo saw (Python, imports, the list, workers)."""
        return self.first_request_at - self.started_at

    @property
    def span(self) -> float:
        """Seconds from the first request Yahoo saw to the last: the pacing itself."""
        return self.last_request_at - self.first_request_at

    @property
    def lost(self) -> int:
        return self.summary.get("total_symbols", 0) - self.summary.get("symbols_fetched", 0)


def _own_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_floor(run: PacingRun, ideal: float) -> Figure:
    """The CPU the run and the simulator needed together, spread over every core: no wall time can be lower."""
    cores = os.cpu_count() or 1
    total = run.process.cpu + run.simulator_cpu
    floor = total / cores
    return Figure("B1", f"{run.mode.label}: CPU floor (all CPU / {cores} cores) vs ideal", floor / ideal, "x",
                  note=f"run-local {run.process.cpu:.1f} s CPU in {run.process.processes} processes + simulator "
                       f"{run.simulator_cpu:.1f} s = {total:.1f} s: at least {floor:.1f} s on {cores} cores")


def run_mode(mode: Mode, list_path: Path, *, latency: float, limit: float | None, workers: int,
             extra: tuple[str, ...] = ()) -> PacingRun:
    with FakeServer(latency=latency, rate_limit=limit) as server:
        store = tempfile.mkdtemp(prefix="stockstream-bench-store-")
        argv = launch_argv("run-local", "--date", DAY.isoformat(),
                           "--from-file", str(list_path), "--store", store, "--concurrency", str(workers), "--json",
                           *mode.args, *extra)
        design = {DESIGN_PACING_ENV: "1"} if mode.design else {}
        simulator_started = _own_cpu()
        started_at = time.monotonic()
        process = run_process(argv, env=stockstream_env({**server.environment(), **design}))
        simulator_cpu = _own_cpu() - simulator_started
        fake = server.fake
        try:
            summary = json.loads(process.stdout)
        except ValueError:
            summary = {"error": process.stderr.strip().splitlines()[-1:] or ["no output"]}
        chart = [r for r in fake.requests if r.kind == "chart"]
        refused = sum(1 for r in chart if r.outcome == "rate_limited")
        times = [r.at for r in fake.requests] or [started_at]
        return PacingRun(mode, process, summary, len(chart), refused, fake.tz_probes(), simulator_cpu, fake.by_kind(),
                         started_at, min(times), max(times), len(fake.requests))


BATCH_SIZE = 100  # run-local's default --batch-size
GOALS = {"rate": 1.05, "adaptive": 1.15}  # wall time vs the ideal N/R, at a server limit one process can reach


def measure(*, symbols: int, latency: float, limit: float, workers: int, work: Path,
            targets: bool = True) -> tuple[list[Figure], list[PacingRun]]:
    """One scenario: the three modes over `symbols` against a server that refuses more than `limit` requests
    in any second. The targets: GOALS for the wall time, 0 symbols lost, and under 1 % of 429s (--rate and adaptive)."""
    list_path = work / f"asx-list-{symbols}.csv"
    asx_list(list_path, symbols)
    ideal = symbols / limit
    # the design's mode needs a batch for each of its workers (run-local runs a batch on one thread)
    chosen = [mode for mode in modes(limit, workers) if not mode.design or symbols >= workers * BATCH_SIZE]
    runs = [run_mode(mode, list_path, latency=latency, limit=limit, workers=workers) for mode in chosen]
    prefix = f"[limit {limit:g} req/s] "
    figures = [Figure("B1", f"{prefix}ideal wall time N/R ({symbols} symbols / {limit:g} req/s)", ideal, "s")]
    for run in runs:
        target = GOALS.get(run.mode.key) if targets else None
        figures += wall_figures(run, ideal, prefix, target)
        if run.mode.key != "design":
            figures.append(pacing_floor(run, symbols, limit, ideal, prefix))
        refused_share = 100 * run.refused / max(run.requests, 1)
        checked = targets and run.mode.key in GOALS  # issue 16: under 1 % of 429s, --rate and adaptive alike
        figures.append(Figure("B1", f"{prefix}{run.mode.label}: 429s / requests", refused_share, "%",
                              "< 1%" if checked else "", refused_share < 1 if checked else None,
                              f"{run.refused} of {run.requests} chart requests refused"))
        figures.append(Figure("B1", f"{prefix}{run.mode.label}: symbols lost", run.lost, "", "0", run.lost == 0,
                              f"{run.summary.get('symbols_fetched', 0)} of {run.summary.get('total_symbols', 0)} fetched"))
        if run.mode.key != "design":
            floor = cpu_floor(run, ideal)
            figures.append(dataclasses.replace(floor, name=prefix + floor.name))
    return figures, runs


def wall_figures(run: PacingRun, ideal: float, prefix: str, target: float | None) -> list[Figure]:
    """The whole process's wall time against the ideal, and where it went: start-up, then the requests."""
    wall = run.process.wall
    ratio = wall / ideal
    pacing = run.span / ideal
    return [
        Figure("B1", f"{prefix}{run.mode.label}: wall time vs ideal", ratio, "x", f"<= {target}x" if target else "",
               None if target is None else ratio <= target,
               f"{wall:.1f} s, exit {run.process.returncode}: start-up {run.start_up:.1f} s before Yahoo saw the first "
               f"request, then {run.span:.1f} s of requests, then {wall - run.start_up - run.span:.1f} s to the exit"),
        Figure("B1", f"{prefix}{run.mode.label}: pacing alone (first to last request) vs ideal", pacing, "x",
               f"<= {target}x" if target else "", None if target is None else pacing <= target,
               f"{run.span:.1f} s for {run.requests_all} requests of every kind (cookie, crumb, consent, chart, "
               f"resends); the start-up and the exit left out"),
    ]


FIXED_REQUESTS = 2  # a cold run's cookie and crumb, before the first chart request


def pacing_floor(run: PacingRun, symbols: int, limit: float, ideal: float, prefix: str) -> Figure:
    """The lowest wall time the pacing allows this run: its own measured start-up and exit, plus every request
    a cold run needs (a chart per symbol, a cookie, a crumb) at the pacer's slot of (1 + MARGIN)/R."""
    from stockstream_cli.fetch.pacing import MARGIN

    requests = symbols + FIXED_REQUESTS
    paced = (requests - 1) * (1 + MARGIN) / limit
    exit_time = run.process.wall - run.start_up - run.span
    floor = run.start_up + paced + exit_time
    return Figure("B1", f"{prefix}{run.mode.label}: floor (its start-up and exit + the requests at the pacer's slot) "
                        f"vs ideal", floor / ideal, "x",
                  note=f"{run.start_up:.1f} s + {requests} requests x {(1 + MARGIN) / limit:.3f} s = {paced:.1f} s + "
                       f"{exit_time:.1f} s: the wall-time target is below this floor when the ratio exceeds it")


def cpu_floor_run(*, symbols: int, latency: float, limit: float, workers: int, work: Path) -> tuple[list[Figure], PacingRun]:
    """`--rate R` over the full list against a limit this machine's two cores cannot reach (100 requests/s):
    yfinance's parse, not the pacing, sets the pace; the CPU floor says by how much. No target."""
    list_path = work / f"asx-list-{symbols}.csv"
    asx_list(list_path, symbols)
    ideal = symbols / limit
    run = run_mode(modes(limit, workers)[0], list_path, latency=latency, limit=limit, workers=workers)
    prefix = f"[CPU floor, limit {limit:g} req/s] "
    floor = cpu_floor(run, ideal)
    figures = [Figure("B1", f"{prefix}ideal wall time N/R ({symbols} symbols / {limit:g} req/s)", ideal, "s"),
               *wall_figures(run, ideal, prefix, None), dataclasses.replace(floor, name=prefix + floor.name),
               Figure("B1", f"{prefix}{run.mode.label}: symbols lost", run.lost, "", "0", run.lost == 0,
                      f"{run.summary.get('symbols_fetched', 0)} of {run.summary.get('total_symbols', 0)} fetched; "
                      f"{run.refused} of {run.requests} chart requests refused")]
    return figures, run


def requests_per_symbol(list_path: Path, symbols: int, *, latency: float, rate: float, workers: int) -> Figure:
    """B2: every HTTP request (cookie, crumb, consent, chart, other) the simulator received per symbol, for
    `run-local --rate R` over a cold cache against a healthy Yahoo (no server limit: no 429, no resend)."""
    run = run_mode(modes(rate, workers)[0], list_path, latency=latency, limit=None, workers=workers)
    total = sum(run.by_kind.values())
    per_symbol = total / symbols
    kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(run.by_kind.items()))
    return Figure("B2", "HTTP requests per symbol at the transport, cold cache, healthy Yahoo", per_symbol,
                  "req/symbol", "<= 1.01", per_symbol <= 1.01 and run.lost == 0,
                  f"{total} requests for {symbols} symbols ({kinds}) in {run.process.processes} processes; "
                  f"{run.lost} symbols lost")


def requests_per_symbol_of(*, symbols: int, latency: float, rate: float, workers: int, work: Path) -> Figure:
    """B2 by itself, on a list of `symbols` generated in `work`."""
    list_path = work / f"asx-list-{symbols}.csv"
    asx_list(list_path, symbols)
    return requests_per_symbol(list_path, symbols, latency=latency, rate=rate, workers=workers)
