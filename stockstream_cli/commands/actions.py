"""`stockstream actions`: the corporate actions the store knows (dividends, splits), rendered as `load` renders."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .. import options
from .load import Output, OutputFormat, choose_format, date_range, open_reader, show


def register(app: typer.Typer) -> None:
    app.command("actions")(actions)


def actions(
    symbols: options.Symbols = None,
    start: Annotated[
        Optional[str], typer.Option("--start", help="First ex-date, YYYY-MM-DD.", show_default=False)
    ] = None,
    end: Annotated[
        Optional[str], typer.Option("--end", help="Last ex-date, YYYY-MM-DD, included.", show_default=False)
    ] = None,
    format: OutputFormat = None,
    output: Output = None,
    store: options.Store = None,
    profile: options.Profile = None,
    region: options.Region = None,
) -> None:
    """The dividends and splits the store knows: one row per (symbol, ex-date, kind), sorted by symbol then date.

    Columns: symbol, date (the ex-date), kind (dividend or split), value (the dividend per share in today's
    units; for a split its ratio: 2.0 for 2-for-1, 0.1 for a 1-for-10 consolidation), fetch_timestamp.

    Examples: `stockstream actions --symbols BHP`; `stockstream actions --start 2026-01-01 --format csv`.
    """
    from ..values import parse_symbols

    chosen = choose_format(format, output)
    codes = parse_symbols(symbols)
    first, last = date_range(None, start, end)
    aggregator = open_reader(store, profile, region)
    frame = aggregator.load_actions(codes, start=first, end=last)
    if frame.is_empty():
        typer.echo(f"no actions{' of ' + ' '.join(codes) if codes else ''} in {aggregator.store.uri}", err=True)
    show(frame, chosen, output)
