"""`stockstream load`: the store read back, as a table, CSV, JSON or Parquet."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import options
from ..dataset.store import store_of

TABLE_ROWS = 30  # a bigger result shows its first and last 15 rows; --format csv or --output gives them all
PIPED_WIDTH = 160  # piped, the table is not squeezed into a terminal's 80 characters


class Format(str, enum.Enum):
    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


SUFFIX_FORMATS = {".csv": Format.csv, ".json": Format.json, ".parquet": Format.parquet, ".pq": Format.parquet}


# --format and --output, shared by load and actions (commands/actions.py)
OutputFormat = Annotated[
    Optional[Format],
    typer.Option(
        "--format",
        help="table, csv, json (an array of row objects) or parquet (needs --output). "
        "[default: table; with --output, from its suffix]",
        show_default=False,
        case_sensitive=False,
    ),
]
Output = Annotated[
    Optional[Path],
    typer.Option("--output", "-o", help="Write to this file instead of stdout: a file is replaced atomically, a "
                 "device or FIFO written into; - is stdout.", show_default=False),
]


def register(app: typer.Typer) -> None:
    app.command("load")(load)


def load(
    symbols: options.Symbols = None,
    date: Annotated[
        Optional[str], typer.Option("--date", help="Only this trading day, YYYY-MM-DD.", show_default=False)
    ] = None,
    start: Annotated[
        Optional[str], typer.Option("--start", help="First trading date, YYYY-MM-DD (with --end).", show_default=False)
    ] = None,
    end: Annotated[
        Optional[str], typer.Option("--end", help="Last trading date, YYYY-MM-DD, included.", show_default=False)
    ] = None,
    as_reported: Annotated[
        bool, typer.Option("--as-reported", help="Days stored repaired (Yahoo's prices 100 times too big) "
                           "with the prices Yahoo reported, untouched (query's table repairs lists them).")
    ] = False,
    format: OutputFormat = None,
    output: Output = None,
    store: options.Store = None,
    profile: options.Profile = None,
    region: options.Region = None,
) -> None:
    """Read the store back: one row per (symbol, date), the newest fetch winning, sorted by symbol then date.

    Without filters, everything the store holds. Columns are the Parquet schema's.

    Examples: `stockstream load --symbols BHP CBA`;
    `stockstream load --start 2026-01-01 --end 2026-01-31 --format csv -o january.csv`;
    `stockstream load --date 2026-01-05 --output day.parquet`; `stockstream load --symbols AXE --as-reported`.
    """
    from ..values import parse_symbols

    chosen = choose_format(format, output)
    codes = parse_symbols(symbols)
    first, last = date_range(date, start, end)
    aggregator = open_reader(store, profile, region)
    frame = aggregator.load(codes, start=first, end=last, as_reported=as_reported)
    if frame.is_empty():
        _note_empty(aggregator, codes, first, last)
    show(frame, chosen, output)


def show(frame, chosen: "Format", output: Path | None) -> None:
    """A result frame to --output or stdout in the chosen format (load's and actions' rendering)."""
    from .output import to_stdout

    if output is not None and not to_stdout(output):
        _write_file(frame, chosen, output)
        typer.echo(f"wrote {frame.height:,} rows to {output}", err=True)
    elif chosen is Format.table:
        _print_table(frame)
    elif chosen is Format.parquet:  # `-o -`: Parquet's bytes to stdout, for a pipe
        _write_file(frame, chosen, output)
    else:
        sys.stdout.write(_render_text(frame, chosen))
        sys.stdout.flush()


def choose_format(format: Format | None, output: Path | None) -> Format:
    from ..errors import InputError
    from .output import to_stdout

    if to_stdout(output):  # `-o -`: stdout, as without --output, where Parquet's bytes may go too
        return format or Format.table
    if output is not None:
        if output.is_dir():
            raise InputError(f"--output {output} is a folder: give a file name inside it")
        if not output.parent.is_dir():
            raise InputError(f"--output {output}: the folder {output.parent} does not exist")
    if format is None:
        if output is None:
            return Format.table
        inferred = SUFFIX_FORMATS.get(output.suffix.lower())
        if inferred is None:
            raise InputError(f"cannot tell the format of --output {output}: add --format csv, json or parquet")
        format = inferred
    if format is Format.parquet and output is None:
        raise InputError("--format parquet writes a file: add --output PATH, e.g. --output prices.parquet")
    if format is Format.table and output is not None:
        raise InputError("--format table is for the screen: use --format csv, json or parquet with --output")
    return format


def open_reader(store, profile, region):
    """The DataAggregator of the store the options name (load's and actions'); a store not there: exit 2."""
    from ..dataset.aggregate import DataAggregator
    from ..settings import Settings

    settings = Settings.resolve(store=store, profile=profile, region=region)
    return DataAggregator(store_of(settings, must_exist=True))


def date_range(date, start, end):
    """(first, last) from --date or --start/--end, each None when not given (load's and actions')."""
    from ..errors import InputError
    from ..values import check_range, parse_date

    if date is not None and (start is not None or end is not None):
        raise InputError("--date is one day; --start/--end a range: give one or the other")
    if date is not None:
        day = parse_date(date, parameter="date")
        return day, day
    first = None if start is None else parse_date(start, parameter="start")
    last = None if end is None else parse_date(end, parameter="end")
    check_range(first, last)
    return first, last


def _note_empty(aggregator, codes, first, last) -> None:
    asked = []
    if codes:
        asked.append("symbols " + " ".join(codes))
    if first is not None or last is not None:
        asked.append(f"dates {first or '…'} to {last or '…'}" if first != last else f"date {first}")
    held = _data_files_text(aggregator.data_file_kinds())
    what = f" for {', '.join(asked)}" if asked else ""
    typer.echo(f"no rows{what} in {aggregator.store.uri}; {held}", err=True)


def _data_files_text(files: dict[str, list]) -> str:
    """'it holds daily files of 2 days (2026-11-27 to 2026-11-28), 11 compacted months (...) and backfill ...'."""
    from .output import counted

    parts = []
    for kind, noun, what in (("days", "day", "daily files of"), ("months", "month", "compacted files of"),
                             ("backfill", "day", "backfill files recorded on")):
        values = files[kind]
        if values:
            span = f" ({values[0]})" if len(values) == 1 else f" ({values[0]} to {values[-1]})"
            parts.append(f"{what} {counted(len(values), noun)}{span}")
    if not parts:
        return "it holds no data files yet"
    return "it holds " + (", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0])


def _render_text(frame, chosen: Format) -> str:
    if chosen is Format.csv:
        return frame.write_csv()
    return frame.write_json() + "\n"


def _write_file(frame, chosen: Format, output: Path) -> None:
    """A file replaced atomically, a device or FIFO written into, `-` stdout (output.write_output)."""
    from ..errors import StoreError
    from .output import write_output

    def write(handle) -> None:
        if chosen is Format.parquet:
            frame.write_parquet(handle)
        elif chosen is Format.csv:
            frame.write_csv(handle)
        else:
            frame.write_json(handle)
            handle.write(b"\n")

    try:
        write_output(output, write)
    except OSError as error:
        raise StoreError(f"cannot write {output}: {error.strerror or error}") from None


def _print_table(frame) -> None:
    """The frame as aligned columns, rendered by polars (fast, and no table library to import at start-up);
    columns are left out in DROP_ORDER until every line fits the terminal."""
    from .output import stdout_width

    width = stdout_width(minimum=PIPED_WIDTH)
    shown = list(frame.columns)
    text = _table_text(frame)
    for name in (name for name in DROP_ORDER if name in frame.columns):
        if _widest_line(text) <= width:
            break
        shown.remove(name)
        text = _table_text(frame.select(shown))
    import textwrap

    hidden = max(frame.height - TABLE_ROWS, 0)
    caption = textwrap.fill(_caption(frame.height, hidden, frame.columns, shown), width=width)
    sys.stdout.write(f"{text}\n{caption}\n")
    sys.stdout.flush()


def _table_text(frame) -> str:
    import polars as pl

    with pl.Config(tbl_formatting="NOTHING", tbl_rows=TABLE_ROWS, tbl_cols=-1, tbl_hide_column_data_types=True,
                   tbl_hide_dataframe_shape=True, tbl_width_chars=10_000, fmt_str_lengths=1_000,
                   float_precision=4, tbl_cell_numeric_alignment="RIGHT"):
        return str(frame)


def _widest_line(text: str) -> int:
    return max(len(line) for line in text.splitlines())


# Columns left out, in this order, until the table fits the terminal; symbol, date and close always stay.
DROP_ORDER = ("batch_number", "fetch_timestamp", "adjusted_close", "volume", "open", "high", "low")


def _caption(height: int, hidden: int, columns: list[str], shown: list[str]) -> str:
    caption = f"{height:,} row{'s' if height != 1 else ''}"
    if hidden:
        caption += f", {hidden:,} of them hidden"
    left_out = [name for name in columns if name not in shown]
    if left_out:
        caption += f"; columns not shown: {', '.join(left_out)}"
    if hidden or left_out:
        caption += " (--format csv or --output FILE gives everything)"
    return caption
