"""B5 start-up: `stockstream --help` as a whole process, against `python -c pass` (medians of several runs)."""

from __future__ import annotations

import shutil
import statistics
import sys

from benchmarks.common import Figure, run_process, stockstream_env


def stockstream_argv() -> list[str]:
    """The installed console script, as a user runs it (python -m stockstream_cli if it is not on PATH)."""
    script = shutil.which("stockstream")
    return [script] if script else [sys.executable, "-m", "stockstream_cli"]


def measure(*, runs: int) -> list[Figure]:
    env = stockstream_env()
    help_walls = [run_process([*stockstream_argv(), "--help"], env=env).wall for _ in range(runs)]
    bare_walls = [run_process([sys.executable, "-c", "pass"], env=env).wall for _ in range(runs)]
    help_median, bare_median = statistics.median(help_walls), statistics.median(bare_walls)
    return [
        Figure("B5", "`stockstream --help` wall time", help_median, "s", "< 0.3 s", help_median < 0.3,
               f"median of {runs}; min {min(help_walls):.3f} s"),
        Figure("B5", "`python -c pass` wall time", bare_median, "s", note=f"median of {runs}"),
    ]
