"""`chart`: a PNG of close, adjusted close and volume whose plotted data matches the store, gaps as gaps."""

from __future__ import annotations

import datetime as dt
import math
import struct

import pytest

from storefactory import build_day
from helpers import runner
from stockstream_cli import DataAggregator, calendar
from stockstream_cli.quality import chart
from stockstream_cli.cli import app

D = dt.date
RUN_DAYS = calendar.sessions(D(2026, 11, 2), D(2026, 11, 20))
GAP = D(2026, 11, 11)


@pytest.fixture
def store(store):
    """Three weeks of daily runs; BHP's 11 Nov missing from every file (a planted gap)."""
    import io

    import polars as pl

    from stockstream_cli.dataset import layout

    data = store
    for day in RUN_DAYS:
        build_day(data, day, ["BHP", "CBA"])
        key = layout.batch_data_key(day, 0)
        frame = pl.read_parquet(io.BytesIO(data.get(key)))
        frame = frame.filter(~((pl.col("symbol") == "BHP") & (pl.col("date") == GAP)))
        buffer = io.BytesIO()
        frame.write_parquet(buffer)
        data.put(key, buffer.getvalue())
    return data


def png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def test_the_plotted_data_matches_the_store_with_the_gap_as_a_gap(store, tmp_path):
    target = tmp_path / "bhp.png"
    start, end = D(2026, 11, 2), D(2026, 11, 20)
    data = chart.write_chart(store, "BHP", target, start=start, end=end)

    assert png_size(target) == (1100, 650)
    stored = DataAggregator(store).load_symbols(["BHP"], start=start, end=end)
    by_date = {row["date"]: row for row in stored.iter_rows(named=True)}
    assert data.dates == calendar.sessions(start, end)
    assert data.missing_sessions == [GAP]
    assert data.rows == stored.height == len(data.dates) - 1

    # Read the series back from the figure itself, not only from the function's data.
    series = chart.plotted_series(data.figure)
    for index, day in enumerate(data.dates):
        if day == GAP:
            assert math.isnan(series["close"][index]) and math.isnan(series["adjusted_close"][index])
        else:
            assert series["close"][index] == by_date[day]["close"]
            assert series["adjusted_close"][index] == by_date[day]["adjusted_close"]
    assert series["volume"] == [by_date[d]["volume"] for d in data.dates if d != GAP]
    prices_axis, volume_axis = data.figure.axes
    assert len(prices_axis.patches) == len(volume_axis.patches) - len(series["volume"]) == 1  # the shaded gap
    assert "1 missing session" in prices_axis.get_title(loc="left")


def test_defaults_end_at_the_latest_stored_day_and_start_at_the_first(store):
    data = chart.chart_data(store, "CBA")
    assert data.end == D(2026, 11, 20)
    # three months before the end would be 20 Aug, long before the store held CBA: those are not "missing"
    assert data.start == D(2026, 10, 29)  # the first run's window starts there
    assert data.missing_sessions == []
    assert data.rows == len(calendar.sessions(D(2026, 10, 29), D(2026, 11, 20)))
    assert chart.chart_data(store, "CBA", end=D(2026, 11, 6)).start == D(2026, 10, 29)


def test_the_legend_sits_above_the_prices_never_over_the_line(store, tmp_path):
    figure = chart.build_figure(chart.chart_data(store, "BHP"))
    figure.canvas.draw()
    prices = figure.axes[0]
    legend = prices.get_legend().get_window_extent()
    assert legend.y0 >= prices.get_window_extent().y1 - 1
    title = prices.title if prices.get_title() else prices._left_title
    assert not legend.overlaps(title.get_window_extent())
    assert [text.get_text() for text in prices.get_legend().get_texts()] == ["close", "adjusted close",
                                                                             "missing session (1)"]


def test_cli_writes_the_png_and_reports_the_gap(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["chart", "BHP", "--start", "2026-11-02", "--store", store.uri])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "BHP.png").is_file()
    assert "wrote BHP.png" in result.stdout and "1 missing session)" in result.stdout
    assert "2026-11-11" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["BHP", "--output", "chart.jpg"], ".png"),
        (["BHP", "--output", "no/such/folder/x.png"], "does not exist"),
        (["BHP", "--start", "2026-11-20", "--end", "2026-11-02"], "after"),
    ],
)
def test_bad_input_exits_2(store, tmp_path, args, message):
    result = runner.invoke(app, ["chart", *args, "--store", store.uri])
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_a_symbol_with_no_rows_exits_1(store, tmp_path):
    result = runner.invoke(app, ["chart", "XYZ", "--store", store.uri, "--output", str(tmp_path / "x.png")])
    assert result.exit_code == 1
    assert "no rows for XYZ" in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_without_matplotlib_it_says_how_to_install_it(store, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    result = runner.invoke(app, ["chart", "BHP", "--store", store.uri])
    assert result.exit_code == 2
    assert "pip install 'stockstream[chart]'" in result.stderr
