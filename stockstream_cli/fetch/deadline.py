"""The fetcher's deadline: when a batch must stop taking symbols so that what it fetched is written.

A Lambda has its timeout (the context's get_remaining_time_in_millis()); run-local has Ctrl-C (its stop
event). `Deadline.due()` is asked before each symbol: once fewer than `margin` seconds are left (Lambda) or
the stop is asked for (run-local), the batch takes no new symbol, writes what it fetched (atomically,
merged as always) and records the rest as `interrupted` (reasons.INTERRUPTED, retried by the next attempt
of the batch and by rerun-failed).

The margin, WRITE_MARGIN_SECONDS = 60: one symbol in a storm can take the retries' backoff (2 + 4 + 8 s)
plus paced requests, and the write of a batch (read the stored file, merge, two PUTs) takes a few seconds
on 512 MB; 60 s of a 900 s Lambda covers both with room.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

WRITE_MARGIN_SECONDS = 60.0
DEADLINE_DETAIL = "not fetched: the fetcher's deadline came first"


class Deadline:
    """remaining: seconds left (None: no time limit); stop: an event that, once set, means stop now;
    stopped_detail: what a symbol the stop left is recorded with (run-local: the user interrupted the run),
    else the deadline's wording."""

    def __init__(self, remaining: Callable[[], float] | None = None, *, stop: threading.Event | None = None,
                 margin: float = WRITE_MARGIN_SECONDS, stopped_detail: Callable[[], str] | None = None):
        self._remaining = remaining
        self._stop = stop
        self._stopped_detail = stopped_detail
        self.margin = margin

    def detail(self) -> str:
        """Why the symbols it left were not fetched (their `interrupted` reason's detail)."""
        if self._stop is not None and self._stop.is_set() and self._stopped_detail is not None:
            return self._stopped_detail()
        return DEADLINE_DETAIL

    def stopped(self) -> bool:
        """Whether it came from the stop event (run-local's Ctrl-C), not the clock."""
        return self._stop is not None and self._stop.is_set()

    def due(self) -> bool:
        if self._stop is not None and self._stop.is_set():
            return True
        return self._remaining is not None and self._remaining() < self.margin

    @classmethod
    def of_lambda(cls, context, *, margin: float = WRITE_MARGIN_SECONDS) -> "Deadline | None":
        """From a Lambda context (get_remaining_time_in_millis); None when there is none (a local call)."""
        remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
        if remaining_ms is None:
            return None
        return cls(lambda: remaining_ms() / 1000.0, margin=margin)

    @classmethod
    def at(cls, seconds: float, *, clock: Callable[[], float] = time.monotonic,
           margin: float = WRITE_MARGIN_SECONDS) -> "Deadline":
        end = clock() + seconds
        return cls(lambda: end - clock(), margin=margin)
