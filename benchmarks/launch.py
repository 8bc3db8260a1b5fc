"""Run the real `stockstream` CLI with yfinance answered by a benchmark's FakeServer.

    STOCKSTREAM_BENCH_YAHOO=/tmp/.../yahoo.sock python -m benchmarks.launch run-local --from-file list.csv ...

`--design-pacing` (first argument) replaces the shared budget with the original design's pacing, a fixed
`--delay` per worker and nothing else (pacing.FixedDelayPacer), to measure that scheme side by side.
"""

from __future__ import annotations

import sys

DESIGN_FLAG = "--design-pacing"


def use_design_pacing() -> None:
    from stockstream_cli import pacing

    def fixed_delay_only(settings, *, sleep=None, clock=None, **_):
        import time

        return pacing.FixedDelayPacer(settings.delay, sleep=sleep or time.sleep)

    pacing.pacer_for = fixed_delay_only
    pacing.pacer_from_settings = fixed_delay_only


def main(argv: list[str]) -> None:
    from benchmarks.fake_server import install_client

    install_client()
    if argv[:1] == [DESIGN_FLAG]:
        use_design_pacing()
        argv = argv[1:]
    from stockstream_cli.cli import app

    app(args=argv, prog_name="stockstream")


if __name__ == "__main__":
    main(sys.argv[1:])
