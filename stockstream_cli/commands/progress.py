"""What a person watches while run-local or rerun-failed works: rich progress on stderr, a summary on stdout.

CLI-side only (imports rich): the library reports through run.types.Observer and never knows who listens.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..run.types import Observer
from .output import counted

SHOWN_SYMBOLS = 12  # failed symbols listed per reason before "... and N more"
RUN_SPEED_PERIOD = 24 * 3600.0  # seconds of progress the time-left estimate averages over: a whole run


class LogObserver(Observer):
    """No live display (stderr is not a terminal, or --json): only the lines worth keeping in a log."""

    def __init__(self, console: Console):
        self.console = console

    def __enter__(self) -> "LogObserver":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        pass

    def note(self, message: str) -> None:
        import logging

        from ..errors import in_words
        from ..options import flag
        from .output import quiet

        message = in_words(message, flag)  # a parameter the library names, as this face calls it: its option
        logging.getLogger("stockstream").info(message)
        if not quiet():
            self.console.print(f"stockstream: {message}", markup=False, highlight=False, soft_wrap=True)

    def batch_retrying(self, batch_number: int, attempt: int, error: str) -> None:
        self.note(f"batch {batch_number} failed (attempt {attempt}), retrying: {error}")

    def batch_done(self, batch_number: int, record, error: str | None) -> None:
        if error:
            self.note(f"batch {batch_number} failed after every retry: {error}")

    def stopping(self) -> None:
        self.note("stopping: finishing the requests in flight (finished batches are kept)")


class _BatchCount:
    def __init__(self, size: int):
        self.size = size
        self.fetched = 0
        self.failed = 0
        self.finished = False


class LiveProgress(LogObserver):
    """Live bars on stderr: symbols fetched and failed out of the total, batches done, elapsed and left.

        run-local 2026-08-21: 1838 symbols in 19 batches
        ⠋ symbols ━━━━━━━━━━╸━━━━━━━━━    912/1,838  909 fetched  3 failed  0:00:41  0:00:43 left
        ⠋ batches ━━━━━━━━━━━━━━━━━━━━        9/19                         0:00:41  0:00:49 left
    """

    def __init__(self, console: Console, title: str):
        super().__init__(console)
        self._title = title
        self._lock = threading.Lock()
        self._batches: dict[int, _BatchCount] = {}
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=None),
            TextColumn("{task.fields[count]}", justify="right"),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("left"),
            console=console,
            transient=False,
            refresh_per_second=8,
            # the whole run's pace, not the last 30 s': the time left stays an estimate through a lull (a batch
            # retrying, the batches bar between two batches) instead of falling back to -:--:--
            speed_estimate_period=RUN_SPEED_PERIOD,
        )
        self._symbols = self._progress.add_task("symbols", total=None, start=False, detail="", count="")
        self._batch_task = self._progress.add_task("batches", total=None, start=False, detail="", count="")

    def __enter__(self) -> "LiveProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._progress.stop()

    def note(self, message: str) -> None:
        from ..errors import in_words
        from ..options import flag

        self._progress.console.print(f"stockstream: {in_words(message, flag)}", markup=False, highlight=False)

    def started(self, batches: Mapping[int, int]) -> None:
        with self._lock:
            self._batches = {number: _BatchCount(size) for number, size in batches.items()}
            total = sum(batches.values())
            if not batches:
                self._progress.console.print(f"{self._title}: nothing to fetch", markup=False, highlight=False)
                for task in (self._symbols, self._batch_task):
                    self._progress.update(task, visible=False)
                return
            self._progress.console.print(f"{self._title}: {counted(total, 'symbol')} in "
                                         f"{counted(len(batches), 'batch', 'batches')}",
                                         markup=False, highlight=False)
            self._progress.update(self._symbols, total=total)
            self._progress.update(self._batch_task, total=len(batches))
            self._progress.start_task(self._symbols)
            self._progress.start_task(self._batch_task)
            self._refresh()

    def symbol_done(self, batch_number: int, symbol: str, reason: str | None) -> None:
        with self._lock:
            count = self._batches.get(batch_number)
            if count is None or count.finished:
                return
            if reason is None:
                count.fetched += 1
            else:
                count.failed += 1
            self._refresh()

    def batch_retrying(self, batch_number: int, attempt: int, error: str) -> None:
        with self._lock:
            count = self._batches.get(batch_number)
            if count is not None:
                count.fetched = count.failed = 0
                self._refresh()
        super().batch_retrying(batch_number, attempt, error)

    def batch_done(self, batch_number: int, record, error: str | None) -> None:
        with self._lock:
            count = self._batches.get(batch_number)
            if count is not None:
                # a failed batch stored nothing; a finished one accounts for every symbol it was given
                count.failed = count.size if error else min(count.failed, count.size)
                count.fetched = count.size - count.failed
                count.finished = True
                self._refresh()
        super().batch_done(batch_number, record, error)

    def stopping(self) -> None:
        for task in (self._symbols, self._batch_task):
            self._progress.update(task, description="stopping")
        super().stopping()

    def _refresh(self) -> None:
        fetched = sum(c.fetched for c in self._batches.values())
        failed = sum(c.failed for c in self._batches.values())
        done = sum(c.finished for c in self._batches.values())
        symbols_total = sum(c.size for c in self._batches.values())
        self._progress.update(self._symbols, completed=fetched + failed,
                              count=f"{fetched + failed:>6,}/{symbols_total:,}",
                              detail=f"[green]{fetched:,} fetched[/]  [red]{failed:,} failed[/]")
        self._progress.update(self._batch_task, completed=done, count=f"{done:>6,}/{len(self._batches):,}")


def observer_for(*, json_output: bool, title: str, console: Console | None = None) -> LogObserver:
    """The live display when a person is watching stderr, else only log lines."""
    from .output import quiet

    console = console or Console(stderr=True, highlight=False)
    if json_output or not console.is_terminal or quiet():
        return LogObserver(console)
    return LiveProgress(console, title)


# ---------------------------------------------------------------------------------------------- the result


def render_run(run: Mapping[str, Any], console: Console) -> None:
    """The run's outcome for a person (stdout): the counts, then the failed symbols by reason."""
    from .output import counted

    console.print(
        f"{run['date']}: {run['symbols_fetched']:,} of {counted(run['total_symbols'], 'symbol')} fetched, "
        f"{len(run['symbols_failed']):,} failed; {run['batches_succeeded']:,} of "
        f"{counted(run['num_batches'], 'batch', 'batches')} succeeded in {run['execution_time']:.1f} s",
        markup=False,
        soft_wrap=not console.is_terminal,
    )
    table = failures_table(run)
    if table is not None:
        console.print(table)
    hint = rerun_hint(run)
    if hint:
        console.print(hint, markup=False, soft_wrap=not console.is_terminal)


def rerun_hint(run: Mapping[str, Any]) -> str | None:
    """What to type next: plain rerun-failed for retryable failures, --all when only final ones are left."""
    from .. import hints, reasons

    if not run["symbols_failed"]:
        return None
    failed = run.get("failure_reasons", {})
    command = hints.command("rerun-failed", "--date", run["date"])
    if run["batches_failed"] or any(failed.get(s, reasons.UNRECORDED) in reasons.RERUN for s in run["symbols_failed"]):
        return f"To fetch the failed symbols again: {command}"
    return f"The failures left are final ({', '.join(r for r in reasons.ALL if r in reasons.LASTING)}); to try them anyway: {command} --all"


def failures_by_reason(run: Mapping[str, Any]) -> dict[str, list[str]]:
    """{reason: sorted symbols}; symbols of a batch that failed as a whole are under 'batch failed'."""
    reasons = run.get("failure_reasons", {})
    grouped: dict[str, list[str]] = {}
    for symbol in run["symbols_failed"]:
        grouped.setdefault(reasons.get(symbol, "batch failed"), []).append(symbol)
    order = sorted(grouped, key=lambda reason: (-len(grouped[reason]), reason))
    return {reason: sorted(grouped[reason]) for reason in order}


def failures_table(run: Mapping[str, Any]) -> Table | None:
    grouped = failures_by_reason(run)
    if not grouped:
        return None
    table = Table(title="Failed symbols by reason", title_justify="left")
    table.add_column("reason")
    table.add_column("count", justify="right")
    table.add_column("symbols", overflow="fold")
    for reason, symbols in grouped.items():
        shown = " ".join(symbols[:SHOWN_SYMBOLS])
        if len(symbols) > SHOWN_SYMBOLS:
            shown += f" ... and {len(symbols) - SHOWN_SYMBOLS} more"
        table.add_row(reason, str(len(symbols)), shown)
    for number, error in run.get("batch_errors", {}).items():
        table.add_row(f"batch {number}", "", error)
    return table
