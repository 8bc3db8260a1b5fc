"""The one fake of time, for tests and benchmarks alike, where the code takes a clock and a sleep:

- `Clock`: virtual seconds that every sleep moves (and `advance` or `now`), the sleeps recorded;
- `ThreadClocks`: a virtual clock per thread, for workers whose waits are their own (a benchmark adds them to
  the real time a thread worked);
- `LambdaContext`: a Lambda context of some seconds on a Clock; `ChartClock`: one on a clock the fake Yahoo
  drives (the fetcher's deadline, fetch/deadline.py, in tests that count requests rather than seconds).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from stockstream_cli.fetch.deadline import COMMIT_SECONDS, symbol_worst_case


class Clock:
    """Virtual seconds from `start`: every sleep (the fake's latency and timeouts, pacing, backoff) moves it and
    is recorded in `slept`; nothing else moves it but `advance` or setting `now`."""

    def __init__(self, start: float = 0.0):
        self.now = start
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += max(seconds, 0.0)

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ThreadClocks:
    """A clock per thread: `sleep(s)` moves only the calling thread's clock on by s, without waiting; each
    thread reads `base()` plus its own sleeps. `slept` records every thread's sleeps by thread name."""

    def __init__(self, base: Callable[[], float] = lambda: 0.0):
        self.base = base
        self.waited: dict[str, float] = {}  # thread name -> virtual seconds slept
        self.slept: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.base() + self.waited.get(threading.current_thread().name, 0.0)

    def sleep(self, seconds: float) -> None:
        name = threading.current_thread().name
        with self._lock:
            self.slept.setdefault(name, []).append(seconds)
            self.waited[name] = self.waited.get(name, 0.0) + max(seconds, 0.0)

    def take(self, names: Iterable[str]) -> float:
        """The longest wait among these threads' (a name ending in "_" stands for every thread it begins),
        then forgotten: thread names come back."""
        names = set(names)
        with self._lock:
            found = [self.waited.pop(name) for name in list(self.waited) if name in names or any(
                name.startswith(prefix) for prefix in names if prefix.endswith("_"))]
        return max(found, default=0.0)


class LambdaContext:
    """A Lambda context of `seconds` on `clock`, from now."""

    def __init__(self, clock: Callable[[], float], seconds: float):
        self.clock = clock
        self.end = clock() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self.end - self.clock()) * 1000)


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
