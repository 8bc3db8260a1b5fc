"""`stockstream chart`: options and rendering over quality/chart.py."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .. import options
from ..dataset.store import store_of


def register(app: typer.Typer) -> None:
    app.command("chart")(chart)


Output = Annotated[
    Optional[str],
    typer.Option("--output", "-o", help="PNG file to write [default: SYMBOL.png in the current folder].", show_default=False),
]


Symbol = Annotated[str, typer.Argument(help="ASX code without suffix, e.g. BHP.", show_default=False)]


def chart(
    symbol: Symbol,
    start: options.Start = None,
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
    from .output import counted, say, stdout_console
    from ..settings import Settings
    from ..values import check_symbol, parse_date

    code = check_symbol(symbol)
    first = parse_date(start, parameter="start") if start is not None else None
    last = parse_date(end, parameter="end") if end is not None else None
    chart_module.require_matplotlib()
    target = chart_module.output_path(output, code)
    settings = Settings.resolve(store=store, profile=profile, region=region)
    data_store = store_of(settings, must_exist=True)
    result = chart_module.write_chart(data_store, code, target, start=first, end=last)
    if result.missing_sessions:
        say(f"{counted(len(result.missing_sessions), 'ASX session')} without a row, shown as gaps: "
            + ", ".join(d.isoformat() for d in result.missing_sessions[:10])
            + (" ..." if len(result.missing_sessions) > 10 else ""))
    stdout_console().print(f"wrote {target} ({code} {result.start} to {result.end}, "
                           f"{counted(result.rows, 'row')}, {counted(len(result.missing_sessions), 'missing session')})",
                           soft_wrap=True)
