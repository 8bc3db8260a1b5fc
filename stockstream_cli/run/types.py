"""The run's vocabulary, shared by the threads (local.py) and the worker processes (workers.py).

A leaf module: it imports nothing else of the run, so both ways of running batches (and the task they both
run, task.py) depend on it and never on each other. It holds what a run says about itself (Observer), what
it runs (BatchJob) and gets back (BatchOutcome), how it stops (Control, RunCancelled, StoppablePacer), and
the retry policy the state machine mirrors (infra/asl.json; tests/test_mirrors.py compares them).
No typer or rich here.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping

from ..backoff import wait_before

SYMBOLS_STEP_RETRIES = 3  # infra/asl.json UpdateASXSymbols: MaxAttempts 3
BATCH_RETRIES = 2  # infra/asl.json FetchStockData on States.TaskFailed: MaxAttempts 2

SymbolSource = Callable[..., dict]  # (store, day, settings, *, note) -> the `symbols --json` document


class RunCancelled(BaseException):
    """Raised inside a worker when the run is being stopped.

    A BaseException, like KeyboardInterrupt, so no `except Exception` between the pacer and the worker
    (in fetch/batch.py or yfinance) can swallow it.
    """


class Observer:
    """What a run reports while it goes; every method may be called from a worker thread. Does nothing."""

    def note(self, message: str) -> None: ...

    def started(self, batches: Mapping[int, int]) -> None:
        """The batches about to run: {batch_number: symbols it will fetch}."""

    def symbol_done(self, batch_number: int, symbol: str, reason: str | None) -> None: ...

    def batch_retrying(self, batch_number: int, attempt: int, error: str) -> None: ...

    def batch_done(self, batch_number: int, record, error: str | None) -> None:
        """record: the batch's stored record (dataset.manifest.Record), None when the batch failed."""

    def stopping(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class BatchJob:
    """One batch to fetch: all of it (`subset` None) or only `subset`, merged into what is stored."""

    batch_number: int
    symbols: tuple[str, ...]  # every symbol of the batch, from the day's list
    subset: tuple[str, ...] | None = None

    @property
    def to_fetch(self) -> tuple[str, ...]:
        return self.symbols if self.subset is None else self.subset


@dataclasses.dataclass(frozen=True)
class BatchOutcome:
    batch_number: int
    record: object | None  # the batch's stored record, a dataset.manifest.Record (None when the batch failed)
    error: str | None = None
    attempts: int = 1


def backoff_waits(first_wait: float, retries: int) -> list[float]:
    """The wait before each retry, as Step Functions computes it (backoff.py): first, first*rate, ..."""
    return [wait_before(retry, first_wait) for retry in range(1, retries + 1)]


class Control:
    """The stop event and the waits of one run: every wait ends early when the run is stopped."""

    def __init__(self, stop: threading.Event, sleep: Callable[[float], None] | None):
        self.stop = stop
        self._sleep = sleep

    def check(self) -> None:
        if self.stop.is_set():
            raise RunCancelled()

    def wait(self, seconds: float) -> None:
        if seconds > 0:
            if self._sleep is not None:
                self._sleep(seconds)
            else:
                self.stop.wait(seconds)
        self.check()


class StoppablePacer:
    """Wraps fetch/batch.py's pacer: before each request, raise RunCancelled once the run is being stopped."""

    def __init__(self, inner, control: Control):
        self._inner = inner
        self._control = control

    def wait(self) -> None:
        self._control.check()
        self._inner.wait()
        self._control.check()

    def on_success(self) -> None:
        self._inner.on_success()

    def on_rate_limited(self, retry_after: float | None = None) -> None:
        self._inner.on_rate_limited(retry_after)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)
