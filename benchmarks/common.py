"""What every benchmark shares: a figure (one row of the table), running a measured process, inputs."""

from __future__ import annotations

import atexit
import dataclasses
import datetime as dt
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DAY = dt.date(2026, 1, 9)  # a Friday: the lookback window holds a full trading week


@dataclasses.dataclass
class Figure:
    """One row of the table: `name` measured as `value` (shown with `unit`), against `target` if any."""

    bench: str
    name: str
    value: float | None
    unit: str = ""
    target: str = ""
    ok: bool | None = None  # None: no target
    note: str = ""

    def shown(self) -> str:
        if self.value is None:
            return "n/a"
        if self.unit == "x":
            return f"{self.value:.2f}x"
        if self.unit == "%":
            return f"{self.value:.2f}%"
        if self.unit in ("s", "ms", "MB", "req/s", "req/symbol") or isinstance(self.value, float):
            digits = 3 if abs(self.value) < 10 else 1
            return f"{self.value:.{digits}f} {self.unit}".strip()
        return f"{self.value} {self.unit}".strip()

    def verdict(self) -> str:
        return "" if self.ok is None else ("yes" if self.ok else "NO")


@dataclasses.dataclass
class ProcessRun:
    argv: list[str]
    returncode: int
    wall: float  # seconds
    cpu: float  # user + system seconds of the process and its children it waited for
    max_rss_mb: float  # peak resident set size (VmHWM) of the process plus that of each process it started
    processes: int  # the process and those it started (run-local's workers, multiprocessing's tracker)
    stdout: str
    stderr: str


def run_process(argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | Path | None = None,
                timeout: float = 900) -> ProcessRun:
    """Run a process to its end: its wall time, CPU (wait4's rusage) and peak RSS.

    The peak is the kernel's VmHWM of the process, polled from /proc while it runs: ru_maxrss would also
    count the moment between fork and exec, when the child is still a copy of this (large) process. The
    processes it starts (run-local's workers) are found in /proc every 0.1 s and their peaks added: the sum
    of the peaks, an upper bound of what the run held at once.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(list(argv), stdout=out, stderr=err, env=env, cwd=cwd)
        deadline = started + timeout
        peaks: dict[int, int] = {process.pid: 0}
        for polls in itertools.count():
            if polls % 50 == 0:
                peaks.update({pid: 0 for pid in _descendants(process.pid) if pid not in peaks})
            for pid in peaks:
                peaks[pid] = max(peaks[pid], _high_water_kb(pid))
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.002)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return ProcessRun(list(argv), process.returncode, wall, usage.ru_utime + usage.ru_stime,
                          sum(peaks.values()) / 1024, len(peaks), out.read().decode(errors="replace"),
                          err.read().decode(errors="replace"))


def _descendants(root: int) -> set[int]:
    """The processes below `root`, from the parent pid in each /proc/PID/stat."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as stat:
                    parents[int(entry.name)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _high_water_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def stockstream_env(extra: dict[str, str] | None = None, *, cache_dir: str | None = None) -> dict[str, str]:
    """The environment of a measured `stockstream`: no STOCKSTREAM_* from the shell, a cold yfinance cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKSTREAM_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env["STOCKSTREAM_CACHE_DIR"] = cache_dir or _temporary_folder("stockstream-bench-cache-")
    env.update(extra or {})
    return env


def _temporary_folder(prefix: str) -> str:
    """A new folder, removed when the benchmark ends."""
    folder = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def launch_argv(*args: str) -> list[str]:
    """`stockstream ARGS` with yfinance answered by the benchmark's FakeServer (benchmarks/launch.py)."""
    return [sys.executable, "-m", "benchmarks.launch", *args]


def asx_list(path: Path, count: int) -> list[str]:
    """A generated ASX list of `count` valid codes in the Markit directory format (tests/asx_fake.py)."""
    from benchmarks.fake_server import use_test_fakes

    use_test_fakes()
    from asx_fake import asx_codes, write_markit_csv

    codes = asx_codes(count)
    write_markit_csv(path, codes)
    return codes


def median_time(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)
