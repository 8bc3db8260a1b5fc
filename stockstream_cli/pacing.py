"""How fast requests go to Yahoo: the Pacer interface, the fixed per-worker delay, and retry backoff.

fetch.py calls `pacer.wait()` before every request (retries included), then `on_success()` or
`on_rate_limited()` with what came back. `FixedDelayPacer` is the `--delay` of one worker: at least
`delay` seconds between the starts of its consecutive requests. A pacer shared across workers (a token
bucket with AIMD backoff) implements the same three methods and must be thread-safe.

Every wait goes through an injectable `sleep`, and a wait of 0 never calls it, so tests never sleep.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

Sleep = Callable[[float], None]


@runtime_checkable
class Pacer(Protocol):
    def wait(self) -> None:
        """Block until the next request may be sent."""

    def on_success(self) -> None:
        """The last request was answered (whatever the symbol's outcome), without a 429."""

    def on_rate_limited(self) -> None:
        """The last request was refused with a 429."""


class FixedDelayPacer:
    """At least `delay` seconds between the starts of consecutive requests of each worker (thread).

    The first request of a worker goes at once. One instance may be shared by several workers: each
    thread keeps its own last start, so the delay stays per worker, as `--delay` promises.
    """

    def __init__(self, delay: float, *, sleep: Sleep = time.sleep, clock: Callable[[], float] = time.monotonic):
        if delay < 0:
            raise ValueError(f"delay must be >= 0, got {delay}")
        self.delay = delay
        self._sleep = sleep
        self._clock = clock
        self._worker = threading.local()

    def wait(self) -> None:
        last_start = getattr(self._worker, "last_start", None)
        if self.delay and last_start is not None:
            remaining = self.delay - (self._clock() - last_start)
            if remaining > 0:
                self._sleep(remaining)
        self._worker.last_start = self._clock()

    def on_success(self) -> None:
        pass

    def on_rate_limited(self) -> None:
        pass


def pacer_from_settings(settings, *, sleep: Sleep = time.sleep) -> Pacer:
    """The default pacer of one fetch-batch worker: the fixed `--delay`."""
    return FixedDelayPacer(settings.delay, sleep=sleep)


def pacer_for(settings, *, sleep: Sleep = time.sleep) -> Pacer:
    """The pacer the workers of a run share. For now the fixed `--delay` of each worker (thread-safe);
    the token bucket with AIMD backoff (`--rate`) will be chosen here."""
    return FixedDelayPacer(settings.delay, sleep=sleep)


def backoff_wait(retry_wait: float, retry: int, *, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number `retry` (1, 2, ...): exponential, with equal jitter.

    The base doubles each retry (retry_wait, 2*retry_wait, 4*retry_wait, ...); the wait is drawn in
    [base/2, base], so concurrent workers spread out but never retry at once. 0 when retry_wait is 0.
    """
    if retry_wait <= 0:
        return 0.0
    base = retry_wait * 2 ** (retry - 1)
    return base / 2 + rng() * base / 2
