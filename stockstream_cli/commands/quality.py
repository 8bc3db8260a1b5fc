"""`stockstream check`, `stockstream backfill` and `stockstream chart`: options and rendering over
quality.py, backfill.py and chart.py."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .. import options

Start = Annotated[Optional[str], typer.Option("--start", help="First trading day, YYYY-MM-DD.", show_default=False)]
End = Annotated[
    Optional[str],
    typer.Option("--end", help="Last trading day, YYYY-MM-DD [default: today in Australia/Sydney].", show_default=False),
]
RequiredStart = Annotated[str, typer.Option("--start", help="First day of history to fetch, YYYY-MM-DD.", show_default=False)]
Output = Annotated[
    Optional[str],
    typer.Option("--output", "-o", help="PNG file to write [default: SYMBOL.png in the current folder].", show_default=False),
]
Symbol = Annotated[str, typer.Argument(help="ASX code without suffix, e.g. BHP.", show_default=False)]

MISSING_TITLES = {
    "fetch_failed": "fetch failed",
    "unexplained": "unexplained",
    "not_fetched": "never fetched",
    "listed_after": "listed later (expected)",
    "suspended": "suspended (expected)",
}
SUSPICIOUS_TITLES = {
    "big_move": "close moved > 50%",
    "stale": "unchanged, zero volume, 10+ sessions",
    "ohlc": "OHLC relations broken",
}
EXAMPLES = 4


def register(app: typer.Typer) -> None:
    app.command("check")(check)
    app.command("backfill")(backfill)
    app.command("chart")(chart)


# ---------------------------------------------------------------------------------------------- check


def check(
    date: options.Date = None,
    start: Start = None,
    end: End = None,
    symbols: options.Symbols = None,
    lookback_days: options.LookbackDays = None,
    store: options.Store = None,
    profile: options.Profile = None,
    region: options.Region = None,
    json_output: options.Json = False,
) -> None:
    """Check the store is complete: a row for every listed symbol on every ASX session of the range.

    Missing rows are reported by reason: fetch failed (from the runs' manifests), unexplained, never
    fetched, listed later or suspended (these two are expected and do not fail the check). Suspicious
    data: a close moving more than 50% in a day, a close unchanged with zero volume for 10 sessions,
    broken OHLC relations. Revisions (a re-fetch that changed a stored value) are counted.
    Exit 0 complete, 3 something missing or suspicious.

    Example: stockstream check --start 2026-11-02 --end 2026-11-27 --store ./stockstream-data
    """
    from ..quality import check as quality
    from .output import emit_json
    from ..settings import Settings
    from ..store import open_store
    from ..values import parse_symbols

    first, last = _range(date, start, end)
    codes = parse_symbols(symbols)
    settings = Settings.resolve(store=store, lookback_days=lookback_days, profile=profile, region=region)
    data_store = open_store(settings.store, profile=settings.profile, region=settings.region)
    document = quality.check(data_store, first, last, symbols=codes, lookback_days=settings.lookback_days)
    if json_output:
        emit_json(document)
    else:
        _render_check(document)
    raise typer.Exit(quality.exit_code(document))


def _range(date, start, end):
    from ..errors import InputError
    from ..values import parse_date

    if date is not None and (start is not None or end is not None):
        raise InputError("--date cannot be combined with --start/--end: give one day or a range")
    if date is not None or (start is None and end is None):
        day = parse_date(date)
        return day, day
    last = parse_date(end, option="--end")
    first = parse_date(start, option="--start") if start is not None else last
    if first > last:
        raise InputError(f"--start {first} is after --end {last}: give the earlier date first")
    return first, last


def _render_check(document: dict) -> None:
    from rich.table import Table

    from .output import stdout_console

    console = stdout_console()
    span = document["start"] if document["start"] == document["end"] else f"{document['start']}..{document['end']}"
    console.print(
        f"[bold]check {span}[/]: {document['sessions']} sessions x {document['symbols']:,} symbols, "
        f"{document['present_rows']:,}/{document['expected_rows']:,} rows present",
        soft_wrap=True,
    )
    if document["sessions"] == 0:
        console.print("no ASX session in this range (weekend or holiday): nothing to check")

    missing = Table(title="Missing rows", title_justify="left", show_lines=False)
    for column, justify in (("reason", "left"), ("rows", "right"), ("symbols", "right"), ("examples", "left")):
        missing.add_column(column, justify=justify)
    for reason, title in MISSING_TITLES.items():
        items = document["missing"][reason]
        style = "red" if items and reason in ("fetch_failed", "unexplained", "not_fetched") else ("yellow" if items else "dim")
        missing.add_row(f"[{style}]{title}[/]", str(len(items)), str(len({i["symbol"] for i in items})),
                        _examples(items, with_detail=reason == "fetch_failed"))
    console.print(missing)

    suspicious = Table(title="Suspicious data", title_justify="left")
    for column, justify in (("check", "left"), ("found", "right"), ("examples", "left")):
        suspicious.add_column(column, justify=justify)
    for kind, title in SUSPICIOUS_TITLES.items():
        items = document["suspicious"][kind]
        style = "red" if items else "dim"
        suspicious.add_row(f"[{style}]{title}[/]", str(len(items)), _suspicious_examples(kind, items))
    console.print(suspicious)

    revisions = document["revisions_count"]
    if revisions:
        fields = sorted({f for r in document["revisions"] for f in r["fields"]})
        console.print(f"revisions: {revisions:,} (symbol, date) re-fetched with changed {', '.join(fields)}; "
                      "load keeps the newest")
    else:
        console.print("revisions: none")
    if document["unlisted_symbols"]:
        console.print(f"[yellow]not in any list in force, not checked:[/] {' '.join(document['unlisted_symbols'])}")
    console.print(_verdict(document), soft_wrap=True)


def _verdict(document: dict) -> str:
    if document["complete"]:
        return "[bold green]COMPLETE[/]"
    parts = [f"{n:,} {MISSING_TITLES[r]}" for r, n in document["missing_counts"].items()
             if n and r in ("fetch_failed", "unexplained", "not_fetched")]
    parts += [f"{n:,} {SUSPICIOUS_TITLES[k]}" for k, n in document["suspicious_counts"].items() if n]
    return f"[bold red]INCOMPLETE[/]: {'; '.join(parts)}"


def _examples(items: list[dict], *, with_detail: bool) -> str:
    """'NAB 2026-11-13; CBA 2026-11-03..2026-11-05 (3 days); +2 more symbols'."""
    by_symbol: dict[str, list[dict]] = {}
    for item in items:
        by_symbol.setdefault(item["symbol"], []).append(item)
    shown = []
    for symbol, entries in list(by_symbol.items())[:EXAMPLES]:
        dates = [e["date"] for e in entries]
        text = f"{symbol} {dates[0]}" if len(dates) == 1 else f"{symbol} {dates[0]}..{dates[-1]} ({len(dates)} days)"
        if with_detail:
            text += f" [dim]{entries[-1]['detail']}[/]"
        shown.append(text)
    if len(by_symbol) > EXAMPLES:
        shown.append(f"+{len(by_symbol) - EXAMPLES} more symbols")
    return "; ".join(shown)


def _suspicious_examples(kind: str, items: list[dict]) -> str:
    shown = []
    for item in items[:EXAMPLES]:
        if kind == "big_move":
            shown.append(f"{item['symbol']} {item['date']} {item['previous_close']:g} -> {item['close']:g} "
                         f"({item['change']:+.0%})")
        elif kind == "stale":
            shown.append(f"{item['symbol']} {item['start']}..{item['end']} at {item['close']:g} ({item['sessions']})")
        else:
            shown.append(f"{item['symbol']} {item['date']} {item['problem']}")
    if len(items) > EXAMPLES:
        shown.append(f"+{len(items) - EXAMPLES} more")
    return "; ".join(shown)


# ---------------------------------------------------------------------------------------------- backfill


def backfill(
    start: RequiredStart,
    end: Annotated[
        Optional[str],
        typer.Option("--end", help="Last day of history [default: the day of the latest ASX list in the store].",
                     show_default=False),
    ] = None,
    symbols: options.Symbols = None,
    delay: options.Delay = None,
    rate: options.Rate = None,
    retries: options.Retries = None,
    retry_wait: options.RetryWait = None,
    batch_size: options.BatchSize = None,
    store: options.Store = None,
    profile: options.Profile = None,
    region: options.Region = None,
    json_output: options.Json = False,
) -> None:
    """Fetch the history of symbols that lack it into raw-data/D-backfill-N.parquet.

    By default: the symbols the latest ASX list added against the previous one in the store and whose
    history does not reach back to --start. --symbols names them instead. Paced and retried like any
    fetch; progress is recorded per chunk of --batch-size symbols (runs/D/backfill-N.json, D = --end),
    so a rerun after an interruption skips what is done and writes no duplicates. Rows a daily run also
    holds are read once by `load`: the newest fetch wins.
    Exit 0 all fetched, 3 some symbols failed (recorded; a rerun retries them).

    Example: stockstream backfill --start 2020-01-01 --symbols NEWCO
    """
    from ..run import backfill as backfill_module
    from .output import emit_json
    from ..settings import Settings
    from ..store import open_store
    from ..values import parse_date, parse_symbols

    codes = parse_symbols(symbols)
    first = parse_date(start, option="--start")
    last = parse_date(end, option="--end") if end is not None else None
    if last is not None and first > last:
        from ..errors import InputError

        raise InputError(f"--start {first} is after --end {last}: give the earlier date first")
    settings = Settings.resolve(store=store, delay=delay, rate=rate, retries=retries, retry_wait=retry_wait,
                                batch_size=batch_size, profile=profile, region=region)
    data_store = open_store(settings.store, profile=settings.profile, region=settings.region)
    with _backfill_progress(json_output) as observer:
        document = backfill_module.backfill(data_store, first, last, settings, symbols=codes, observer=observer)
    if json_output:
        emit_json(document)
    else:
        _render_backfill(document)
    raise typer.Exit(backfill_module.exit_code(document))


class _RichBackfillObserver:
    def __init__(self, progress):
        self._progress = progress
        self._task = None

    def note(self, message: str) -> None:
        self._progress.console.print(message)

    def started(self, total: int) -> None:
        self._task = self._progress.add_task("backfill", total=total)

    def symbol_done(self, symbol: str, reason: str | None) -> None:
        if reason:
            self._progress.console.print(f"[yellow]{symbol}[/]: {reason}")
        if self._task is not None:
            self._progress.advance(self._task)


def _backfill_progress(json_output: bool):
    import contextlib

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .output import stderr_console

    @contextlib.contextmanager
    def observed():
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            console=stderr_console(), transient=True)
        with progress:
            yield _RichBackfillObserver(progress)

    return observed()


def _render_backfill(document: dict) -> None:
    from .output import stdout_console

    console = stdout_console()
    meta = document["metadata"]
    console.print(f"[bold]backfill {meta['start']} to {meta['end']}[/]: {len(document['symbols'])} symbol(s) asked, "
                  f"{len(meta['skipped_done'])} already done, {meta['symbols_fetched']} fetched "
                  f"({meta['rows_written']:,} rows), {len(meta['symbols_failed'])} failed", soft_wrap=True)
    for symbol in meta["symbols_failed"]:
        console.print(f"  [red]{symbol}[/]: {meta['failure_reasons'][symbol]}")
    for key in meta["s3_keys"]:
        console.print(f"  wrote {key}")
    if not document["symbols"]:
        console.print("nothing to backfill: every symbol asked for already has its history")


# ---------------------------------------------------------------------------------------------- chart


def chart(
    symbol: Symbol,
    start: Start = None,
    end: Annotated[
        Optional[str],
        typer.Option("--end", help="Last day [default: the symbol's latest stored day].", show_default=False),
    ] = None,
    output: Output = None,
    store: options.Store = None,
    profile: options.Profile = None,
    region: options.Region = None,
) -> None:
    """Draw a symbol's close and adjusted close with its volume below, as a PNG.

    ASX sessions with no row in the store are left as gaps in the lines and shaded, so what `check`
    reports is visible. --start defaults to 3 months before --end. Needs matplotlib:
    pip install 'stockstream[chart]'.

    Example: stockstream chart BHP --start 2026-11-01 --output bhp.png
    """
    from ..quality import chart as chart_module
    from .output import say, stdout_console
    from ..settings import Settings
    from ..store import open_store
    from ..values import check_symbol, parse_date

    code = check_symbol(symbol)
    first = parse_date(start, option="--start") if start is not None else None
    last = parse_date(end, option="--end") if end is not None else None
    chart_module.require_matplotlib()
    target = chart_module.output_path(output, code)
    settings = Settings.resolve(store=store, profile=profile, region=region)
    data_store = open_store(settings.store, profile=settings.profile, region=settings.region)
    result = chart_module.write_chart(data_store, code, target, start=first, end=last)
    if result.missing_sessions:
        say(f"{len(result.missing_sessions)} ASX session(s) without a row, shown as gaps: "
            + ", ".join(d.isoformat() for d in result.missing_sessions[:10])
            + (" ..." if len(result.missing_sessions) > 10 else ""))
    stdout_console().print(f"wrote {target} ({code} {result.start} to {result.end}, "
                           f"{result.rows} rows, {len(result.missing_sessions)} missing session(s))", soft_wrap=True)
