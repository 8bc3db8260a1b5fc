"""`python -m benchmarks --quick`: the whole harness at tiny sizes, so it never rots. No thresholds here:
the targets belong in BENCHMARKS.md, and figures at these sizes mean nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_run_prints_the_table_and_writes_the_report(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # the harness runs its own moto
    output = tmp_path / "BENCHMARKS.md"
    run = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--output", str(output)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    for bench in ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9"):
        assert any(line.startswith(bench) for line in run.stdout.splitlines()), f"{bench} missing from the table"
    report = output.read_text()
    assert report.startswith("# stockstream benchmarks")
    assert "python -m benchmarks --quick --output" in report and "## Machine" in report and "cores" in report
    assert "| B4 | S3, compacted: load_symbols(BHP, CBA) in-process |" in report
    assert "symbols lost | 0 | 0 | yes |" in report  # the simulated run-local fetched every symbol
