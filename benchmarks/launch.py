"""Run the real `stockstream` CLI with yfinance answered by a benchmark's FakeServer.

    STOCKSTREAM_BENCH_YAHOO=/tmp/.../yahoo.sock python -m benchmarks.launch run-local --from-file list.csv ...

With STOCKSTREAM_BENCH_DESIGN_PACING=1 the shared budget is replaced by the original design's pacing, a
fixed `--delay` per worker and nothing else (pacing.FixedDelayPacer), to measure that scheme side by side.

Both take effect when this module is imported, not only when it runs: run-local's worker processes are
started with multiprocessing's spawn, which imports the parent's main module (this one) in each worker
before it fetches, so the workers' yfinance is answered by the same server and paced the same way.
"""

from __future__ import annotations

import os
import sys

DESIGN_PACING_ENV = "STOCKSTREAM_BENCH_DESIGN_PACING"


def use_design_pacing() -> None:
    from stockstream_cli.fetch import pacing

    def fixed_delay_only(settings, *, sleep=None, clock=None, **_):
        import time

        return pacing.FixedDelayPacer(settings.delay, sleep=sleep or time.sleep)

    pacing.pacer_for = fixed_delay_only
    pacing.pacer_from_settings = fixed_delay_only


def install() -> None:
    """The seam and the pacing this process (parent or worker) runs with, from its environment."""
    from benchmarks.fake_server import ADDRESS_ENV, install_client

    if os.environ.get(ADDRESS_ENV):
        install_client()
    if os.environ.get(DESIGN_PACING_ENV):
        use_design_pacing()


def main(argv: list[str]) -> None:
    from stockstream_cli.cli import app

    app(args=argv, prog_name="stockstream")


install()

if __name__ == "__main__":
    main(sys.argv[1:])
