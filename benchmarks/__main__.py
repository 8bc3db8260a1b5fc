"""`python -m benchmarks [--quick] [sizes]`: run B1-B6, print one table, write BENCHMARKS.md.

Sizes default to the issue's (1,838 symbols at 20 ms and 100 requests/s; a year of 250 days x 19 batches);
--quick shrinks everything so the whole harness runs in seconds (the test suite runs it that way, with no
thresholds). See benchmarks/__init__.py for what each benchmark measures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from benchmarks.common import ROOT, Figure

ALL = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "STORM")  # STORM: B1's storm scenario (benchmarks/storm_bench.py)
PACKAGES = ("stockstream", "yfinance", "polars", "pyarrow", "pandas", "boto3", "moto", "typer", "curl_cffi")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: the harness in seconds, figures meaningless")
    parser.add_argument("--only", default=",".join(ALL), help="comma-separated subset of B1..B9 and STORM (B1's storm scenario; B2 comes with B1; alone, it runs by itself)")
    parser.add_argument("--output", type=Path, default=None, help="where to write the report [BENCHMARKS.md; "
                        "--quick: a temporary file]")
    sizes = parser.add_argument_group("sizes")
    sizes.add_argument("--symbols", type=int, help="B1's CPU-floor run, B2, B6: symbols in the ASX list [1838]")
    sizes.add_argument("--latency", type=float, help="B1/B2/B7: simulated seconds per request [0.02]")
    sizes.add_argument("--server-limit", type=float, help="B1's CPU-floor run: requests/s the simulated Yahoo "
                       "accepts, beyond what this machine's CPU reaches [100; 0: skip]")
    sizes.add_argument("--limits", help="B1: comma-separated server limits (requests/s) one process can reach, "
                       "each a scenario with the targets [5,10,40]")
    sizes.add_argument("--scenario-seconds", type=float, help="B1: the ideal wall time of each scenario: "
                       "symbols = limit x this [30]")
    sizes.add_argument("--workers", type=int, help="B1: run-local --concurrency [10]")
    sizes.add_argument("--cpu-symbols", type=int, help="B3: symbols per round [100]")
    sizes.add_argument("--cpu-rounds", type=int, help="B3: pairs of rounds (fetch path, bare loop) [9]")
    sizes.add_argument("--days", type=int, help="B4: trading days of data [250]")
    sizes.add_argument("--batches", type=int, help="B4: batches per day [19]")
    sizes.add_argument("--repeats", type=int, help="B4: timed repeats per figure [3]")
    sizes.add_argument("--no-s3", action="store_true", help="B4: skip the S3 (moto server) figures")
    sizes.add_argument("--s3-latency", type=float, help="B4: seconds a proxy in front of moto adds to every "
                       "request, for the figures after the pipeline's own compaction [0.02; 0: skip]")
    sizes.add_argument("--startup-runs", type=int, help="B5: processes timed [9]")
    sizes.add_argument("--fetch-symbols", type=int, help="B6: symbols in the fetch-batch [100]")
    sizes.add_argument("--storm-symbols", type=int, help="STORM: symbols in the list [300]")
    sizes.add_argument("--storm-seconds", type=float, help="STORM: how long the simulated Yahoo answers 429 [120]")
    sizes.add_argument("--storm-start", type=float, help="STORM: seconds after the run starts [20]")
    sizes.add_argument("--cost-symbols", type=int, help="B7: symbols in the deployed day on moto [1838]")
    sizes.add_argument("--check-symbols", type=int, help="B8: symbols of each day checked [1838]")
    sizes.add_argument("--check-days", type=int, help="B8: trading days checked [250]")
    sizes.add_argument("--dataset-years", help="B9: comma-separated store sizes in years [1,5,20]")
    sizes.add_argument("--dataset-batches", type=int, help="B9: batches of 100 symbols in the list [19: 1,838 symbols]")
    sizes.add_argument("--dataset-cache", type=Path, help="B9: a folder to keep the built stores in and reuse "
                       "(20 years take minutes to build) [none: built in the run's temporary folder]")
    args = parser.parse_args(argv)
    full = dict(symbols=1838, latency=0.02, server_limit=100.0, workers=10, limits="5,10,40",
                scenario_seconds=30.0, cpu_symbols=100, cpu_rounds=9, days=250,
                batches=19, repeats=3, startup_runs=9, fetch_symbols=100,
                cost_symbols=1838, check_symbols=1838, check_days=250,
                storm_symbols=300, storm_seconds=120.0, storm_start=20.0, s3_latency=0.02,
                dataset_years="1,5,20", dataset_batches=19)
    quick = dict(symbols=20, latency=0.002, server_limit=100.0, workers=2, limits="200", scenario_seconds=0.1,
                 cpu_symbols=10, cpu_rounds=1, days=2, batches=2, repeats=1, startup_runs=2, fetch_symbols=10,
                 cost_symbols=6, check_symbols=20, check_days=3,
                 storm_symbols=20, storm_seconds=3.0, storm_start=2.0, s3_latency=0.002,
                 dataset_years="0.05", dataset_batches=1)
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.limits = [float(part) for part in str(args.limits).split(",") if part.strip()]
    args.dataset_years = [float(part) for part in str(args.dataset_years).split(",") if part.strip()]
    args.only = {part.strip().upper() for part in args.only.split(",") if part.strip()}
    unknown = args.only - set(ALL)
    if unknown:
        parser.error(f"--only: unknown {', '.join(sorted(unknown))}; choose among {', '.join(ALL)}")
    return args


def run(args: argparse.Namespace, work: Path) -> list[Figure]:
    figures: list[Figure] = []
    if args.only & {"B1", "B2"}:
        from benchmarks import pacing_bench

        if "B1" in args.only:
            for limit in args.limits:
                scenario, _ = pacing_bench.measure(symbols=max(int(round(limit * args.scenario_seconds)), 1),
                                                   latency=args.latency, limit=limit, workers=args.workers, work=work)
                figures += scenario
            if args.server_limit:
                floor, rate_run = pacing_bench.cpu_floor_run(symbols=args.symbols, latency=args.latency,
                                                             limit=args.server_limit, workers=args.workers, work=work)
                figures += floor
                figures.append(Figure("B6", f"run-local of {args.symbols} symbols ({rate_run.mode.label}): peak RSS",
                                      rate_run.process.max_rss_mb, "MB", note=f"{rate_run.process.processes} processes "
                                      f"(the sum of their peaks); {rate_run.process.cpu / args.symbols * 1000:.1f} ms "
                                      f"CPU per symbol, {rate_run.process.cpu:.1f} s CPU in {rate_run.process.wall:.1f} s"))
        if "B2" in args.only:
            figures.append(pacing_bench.requests_per_symbol_of(symbols=args.symbols, latency=args.latency,
                                                               rate=args.server_limit or 100.0, workers=args.workers,
                                                               work=work))
    if "B3" in args.only:
        from benchmarks import cpu_bench

        figures += cpu_bench.measure(symbols=args.cpu_symbols, rounds=args.cpu_rounds)
    if "B4" in args.only:
        from benchmarks import read_bench

        figures += read_bench.measure(days=args.days, batches=args.batches, repeats=args.repeats, s3=not args.no_s3,
                                      work=work, s3_latency=args.s3_latency)
    if "B5" in args.only:
        from benchmarks import startup_bench

        figures += startup_bench.measure(runs=args.startup_runs, work=work, days=args.days, batches=args.batches)
    if "B6" in args.only:
        from benchmarks import memory_bench

        figures += memory_bench.measure(symbols=args.fetch_symbols, work=work)
    if "STORM" in args.only:
        from benchmarks import storm_bench

        figures += storm_bench.measure(symbols=args.storm_symbols, workers=args.workers, latency=args.latency,
                                       storm_seconds=args.storm_seconds, storm_start=args.storm_start,
                                       delay=0.2 if args.quick else None, work=work)
    if "B7" in args.only:
        from benchmarks import cost_bench

        figures += cost_bench.measure(symbols=args.cost_symbols, latency=args.latency, work=work)
    if "B8" in args.only:
        from benchmarks import check_bench

        figures += check_bench.measure(symbols=args.check_symbols, days=args.check_days, work=work)
    if "B9" in args.only:
        from benchmarks import dataset_bench

        figures += dataset_bench.measure(years=args.dataset_years, batches=args.dataset_batches, work=work,
                                         cache=args.dataset_cache, s3=not args.no_s3, latency=args.s3_latency)
    order = {name: i for i, name in enumerate(ALL)}
    return sorted(figures, key=lambda f: order[f.bench])  # stable: each benchmark's rows keep their order


def table(figures: list[Figure], *, markdown: bool) -> str:
    header = ["", "measure", "value", "target", "met", "detail"]
    rows = [[f.bench, f.name, f.shown(), f.target, f.verdict(), f.note] for f in figures]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1]
             for row in [header, *rows]]
    return "\n".join(lines)


def machine(load_before: tuple[float, ...], load_after: tuple[float, ...]) -> list[str]:
    memory = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GB"
    except OSError:
        pass
    cpu = platform.processor() or "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = []
    for package in PACKAGES:
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            pass
    return [
        f"- CPU: {os.cpu_count()} cores ({cpu}); memory {memory}",
        f"- {platform.platform()}; Python {platform.python_version()} ({platform.python_implementation()})",
        f"- packages: {', '.join(versions)}",
        "- load average (1, 5, 15 min) at the start: " + ", ".join(f"{x:.2f}" for x in load_before)
        + "; at the end: " + ", ".join(f"{x:.2f}" for x in load_after)
        + " (other work on the machine competes with the measured processes)",
    ]


def report(figures: list[Figure], command: str, elapsed: float, lines: list[str], quick: bool) -> str:
    met = [f for f in figures if f.ok is not None]
    missed = [f for f in met if not f.ok]
    verdict = (f"{len(met) - len(missed)} of {len(met)} targets met"
               + (": missed " + "; ".join(f"{f.bench} {f.name}" for f in missed) if missed else ""))
    return "\n".join([
        "# stockstream benchmarks",
        "",
        "Written by `python -m benchmarks`; every figure below comes from one run of this command:",
        "",
        "```",
        command,
        "```",
        "",
        f"Run on {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, {elapsed:.0f} s in all"
        + (" (--quick: tiny sizes, the figures mean nothing)" if quick else "") + f". {verdict}.",
        "",
        "## Machine",
        "",
        *lines,
        "",
        "## Figures",
        "",
        table(figures, markdown=True),
        "",
        ABOUT,
    ])


ABOUT = """## What is measured

Yahoo is simulated at the HTTP transport (curl_cffi's `Session._request_once`) by `tests/yahoo_fake.py`'s
FakeYahoo (the test suite's simulator), so yfinance's cookie, crumb, resend logic, request building and
parsing run on chart JSON in the real v8 shape, and every HTTP request is counted by kind.
For whole processes the simulator runs in the benchmark's process behind a Unix socket
(`benchmarks/fake_server.py`) and `python -m benchmarks.launch` runs the real CLI with that seam pointed at
it; the simulated latency is spent in the server, its limit is one sliding one-second window for the run.

- **B1 pacing**: `run-local` over a generated list in the Markit format, 20 ms per request, default retries
  (3) and retry wait (2 s, doubling), against a server that answers 429 beyond R requests (of every kind) in
  any one second, at R = 5, 10 and 40 (limits one process on this machine can reach, so that the limit and
  not the CPU binds), with R x 30 s worth of symbols (the ideal N/R: 30 s). `--rate R`: the shared budget at
  the server's rate; adaptive: `--delay 0` and no `--rate`; design (where the list has a batch for each of
  its 10 workers): the original scheme, 10 workers each pausing a fixed 10/R s with no shared budget. Wall
  time is the whole process (Python start-up included) against N/R, split into the start-up (until Yahoo
  saw the first request), the pacing itself (first to last request, also shown against N/R) and the exit.
  A last run at 100 requests/s over the full 1,838 symbols is a CPU-floor row only: yfinance's parse, not
  the pacing, sets that pace on two cores.
- **B2**: every HTTP request the simulator received (cookie, crumb, consent, chart, other) per symbol, in a
  `run-local --rate 100` of its own over a cold yfinance cache against a simulator with no limit.
- **B3**: CPU per symbol in one process with no latency: `run.batch.fetch_batch` (yfinance's parse, cleaning,
  polars, the Parquet file) against a bare `yf.Ticker(s).history(...)` loop on the same responses; fresh
  symbols each round; the two run in back-to-back pairs, alternating which goes first, and the speed is the
  median over the pairs of the ratio within each pair (the machine's speed drifts between minutes).
- **B4**: a year of batch files in the real layout, `load_symbols(["BHP", "CBA"])` in-process (median after a
  warm-up) and `stockstream load --symbols BHP CBA` as a process, against pandas reading every file; on a
  local folder and on S3 (moto server), before and after `stockstream compact`.
- **B5**: medians of whole-process wall times: `--help`, and `load --symbols BHP CBA` of a compacted local store
  (B4's year, compacted as the pipeline leaves it), the package byte-compiled first as an install leaves it.
- **B6**: peak RSS (VmHWM, polled) of whole processes; for run-local the sum of the peaks of the parent and
  the processes it starts.
- **B7**: a day of the deployed pipeline on moto (benchmarks/cost_bench.py): the real state machine run by
  moto, the two handlers in-process, 1,838 symbols, 20 ms per request, the default 2 s between a worker's
  requests. The pacer's waits and the simulated latency go to a per-thread simulated clock (the pacer's
  injectable clock and sleep) instead of sleeping; an invocation's billed duration is its real time in the
  handler plus the simulated waits of its slowest worker thread; GB-s = the sum of those durations x the
  function's configured memory; the wall time = the symbol step + the Map scheduled as Step Functions does
  (items in order, MaxConcurrency at once) + the quality step. Measured in deploy's default shape (the design's:
  1 thread per invocation, MaxConcurrency 10) and deployed with `--max-concurrency 2 --workers 5`, beside the
  design's table (2,655 GB-s, 12 min).
- **B8**: `stockstream check --start --end --json` as a process over a local store of 250 sessions x 1,838
  symbols (tests/storefactory.py's build_day: a list, a file and a manifest per batch, run.json, a 5-day
  lookback; one symbol failed each day): wall time and peak RSS, against the fetcher's 512 MB.
- **B9**: the dataset at 1, 5 and 20 years (benchmarks/dataset_bench.py): the full list over the real XASX
  sessions in the layout the pipeline leaves (a list and 19 batch records a day, a compacted file a month
  written by compaction's own writer, the last day's batch files; prices a seeded random walk in ASX ticks).
  `load --symbols BHP` (whole history) and `load --date D` (every symbol) as processes, locally and on S3 (moto
  in its own process behind the +20 ms proxy; cold: empty cache folder, warm: the median of 3 after it); the
  pipeline's compaction step after one more day; `check` over the last year and the whole range (wall, peak
  RSS); the data files' bytes against the same rows in one clean zstd Parquet file; and
  `DataAggregator(store).load()` against polars reading that clean file.
"""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    command = "python -m benchmarks" + ("" if not (sys.argv[1:] if argv is None else argv) else " " + shlex.join(
        sys.argv[1:] if argv is None else argv))
    output = args.output or (Path(tempfile.mkdtemp(prefix="stockstream-bench-")) / "BENCHMARKS.md" if args.quick
                             else ROOT / "BENCHMARKS.md")
    load_before = os.getloadavg()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="stockstream-bench-") as work:
        figures = run(args, Path(work))
    elapsed = time.perf_counter() - started
    lines = machine(load_before, os.getloadavg())
    print(table(figures, markdown=False))
    print(f"\n{elapsed:.0f} s; report written to {output}")
    output.write_text(report(figures, command, elapsed, lines, args.quick) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
