"""Blocking is not delisting: telling Yahoo blocking the client from symbols that really are gone.

Yahoo often answers a client it blocks with "No data found, symbol may be delisted" for every symbol
(yfinance #2319, #2328, #2386). One batch is judged on its own answers (`BlockDetector`): a block is
suspected when

- BLOCK_RUN consecutive symbols answered not_found or no_data (checked after each symbol: the batch stops
  there instead of spending the rest of its requests on a client Yahoo refuses), or
- at the end, at least BLOCK_MIN_SYMBOLS symbols were attempted and BLOCK_SHARE or more of them answered
  not_found or no_data.

The ASX list holds listed companies only, so a healthy batch of 100 has a handful of such answers (a
suspended code, one listed today): those stay `not_found`/`no_data`. When a block is suspected every such
answer, and every symbol not yet tried, is recorded as `blocked` (reasons.BLOCKED, retried later), the
batch's fetched rows are kept, and the batch raises BatchBlocked, so the state machine's Retry (and
run-local's batch retry) tries it again later; the pacer is paused for BLOCK_PAUSE_RETRY_WAITS x
--retry-wait (60 s by default; --retry-wait 0 removes it, as every wait).
"""

from __future__ import annotations

from ..reasons import NO_DATA, NOT_FOUND

BLOCK_RUN = 10  # consecutive not_found/no_data answers that stop the batch as blocked
BLOCK_MIN_SYMBOLS = 10  # fewer attempted symbols than this are never judged by share
BLOCK_SHARE = 0.5  # this share (or more) of the attempted symbols answered not_found/no_data: blocked
BLOCK_PAUSE_RETRY_WAITS = 30  # the pause of the shared budget, in --retry-wait units (2 s -> 60 s)
MISSING = frozenset({NOT_FOUND, NO_DATA})


class BlockDetector:
    """Fed each symbol's outcome (its failure reason or None) in order; says when a block is suspected."""

    def __init__(self, *, run: int = BLOCK_RUN, min_symbols: int = BLOCK_MIN_SYMBOLS, share: float = BLOCK_SHARE):
        self.run_limit = run
        self.min_symbols = min_symbols
        self.share = share
        self.attempted = 0
        self.missing = 0
        self.consecutive = 0

    def observe(self, reason: str | None) -> None:
        self.attempted += 1
        if reason in MISSING:
            self.missing += 1
            self.consecutive += 1
        else:
            self.consecutive = 0

    @property
    def run_reached(self) -> bool:
        """BLOCK_RUN consecutive missing answers: stop taking symbols now."""
        return self.consecutive >= self.run_limit

    @property
    def suspected(self) -> bool:
        by_share = self.attempted >= self.min_symbols and self.missing >= self.share * self.attempted
        return self.run_reached or by_share

    def describe(self) -> str:
        return (f"{self.missing} of {self.attempted} symbols answered not found or no data "
                f"({self.consecutive} in a row): Yahoo is most likely blocking this client")


def pause_seconds(settings) -> float:
    return BLOCK_PAUSE_RETRY_WAITS * settings.retry_wait


def back_off(pacer, settings) -> None:
    """Pause the shared budget (every worker of the process) and lower its cap, as a 429 does."""
    pause = pause_seconds(settings)
    on_rate_limited = getattr(pacer, "on_rate_limited", None)
    if on_rate_limited is not None:
        on_rate_limited(pause if pause > 0 else None)
