"""The fetcher's deadline: when a batch must stop taking symbols, and how long a symbol in flight may still
take, so that what it fetched is written before the invocation ends.

A Lambda has its timeout (the context's get_remaining_time_in_millis()); run-local has Ctrl-C (its stop
event). Three rules, on the time left before the invocation's end minus COMMIT_SECONDS (`time_left()`: the
time the fetching may still use, the rest being the write's):

- `due()`, asked before each symbol: once time_left() cannot cover one symbol's worst case (or the stop is
  asked for), the batch takes no new symbol, writes what it fetched (atomically, merged as always) and records
  the rest as `interrupted` (reasons.INTERRUPTED, retried by the next attempt of the batch and by
  rerun-failed). One symbol's worst case is `symbol_worst_case(settings)`: every attempt at its full timeout
  and delay, and every backoff wait at its longest (4 x (30 + 2) + 2 + 4 + 8 = 142 s with the defaults). It is
  capped at SYMBOL_SHARE of the invocation's fetching time, so a short timeout (a 12 s function) still fetches;
  there the next rules alone keep the deadline.
- `attempt_timeout(timeout)`: each attempt's HTTP timeout is cut to time_left(), and every request of the
  attempt (cookie, crumb, chart, resend) is bounded by it too (sources.http.within); with less than
  MIN_ATTEMPT_SECONDS left no attempt starts.
- `allows_wait(seconds)`: a retry's backoff wait is taken only if an attempt still fits after it.
A symbol those rules cut short (mid-retries) is recorded `interrupted`, like the symbols never started: no
symbol in flight can carry the invocation past its end.

COMMIT_SECONDS = 5: the write of a batch (read the stored file, merge, two PUTs and the record) takes about
a second on 512 MB; 5 s leaves room for a slow S3 answer without taking much of a short invocation.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from ..backoff import wait_before

COMMIT_SECONDS = 5.0
SYMBOL_SHARE = 0.5  # a symbol's worst case never counts for more than half of the invocation's fetching time
MIN_ATTEMPT_SECONDS = 0.5  # no attempt is started with less time than this left: it could only time out
DEADLINE_DETAIL = "not fetched: the fetcher's deadline came first"


def symbol_worst_case(settings) -> float:
    """Seconds one symbol can take at most with `settings`: settings.retries + 1 attempts, each at its full
    timeout after its delay, and the longest backoff wait before each retry (fetch/pacing.backoff_wait)."""
    attempts = settings.retries + 1
    waits = sum(wait_before(retry, settings.retry_wait) for retry in range(1, attempts)) if settings.retry_wait > 0 else 0.0
    return attempts * (settings.timeout + settings.delay) + waits


class Deadline:
    """remaining: seconds left before the invocation's end (None: no time limit); stop: an event that, once
    set, means stop now. symbol_seconds: one symbol's worst case (symbol_worst_case), capped at SYMBOL_SHARE of
    the fetching time the deadline had when made. stopped_detail: what a symbol the stop left is recorded with
    (run-local: the user interrupted the run), else the deadline's wording."""

    def __init__(self, remaining: Callable[[], float] | None = None, *, stop: threading.Event | None = None,
                 symbol_seconds: float = 0.0, commit_seconds: float = COMMIT_SECONDS,
                 stopped_detail: Callable[[], str] | None = None):
        self._remaining = remaining
        self._stop = stop
        self._stopped_detail = stopped_detail
        self.commit_seconds = commit_seconds
        fetching = max(remaining() - commit_seconds, 0.0) if remaining is not None else math.inf
        self.symbol_seconds = min(symbol_seconds, SYMBOL_SHARE * fetching)

    @property
    def limited(self) -> bool:
        """Whether there is a time limit (a Lambda's), not only a stop."""
        return self._remaining is not None

    def time_left(self) -> float:
        """Seconds the fetching may still use: the time left minus the write's (math.inf without a limit)."""
        return math.inf if self._remaining is None else self._remaining() - self.commit_seconds

    def detail(self) -> str:
        """Why the symbols it left were not fetched (their `interrupted` reason's detail)."""
        if self._stop is not None and self._stop.is_set() and self._stopped_detail is not None:
            return self._stopped_detail()
        return DEADLINE_DETAIL

    def stopped(self) -> bool:
        """Whether it came from the stop event (run-local's Ctrl-C), not the clock."""
        return self._stop is not None and self._stop.is_set()

    def due(self) -> bool:
        """True once no new symbol may start: the stop asked for, or too little time for one symbol."""
        if self._stop is not None and self._stop.is_set():
            return True
        return self.limited and self.time_left() < max(self.symbol_seconds, MIN_ATTEMPT_SECONDS)

    def attempt_timeout(self, timeout: float) -> float | None:
        """The HTTP timeout of the next attempt: `timeout` cut to the time left; None when no attempt fits."""
        left = self.time_left()
        return None if left < MIN_ATTEMPT_SECONDS else min(timeout, left)

    def allows_wait(self, seconds: float) -> bool:
        """Whether a retry's backoff wait of `seconds` still leaves time for the attempt after it."""
        return self.time_left() - seconds >= MIN_ATTEMPT_SECONDS

    @classmethod
    def of_lambda(cls, context, settings) -> "Deadline | None":
        """From a Lambda context (get_remaining_time_in_millis); None when there is none (a local call)."""
        remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
        if remaining_ms is None:
            return None
        return cls(lambda: remaining_ms() / 1000.0, symbol_seconds=symbol_worst_case(settings))

    @classmethod
    def at(cls, seconds: float, *, clock: Callable[[], float] = time.monotonic, symbol_seconds: float = 0.0,
           commit_seconds: float = COMMIT_SECONDS) -> "Deadline":
        end = clock() + seconds
        return cls(lambda: end - clock(), symbol_seconds=symbol_seconds, commit_seconds=commit_seconds)
