"""`stockstream backfill`: options and rendering over run/backfill.py."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..outcome import Outcome
from .. import options
from ..dataset.store import store_of


def register(app: typer.Typer) -> None:
    app.command("backfill")(backfill)


RequiredStart = Annotated[str, typer.Option("--start", help="First day of history to fetch, YYYY-MM-DD.", show_default=False)]


def backfill(
    start: RequiredStart,
    end: Annotated[
        Optional[str],
        typer.Option("--end", help="Last day of history [default: the day of the latest ASX list in the store].",
                     show_default=False),
    ] = None,
    symbols: options.Symbols = None,
    missing: Annotated[bool, typer.Option("--missing", help="Fetch exactly the symbols `check` reports as never "
                                          "fetched (not_fetched) over --start..--end (with --symbols: among those).")] = False,
    concurrency: options.SymbolsAtOnce = None,
    delay: options.Delay = None,
    rate: options.Rate = None,
    retries: options.Retries = None,
    retry_wait: options.RetryWait = None,
    batch_size: options.BatchSize = None,
    store: options.Store = None,
    profile: options.Profile = None,
    region: options.Region = None,
    json_output: options.Json = False,
    wait: options.Wait = False,
) -> Outcome:
    """Fetch the history of symbols that lack it into raw-data/D-backfill-N.parquet.

    By default: the symbols the latest ASX list added against the previous one in the store and whose
    history does not reach back to --start. --symbols names them instead. Paced and retried like any
    fetch; progress is recorded per chunk of --batch-size symbols (runs/D/backfill-N.json, D = --end),
    so a rerun after an interruption skips what is done and writes no duplicates. Rows a daily run also
    holds are read once by `load`: the newest fetch wins.
    Exit 0 all fetched, 3 some symbols failed (recorded; a rerun retries them).

    Example: stockstream backfill --start 2020-01-01 --symbols NEWCO --concurrency 10
    """
    from ..run import backfill as backfill_module
    from .output import emit_json
    from ..settings import Settings
    from ..values import check_range, parse_date, parse_symbols

    codes = parse_symbols(symbols)
    first = parse_date(start, parameter="start")
    last = parse_date(end, parameter="end") if end is not None else None
    check_range(first, last)
    settings = Settings.resolve(store=store, concurrency=concurrency, delay=delay, rate=rate, retries=retries, retry_wait=retry_wait,
                                batch_size=batch_size, profile=profile, region=region)
    data_store = store_of(settings)
    from .running import sigterm_as_ctrl_c

    with sigterm_as_ctrl_c(), _backfill_progress(json_output) as observer:
        report = backfill_module.backfill(data_store, first, last, settings, symbols=codes, missing=missing,
                                            observer=observer, wait=wait)
    if json_output:
        emit_json(report.to_document())
    else:
        _render_backfill(report)
    return report.outcome


class _RichBackfillObserver:
    def __init__(self, progress):
        self._progress = progress
        self._task = None

    def note(self, message: str) -> None:
        self._progress.console.print(message)

    def started(self, total: int) -> None:
        self._task = self._progress.add_task("backfill", total=total, failed=0)
        self._failed = 0

    def symbol_done(self, symbol: str, reason: str | None) -> None:
        if reason:
            self._failed += 1
            self._progress.console.print(f"[yellow]{symbol}[/]: {reason}")
        if self._task is not None:
            self._progress.update(self._task, advance=1, failed=self._failed)


class _LogBackfillObserver:
    """stderr is not a terminal, or --json: the notes and each failure as lines (none with -q), no bar."""

    def __init__(self, console):
        self._console = console

    def note(self, message: str) -> None:
        from .output import quiet

        if not quiet():
            self._console.print(message, markup=False, highlight=False, soft_wrap=True)

    def started(self, total: int) -> None:
        pass

    def symbol_done(self, symbol: str, reason: str | None) -> None:
        if reason:
            self.note(f"{symbol}: {reason}")


def _backfill_progress(json_output: bool):
    import contextlib

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from .output import stderr_console

    console = stderr_console()
    if json_output or not console.is_terminal:  # no live bar: a bar not drawn still ends in a blank line
        return contextlib.nullcontext(_LogBackfillObserver(console))

    @contextlib.contextmanager
    def observed():
        # labelled: "backfill ━━━  120/200  3 failed  0:01:05 elapsed  0:00:43 left"
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("[red]{task.fields[failed]} failed[/]"), TimeElapsedColumn(), TextColumn("elapsed"),
                            TimeRemainingColumn(), TextColumn("left"), console=console, transient=True)
        with progress:
            yield _RichBackfillObserver(progress)

    return observed()


def _render_backfill(report) -> None:
    from .output import counted, stdout_console

    console = stdout_console()
    work, reasons = report.plan, report.failure_reasons
    console.print(f"[bold]backfill {work.start} to {work.end}[/]: {counted(len(work.todo), 'symbol')} "
                  f"asked, {len(work.done):,} already done, {report.symbols_fetched:,} fetched "
                  f"({counted(report.rows_written, 'row')}), {len(reasons):,} failed", soft_wrap=True)
    for symbol, reason in reasons.items():
        console.print(f"  [red]{symbol}[/]: {reason}")
    for key in report.data_keys:
        console.print(f"  wrote {key}")
    if not work.todo:
        console.print("nothing to backfill: every symbol asked for already has its history")
