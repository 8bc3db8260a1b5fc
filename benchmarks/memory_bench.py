"""B6 memory: peak RSS of `stockstream fetch-batch` on 100 symbols as a whole process (the Lambda has
512 MB); the full run-local's peak comes from B1's `--rate` run. Peak RSS is the kernel's ru_maxrss of the
process, read with wait4 when it ends."""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.common import DAY, Figure, asx_list, launch_argv, run_process, stockstream_env
from benchmarks.fake_server import FakeServer


def measure(*, symbols: int, work: Path) -> list[Figure]:
    codes = asx_list(work / "fetch-batch-list.csv", symbols)
    store = tempfile.mkdtemp(prefix="stockstream-bench-store-")
    with FakeServer() as server:
        run = run_process(launch_argv("fetch-batch", "--date", DAY.isoformat(), "--batch-number", "0",
                                      "--symbols", ",".join(codes), "--store", store, "--delay", "0", "--json"),
                          env=stockstream_env(server.environment()))
    ok = run.returncode == 0
    return [Figure("B6", f"fetch-batch of {symbols} symbols: peak RSS", run.max_rss_mb, "MB", "< 300 MB",
                   ok and run.max_rss_mb < 300, f"exit {run.returncode}, {run.wall:.1f} s")]
