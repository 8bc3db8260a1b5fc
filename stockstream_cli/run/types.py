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


@dataclasses.dataclass(frozen=True)
class Part:
    """A part of the day a run was asked for: some of its symbols, or some of its batches (run.json "part")."""

    symbols: tuple[str, ...] | None = None
    batches: tuple[int, ...] | None = None

    def check(self, day_batches: Mapping[int, tuple[str, ...]], day: str) -> None:
        """InputError naming what the day's list does not have (before any request)."""
        from ..errors import InputError

        if self.symbols is not None:
            listed = {symbol for members in day_batches.values() for symbol in members}
            unlisted = [symbol for symbol in self.symbols if symbol not in listed]
            if unlisted:
                raise InputError(f"not in the ASX list of {day}: {' '.join(unlisted)}")
        if self.batches is not None:
            absent = [str(number) for number in self.batches if number not in day_batches]
            if absent:
                numbers = sorted(day_batches)
                valid = f"0 to {numbers[-1]}" if numbers else "none (the list is empty)"
                raise InputError(f"no batch {', '.join(absent)} on {day}: valid batch numbers are {valid}")

    def asked(self, day_batches: Mapping[int, tuple[str, ...]]) -> dict[int, tuple[str, ...]]:
        """{batch: the symbols of it that were asked for}, only the batches concerned."""
        if self.batches is not None:
            return {n: tuple(day_batches[n]) for n in sorted(self.batches) if n in day_batches}
        wanted = set(self.symbols or ())
        asked = {n: tuple(s for s in members if s in wanted) for n, members in sorted(day_batches.items())}
        return {n: members for n, members in asked.items() if members}

    def jobs(self, day_batches: Mapping[int, tuple[str, ...]]) -> list["BatchJob"]:
        """The batch jobs that fetch the part: whole batches, or the asked symbols merged into their batch."""
        if self.batches is not None:
            return [BatchJob(n, members) for n, members in self.asked(day_batches).items()]
        return [BatchJob(n, tuple(day_batches[n]), members) for n, members in self.asked(day_batches).items()]

    def to_document(self) -> dict:
        return {"symbols": list(self.symbols)} if self.symbols is not None else {"batches": list(self.batches or ())}

    @classmethod
    def from_document(cls, document) -> "Part | None":
        """run.json's "part" back (None: the whole day, or something this version did not write)."""
        if not isinstance(document, dict):
            return None
        if isinstance(document.get("symbols"), list):
            return cls(symbols=tuple(str(s) for s in document["symbols"]))
        if isinstance(document.get("batches"), list):
            return cls(batches=tuple(int(n) for n in document["batches"] if isinstance(n, int)))
        return None


def backoff_waits(first_wait: float, retries: int) -> list[float]:
    """The wait before each retry, as Step Functions computes it (backoff.py): first, first*rate, ..."""
    return [wait_before(retry, first_wait) for retry in range(1, retries + 1)]


STOPPED_BY_USER = "not fetched: the run was interrupted (Ctrl-C or SIGTERM)"
STOPPED_BY_ERROR = "not fetched: the run stopped on an error in another batch"


class Control:
    """The stop event and the waits of one run: every wait ends early when the run is stopped.

    A stop is the user's (Ctrl-C, SIGTERM, a caller setting `stop`) unless `failed` is set too: an error no
    retry heals stopped the run (`fail`). An event as well, so worker processes share it; the symbols a stop
    leaves are worded accordingly (`stopped_detail`).
    """

    def __init__(self, stop: threading.Event, sleep: Callable[[float], None] | None,
                 failed: threading.Event | None = None):
        self.stop = stop
        self._sleep = sleep
        self.failed = failed if failed is not None else threading.Event()

    def fail(self) -> None:
        """Stop the run because of an error (not the user's doing)."""
        self.failed.set()
        self.stop.set()

    def stopped_detail(self) -> str:
        """Why a symbol the stop left was not fetched (the Deadline's detail in run-local)."""
        return STOPPED_BY_ERROR if self.failed.is_set() else STOPPED_BY_USER

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
