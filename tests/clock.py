"""Virtual clocks for tests that must not sleep: seconds moved by every sleep (Clock), and a Lambda context
on a clock the fake Yahoo drives (ChartClock: the fetcher's deadline, fetch/deadline.py, in tests that count
requests rather than seconds)."""

from __future__ import annotations

import threading

from stockstream_cli.fetch.deadline import COMMIT_SECONDS, symbol_worst_case


class Clock:
    """Virtual seconds: every sleep (the fake's latency and timeouts, pacing, backoff) moves it."""

    def __init__(self):
        self.now = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += max(seconds, 0.0)


class ChartClock:
    """A Lambda context of `seconds` on a virtual clock that moves `per_chart` seconds with each chart request
    the fake Yahoo answers (since the context was made)."""

    def __init__(self, fake, seconds: float = 900.0, per_chart: float = 1.0):
        self.fake, self.seconds, self.per_chart = fake, seconds, per_chart
        self.charts_before = fake.chart_requests()

    @classmethod
    def for_symbols(cls, fake, symbols: int, settings, seconds: float = 900.0) -> "ChartClock":
        """Time (one chart each) to start exactly `symbols` symbols before one symbol's worst case and the
        write no longer fit (fetch/deadline.py)."""
        spare = seconds - COMMIT_SECONDS - symbol_worst_case(settings)
        return cls(fake, seconds, per_chart=spare / (symbols - 0.5))

    def get_remaining_time_in_millis(self) -> int:
        return int((self.seconds - self.per_chart * (self.fake.chart_requests() - self.charts_before)) * 1000)
