"""`stockstream check`: options and rendering over quality/check.py."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..outcome import Outcome
from .. import options
from ..thresholds import BIG_MOVE, STALE_SESSIONS
from ..dataset.store import store_of


def register(app: typer.Typer) -> None:
    app.command("check")(check)


End = Annotated[
    Optional[str],
    typer.Option("--end", help="Last trading day, YYYY-MM-DD [default: the latest day in the store].", show_default=False),
]


MISSING_TITLES = {
    "fetch_failed": "fetch failed",
    "unexplained": "unexplained",
    "not_fetched": "never fetched",
    "listed_after": "listed later (expected)",
    "suspended": "suspended (expected)",
}


SUSPICIOUS_TITLES = {
    "big_move": f"close moved > {BIG_MOVE:.0%}",
    "stale": f"unchanged, zero volume, {STALE_SESSIONS}+ sessions",
    "ohlc": "OHLC relations broken",
}


EXAMPLES = 4


@options.quoting(big_move=BIG_MOVE, stale=STALE_SESSIONS)
def check(
    date: options.StoredDate = None,
    start: options.Start = None,
    end: End = None,
    symbols: options.Symbols = None,
    lookback_days: options.CheckLookbackDays = None,
    store: options.Store = None,
    profile: options.Profile = None,
    region: options.Region = None,
    json_output: options.Json = False,
) -> Outcome:
    """Check the store is complete: a row for every listed symbol on every ASX session of the range.

    Missing rows are reported by reason: fetch failed (from the runs' manifests), unexplained, never
    fetched, listed later or suspended (these two are expected and do not fail the check). Suspicious
    data: a close moving more than {big_move:.0%} in a day, a close unchanged with zero volume for {stale} sessions,
    broken OHLC relations. Revisions (a re-fetch that changed a stored value) are counted.
    Exit 0 complete, 3 something missing or suspicious.

    Example: stockstream check --start 2026-11-02 --end 2026-11-27 --store ./stockstream-data
    """
    from ..quality import check as quality
    from .output import emit_json
    from ..settings import Settings
    from ..values import parse_symbols

    given = _given_range(date, start, end)
    codes = parse_symbols(symbols)
    settings = Settings.resolve(store=store, lookback_days=lookback_days, profile=profile, region=region)
    data_store = store_of(settings, must_exist=True)
    first, last = _range(data_store, *given)
    document = quality.check(data_store, first, last, symbols=codes, lookback_days=settings.lookback_days)
    if json_output:
        emit_json(document)
    else:
        _render_check(document)
    return quality.outcome(document)


def _given_range(date, start, end) -> tuple:
    """The typed dates, parsed (None where not given); InputError before anything is read."""
    from ..errors import InputError
    from ..values import check_range, parse_date

    if date is not None and (start is not None or end is not None):
        raise InputError("--date cannot be combined with --start/--end: give one day or a range")
    if date is not None:
        day = parse_date(date)
        return day, day
    first = parse_date(start, parameter="start") if start is not None else None
    last = parse_date(end, parameter="end") if end is not None else None
    if first is not None and last is not None:
        check_range(first, last)
    return first, last


def _range(data_store, first, last):
    """Fill what was not given: the end is the latest day in the store (as `status`), the start the end."""
    from ..dataset.status import latest_day
    from ..values import check_range

    last = last or latest_day(data_store)
    first = first or last
    check_range(first, last)
    return first, last


def _render_check(document: dict) -> None:
    from rich.table import Table

    from .output import counted, stdout_console

    console = stdout_console()
    span = document["start"] if document["start"] == document["end"] else f"{document['start']}..{document['end']}"
    console.print(
        f"[bold]check {span}[/]: {counted(document['sessions'], 'session')} x {counted(document['symbols'], 'symbol')}, "
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

    repaired = document.get("repaired", [])
    if repaired:  # Yahoo's unit errors stored repaired: not suspicious, counted apart
        console.print(f"repaired: {len(repaired):,} day{'' if len(repaired) == 1 else 's'} Yahoo served 100 times too "
                      f"big, stored divided by 100 ({_examples(repaired, with_detail=False)}); "
                      "load --as-reported gives Yahoo's values")
    else:
        console.print("repaired: none")
    revisions = document["revisions_count"]
    if revisions:
        fields = sorted({f for r in document["revisions"] for f in r["fields"]})
        console.print(f"revisions: {revisions:,} (symbol, date) re-fetched with changed {', '.join(fields)}; "
                      "load keeps the newest")
    else:
        console.print("revisions: none")
    for day, part in document.get("partial_runs", {}).items():
        asked = " ".join(str(item) for name in ("symbols", "batches") for item in part.get(name, []))
        kind = "symbols" if "symbols" in part else "batches"
        console.print(f"[yellow]the run of {day} was asked for part of the day only[/] (--{kind} {asked}): "
                      "what it was not asked for counts as never fetched", soft_wrap=True)
    if document["unlisted_symbols"]:
        console.print(f"[yellow]not in any list in force, not checked:[/] {' '.join(document['unlisted_symbols'])}")
    console.print(_verdict(document), soft_wrap=True)
    for hint in repair_hints(document):
        console.print(f"To repair it: {hint}", markup=False, highlight=False, soft_wrap=True)


def repair_hints(document: dict) -> list[str]:
    """The commands that fetch what an incomplete check found missing: backfill --missing for what no run
    covered, rerun-failed for each day whose fetch failed."""
    from .. import hints

    commands = []
    if document["missing"]["not_fetched"]:
        commands.append(hints.command("backfill", "--missing", "--start", document["start"], "--end", document["end"]))
    for day in sorted({item["date"] for item in document["missing"]["fetch_failed"]}):
        commands.append(hints.command("rerun-failed", "--date", day))
    return commands


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
        shown.append(f"+{len(by_symbol) - EXAMPLES} more symbol{'' if len(by_symbol) - EXAMPLES == 1 else 's'}")
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
