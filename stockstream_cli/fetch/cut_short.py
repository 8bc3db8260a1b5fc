"""A batch cut short: by its deadline (fetch/deadline.py) or by a suspected block (fetch/block.py).

`BatchProgress` follows one batch's symbols as fetch/batch.py fetches them: it says when to stop taking
symbols, records the ones not fetched (`interrupted` after the deadline or once Yahoo cannot be reached,
`blocked` after a run of missing answers), relabels a suspected block's not_found/no_data answers as
`blocked`, and, once what was fetched is committed, raises what the orchestrator retries (BatchBlocked,
BatchInterrupted) or the stop's own exception (RunCancelled, YahooUnreachable).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import BatchBlocked, BatchInterrupted, YahooUnreachable
from ..reasons import BLOCKED, INTERRUPTED

if TYPE_CHECKING:
    from .deadline import Deadline

FailedResult = Callable[[str, str, str], Any]  # (symbol, reason, detail) -> a batch.SymbolResult not fetched


class BatchProgress:
    def __init__(self, deadline: "Deadline | None", failed_result: FailedResult):
        from .block import BlockDetector

        self.deadline = deadline
        self.failed_result = failed_result
        self.detector = BlockDetector()
        self.results: list = []
        self.stop_error: BaseException | None = None
        self.interrupted = False
        self.blocked = False

    def stopped_before(self, rest: list[str]) -> bool:
        """Asked before each symbol: True (the rest recorded as interrupted) once the deadline is due."""
        if self.deadline is None or not self.deadline.due():
            return False
        self._record(rest, INTERRUPTED, self.deadline.detail())
        self.interrupted = True
        return True

    def stopped_by(self, error: BaseException, rest: list[str]) -> bool:
        """A stop (Ctrl-C's RunCancelled) raised while fetching a symbol, or Yahoo gone (YahooUnreachable):
        keep what was fetched, the rest recorded as interrupted."""
        if isinstance(error, YahooUnreachable):  # no later symbol can be fetched either
            self._record(rest, INTERRUPTED, f"not fetched: {error}")
            self.interrupted = True
            self.stop_error = error
            return True
        if isinstance(error, Exception) or not self.stopped_before(rest):
            return False
        self.stop_error = error
        return True

    def add(self, result, rest: list[str]) -> bool:
        """Take one symbol's result; True when the batch must stop here (a run of missing answers)."""
        self.results.append(result)
        if result.failure == INTERRUPTED:  # cut short mid-retries by the deadline (fetch_symbol)
            self.interrupted = True
        self.detector.observe(result.failure)
        if self.detector.run_reached and rest:
            self._record(rest, BLOCKED, "not fetched: " + self.detector.describe())
            return True
        return False

    def finish(self, pacer, settings) -> list:
        """Every symbol's result; a suspected block relabelled and the shared budget paused."""
        from . import block

        if self.detector.suspected:
            self.blocked = True
            detail = self.detector.describe()
            for result in self.results:
                if result.failure in block.MISSING:
                    result.failure, result.detail = BLOCKED, f"{detail}; Yahoo said: {result.detail}"
            block.back_off(pacer, settings)
        return self.results

    def raise_if_cut_short(self, record, batch_number: int, day: dt.date) -> None:
        """After the batch is committed (`record`, its stored record): the stop's exception, BatchBlocked or
        BatchInterrupted, carrying the record."""
        if self.stop_error is not None:
            raise self.stop_error
        what = f"batch {batch_number} of {day.isoformat()}"
        kept = f"{record.symbols_fetched} symbols fetched are stored"
        if self.blocked:
            raise BatchBlocked(f"{what}: {self.detector.describe()}; {kept}, the rest recorded as blocked "
                               f"and retried later", record)
        if self.interrupted:
            why = "was stopped" if self.deadline is not None and self.deadline.stopped() else "stopped at its deadline"
            raise BatchInterrupted(f"{what} {why}; {kept}, the rest recorded as interrupted", record)

    def _record(self, codes: list[str], reason: str, detail: str) -> None:
        self.results.extend(self.failed_result(code, reason, detail) for code in codes)
