"""stockstream: a dependable daily OHLCV dataset of every ASX-listed company."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["DataAggregator", "__version__"]


def __getattr__(name: str):
    # DataAggregator pulls in polars; import it only when asked for, so `stockstream --help` stays instant.
    if name == "DataAggregator":
        from .read.aggregate import DataAggregator

        return DataAggregator
    raise AttributeError(name)
