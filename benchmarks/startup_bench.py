"""B5 start-up: `stockstream --help`, and `stockstream load --symbols BHP CBA` of a compacted local store, as
whole processes, against `python -c pass` (medians of several runs, wall and CPU).

The package's modules are byte-compiled first, as `pip install` leaves them (PYTHONDONTWRITEBYTECODE, set in
some environments, would otherwise make every measured process compile the package's source again).
"""

from __future__ import annotations

import compileall
import shutil
import statistics
import sys
from pathlib import Path

from benchmarks.common import ROOT, Figure, run_process, stockstream_env

LOAD_TARGET = 0.4  # seconds: issue 16, "a start-up that matches the work"


def stockstream_argv() -> list[str]:
    """The installed console script, as a user runs it (python -m stockstream_cli if it is not on PATH)."""
    script = shutil.which("stockstream")
    return [script] if script else [sys.executable, "-m", "stockstream_cli"]


def byte_compile() -> None:
    compileall.compile_dir(str(ROOT / "stockstream_cli"), quiet=1)


def compacted_store(work: Path, *, days: int, batches: int) -> Path:
    """A year of batch files (read_bench's) compacted as the pipeline's own step leaves a store after the run
    of its last day: the month files, and that day's batch files."""
    from benchmarks.read_bench import DAY, build_year
    from stockstream_cli.dataset.compact import compact_earlier_days
    from stockstream_cli.dataset.store import open_store

    root = work / "startup-store"
    if not (root / "raw-data").is_dir():
        build_year(root, days=days, batches=batches)
        compact_earlier_days(open_store(str(root)), DAY, command="benchmark")
    return root


def _walls(argv: list[str], runs: int, env: dict[str, str]) -> tuple[list[float], list[float]]:
    walls, cpus = [], []
    for _ in range(runs):
        run = run_process(argv, env=env)
        if run.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {run.stderr.strip()[-300:]}")
        walls.append(run.wall)
        cpus.append(run.cpu)
    return walls, cpus


def measure(*, runs: int, work: Path | None = None, days: int = 250, batches: int = 19) -> list[Figure]:
    byte_compile()
    env = stockstream_env()
    help_walls, _ = _walls([*stockstream_argv(), "--help"], runs, env)
    bare_walls, bare_cpus = _walls([sys.executable, "-c", "pass"], runs, env)
    help_median, bare_median = statistics.median(help_walls), statistics.median(bare_walls)
    figures = [
        Figure("B5", "`stockstream --help` wall time", help_median, "s", "< 0.3 s", help_median < 0.3,
               f"median of {runs}; min {min(help_walls):.3f} s"),
        Figure("B5", "`python -c pass` wall time", bare_median, "s",
               note=f"median of {runs}; CPU {statistics.median(bare_cpus):.3f} s"),
    ]
    if work is not None:
        store = compacted_store(work, days=days, batches=batches)
        argv = [*stockstream_argv(), "load", "--symbols", "BHP", "CBA", "--store", str(store)]
        _walls(argv, 1, env)  # the first process may build the footer index; the figure is the steady state
        load_walls, load_cpus = _walls(argv, runs, env)
        load_median = statistics.median(load_walls)
        figures.append(Figure(
            "B5", "`stockstream load --symbols BHP CBA` (compacted local store, table) wall time", load_median,
            "s", f"< {LOAD_TARGET} s", load_median < LOAD_TARGET,
            f"median of {runs}; min {min(load_walls):.3f} s; CPU median {statistics.median(load_cpus):.3f} s "
            f"(user+system, every thread); {days} days x {batches} batches compacted"))
    return figures
