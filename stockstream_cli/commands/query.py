"""`stockstream query SQL`: one SQL query over the store's tables prices and actions, rendered as `load` renders."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import options
from .load import Format, Output, OutputFormat, choose_format, open_reader, show


def register(app: typer.Typer) -> None:
    app.command("query")(query)


def query(
    sql: Annotated[str, typer.Argument(help="One SQL query (quote it) over the tables prices and actions.",
                                       show_default=False)],
    format: OutputFormat = None,
    output: Output = None,
    store: options.Store = None,
    profile: options.Profile = None,
    region: options.Region = None,
) -> None:
    """Run one SQL query over the store, with polars' SQL engine: table `prices` is exactly `load`'s rows (one
    per symbol and date, the newest fetch winning, the Parquet schema's columns) and table `actions` exactly
    the `actions` command's rows.

    SQL the engine refuses is exit 2 with its message; rows come in the order the query gives (add ORDER BY).

    Examples: `stockstream query "SELECT symbol, max(close) FROM prices WHERE date >= '2026-01-01' GROUP BY symbol"`;
    `stockstream query "SELECT * FROM actions WHERE kind = 'split'" --format csv -o splits.csv`.
    """
    chosen = choose_format(format, output)
    frame = open_reader(store, profile, region).query(sql)
    if chosen is Format.csv:
        _check_flat(frame)
    show(frame, chosen, output)


def _check_flat(frame) -> None:
    """CSV holds no lists or structs: say which column, before anything is written."""
    from ..errors import InputError

    nested = [name for name, kind in frame.schema.items() if kind.is_nested()]
    if nested:
        raise InputError(f"CSV cannot hold the column {nested[0]!r} ({frame.schema[nested[0]]}): "
                         f"use --format json or parquet, or flatten it in the query")
