"""`chart`: a symbol's close and adjusted close with its volume below, ASX sessions without a row left as gaps.

`chart_data` gathers what is plotted (no matplotlib needed), `build_figure` draws it with matplotlib's Agg
canvas (no pyplot, no display, no global backend switch), `write_chart` does both and saves a PNG. The plotted
series are kept on the result, so a test compares them with the store.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

from .. import calendar
from ..errors import InputError, StockstreamError
from ..values import check_range

DEFAULT_SPAN = dt.timedelta(days=92)
INSTALL_HINT = "pip install 'stockstream[chart]'"


@dataclasses.dataclass
class ChartData:
    """What the chart shows: one point per day (every ASX session of the range, plus any other stored day).

    A session without a row has None in every series and is listed in `missing_sessions`.
    """

    symbol: str
    start: dt.date
    end: dt.date
    dates: list[dt.date]
    close: list[float | None]
    adjusted_close: list[float | None]
    volume: list[int | None]
    missing_sessions: list[dt.date]
    splits: list[tuple[dt.date, float]] = dataclasses.field(default_factory=list)  # (ex-date, ratio) in range
    dividends: list[tuple[dt.date, float]] = dataclasses.field(default_factory=list)  # (ex-date, per share)
    figure: Any = None

    @property
    def rows(self) -> int:
        return sum(value is not None for value in self.close)


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InputError(f"chart needs matplotlib, which is not installed: {INSTALL_HINT}") from None


def output_path(output: str | None, symbol: str) -> Path:
    """Where the PNG goes: --output, else SYMBOL.png here; InputError before anything is read or drawn."""
    path = Path(output) if output else Path(f"{symbol}.png")
    if path.suffix.lower() != ".png":
        raise InputError(f"{path}: the chart is a PNG, give a file name ending in .png", parameter="output")
    if path.is_dir():
        raise InputError(f"{path} is a folder: give a file name ending in .png", parameter="output")
    if not path.parent.exists():
        raise InputError(f"{path}: folder {path.parent} does not exist", parameter="output")
    return path


def chart_data(store, symbol: str, start: dt.date | None = None, end: dt.date | None = None) -> ChartData:
    """The symbol's stored rows over [start, end] laid on the ASX sessions of that range.

    `end` defaults to the symbol's latest stored day, `start` to three months before `end` but not before the
    symbol's first stored day (sessions before the store held it are not "missing").
    """
    from ..dataset.aggregate import DataAggregator

    reader = DataAggregator(store)
    if end is None or start is None:
        first, latest = _stored_span(reader, symbol, start)
        end = end or latest
        start = start or max(end - DEFAULT_SPAN, first)
    check_range(start, end)
    frame = reader.load_symbols([symbol], start=start, end=end)
    rows = {row["date"]: row for row in frame.iter_rows(named=True)}
    sessions = calendar.sessions(start, end)
    dates = sorted(set(sessions) | set(rows))
    actions = reader.load_actions([symbol], start=start, end=end)
    events = {kind: [(d, v) for d, k, v in zip(actions["date"], actions["kind"], actions["value"]) if k == kind]
              for kind in ("split", "dividend")}
    return ChartData(
        symbol=symbol,
        start=start,
        end=end,
        dates=dates,
        close=[rows[d]["close"] if d in rows else None for d in dates],
        adjusted_close=[rows[d]["adjusted_close"] if d in rows else None for d in dates],
        volume=[rows[d]["volume"] if d in rows else None for d in dates],
        missing_sessions=[d for d in sessions if d not in rows],
        splits=events["split"],
        dividends=events["dividend"],
    )


def _stored_span(reader, symbol: str, start: dt.date | None) -> tuple[dt.date, dt.date]:
    """The symbol's first and latest stored day (from `start` on, when given)."""
    frame = reader.load_symbols([symbol], start=start)
    if frame.is_empty():
        since = f" since {start}" if start else ""
        raise StockstreamError(f"no rows for {symbol}{since} in {reader.store.uri}: fetch or backfill it first")
    return frame["date"].min(), frame["date"].max()


def build_figure(data: ChartData):
    """A matplotlib Figure on the Agg canvas: prices above, volume below, missing sessions shaded."""
    import matplotlib.dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    figure = Figure(figsize=(11, 6.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    prices, volume = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    nan = float("nan")
    close = [nan if v is None else v for v in data.close]
    adjusted = [nan if v is None else v for v in data.adjusted_close]
    # NaN breaks a line, so a missing session is a gap; the small markers keep a lone day between gaps visible.
    prices.plot(data.dates, close, color="#1f4e79", linewidth=1.6, marker="o", markersize=2.5, label="close",
                gid="close", zorder=3)
    prices.plot(data.dates, adjusted, color="#d4821e", linewidth=1.2, linestyle="--", marker="o", markersize=1.5,
                label="adjusted close", gid="adjusted_close")
    bars = [(d, v) for d, v in zip(data.dates, data.volume) if v is not None]
    volume.bar([d for d, _ in bars], [v for _, v in bars], width=0.8, color="#7f8c8d", gid="volume")
    for axis in (prices, volume):
        for day in data.missing_sessions:
            noon_before = dt.datetime.combine(day, dt.time()) - dt.timedelta(hours=12)
            axis.axvspan(noon_before, noon_before + dt.timedelta(days=1), color="#e74c3c", alpha=0.18, linewidth=0)
        axis.grid(True, color="#dddddd", linewidth=0.6)
    _mark_actions(prices, data)
    handles, labels = prices.get_legend_handles_labels()
    if data.missing_sessions:
        handles.append(Patch(color="#e74c3c", alpha=0.3))
        labels.append(f"missing session ({len(data.missing_sessions)})")
    # above the plot on the right, never over the line nor the (left-aligned) title
    prices.legend(handles, labels, loc="lower right", bbox_to_anchor=(1, 1.0), ncols=len(labels), fontsize=9,
                  frameon=False, borderaxespad=0.2)
    prices.set_ylabel("price (AUD)")
    volume.set_ylabel("volume")
    volume.yaxis.set_major_formatter(_volume_formatter())
    locator = mdates.AutoDateLocator()
    volume.xaxis.set_major_locator(locator)
    volume.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    gaps = f", {len(data.missing_sessions)} missing session(s)" if data.missing_sessions else ", no gaps"
    prices.set_title(f"{data.symbol}.AX  {data.start} to {data.end}  ({data.rows} rows{gaps})", loc="left")
    data.figure = figure
    return figure


def _mark_actions(prices, data: ChartData) -> None:
    """A vertical line at each split's ex-date (labelled with its ratio) and a marker under each ex-dividend date."""
    for index, (day, ratio) in enumerate(data.splits):
        label = f"{ratio:g}-for-1" if ratio >= 1 else f"1-for-{1 / ratio:g}"
        prices.axvline(day, color="#8e44ad", linewidth=1.2, linestyle=":", gid=f"split-{day.isoformat()}",
                       label="split / consolidation" if index == 0 else None)
        prices.annotate(label, (day, 1.0), xycoords=("data", "axes fraction"), fontsize=8, color="#8e44ad",
                        ha="left", va="top", rotation=90)
    if data.dividends:
        prices.plot([d for d, _ in data.dividends], [0.02] * len(data.dividends), linestyle="none", marker="^",
                    color="#27ae60", markersize=7, transform=prices.get_xaxis_transform(), gid="dividends",
                    label=f"ex-dividend ({len(data.dividends)})")


def _volume_formatter():
    from matplotlib.ticker import FuncFormatter

    def short(value, _position):
        for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
            if abs(value) >= size:
                return f"{value / size:g}{suffix}"
        return f"{value:g}"

    return FuncFormatter(short)


def write_chart(store, symbol: str, path: str | Path, start: dt.date | None = None,
                end: dt.date | None = None) -> ChartData:
    """Gather, draw and save the chart as a PNG; returns the plotted data (with its figure)."""
    require_matplotlib()
    data = chart_data(store, symbol, start, end)
    figure = build_figure(data)
    figure.savefig(Path(path), format="png")
    return data


def plotted_series(figure) -> dict[str, list[float]]:
    """Read the series back from a figure built here: {'close': [...], 'adjusted_close': [...], 'volume': [...]}.

    NaN marks a gap in the price lines; volume holds only the bars drawn.
    """
    prices, volume = figure.axes[:2]
    series = {line.get_gid(): [float(y) for y in line.get_ydata()] for line in prices.get_lines()}
    series["volume"] = [rect.get_height() for container in volume.containers for rect in container]
    return series
