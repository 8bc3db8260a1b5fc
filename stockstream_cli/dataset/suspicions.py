"""The open suspicions: suspicions/open.json, the (symbol, date)s the quality step found suspicious and later
runs fetch again (quality/reverify.py decides, fetch/reverify.py widens the request). One small JSON file,
written only by a run's quality step (after its batches), read by every batch:

    {"updated": "2026-11-20", "open": [{"symbol": "AXE", "date": "2026-11-12", "kind": "big_move",
      "opened": "2026-11-12", "reported": {"open": 80.0, ...}, "fetch_timestamp": "...", "sessions": 3,
      "last_run": "2026-11-17"}, ...]}

`reported`: Yahoo's prices of the day when it was found suspicious (as reported, before any repair); a later
answer that differs closes it. `sessions`: the later run days that fetched it again with the same answer.
No typer or rich here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

from . import layout
from ..errors import CorruptFileError, KeyNotFound, first_line


@dataclasses.dataclass(frozen=True)
class Suspicion:
    symbol: str
    date: dt.date
    kind: str  # check's suspicious kind: big_move or ohlc
    opened: dt.date  # the run day that found it
    reported: dict[str, float]  # Yahoo's prices of the day then (schema.REPAIRED_PRICES)
    fetch_timestamp: str  # the fetch those came from
    sessions: int = 0  # later run days whose fetch gave the same answer
    last_run: dt.date | None = None

    def to_json(self) -> dict:
        return {"symbol": self.symbol, "date": self.date.isoformat(), "kind": self.kind,
                "opened": self.opened.isoformat(), "reported": self.reported, "fetch_timestamp": self.fetch_timestamp,
                "sessions": self.sessions, "last_run": self.last_run.isoformat() if self.last_run else None}

    @classmethod
    def from_json(cls, item: dict) -> "Suspicion":
        return cls(str(item["symbol"]), dt.date.fromisoformat(item["date"]), str(item["kind"]),
                   dt.date.fromisoformat(item["opened"]), {k: float(v) for k, v in item["reported"].items()},
                   str(item["fetch_timestamp"]), int(item.get("sessions") or 0),
                   dt.date.fromisoformat(item["last_run"]) if item.get("last_run") else None)


def read_open(store) -> list[Suspicion]:
    """The open suspicions; [] when there are none. CorruptFileError naming the key when it is not the record."""
    try:
        data = store.get(layout.SUSPICIONS_KEY)
    except KeyNotFound:
        return []
    try:
        return [Suspicion.from_json(item) for item in json.loads(data)["open"]]
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise CorruptFileError(layout.SUSPICIONS_KEY, f"not the open suspicions: {first_line(error)}") from None


def open_dates(store) -> dict[str, list[dt.date]]:
    """symbol -> the dates of its open suspicions. A corrupt record counts as none: re-verification is a
    second look, never a reason for a batch to fail (the quality step rewrites the record)."""
    try:
        found = read_open(store)
    except CorruptFileError:
        return {}
    dates: dict[str, list[dt.date]] = {}
    for one in found:
        dates.setdefault(one.symbol, []).append(one.date)
    return dates


def write_open(store, day: dt.date, suspicions: list[Suspicion]) -> None:
    document = {"updated": day.isoformat(),
                "open": [one.to_json() for one in sorted(suspicions, key=lambda s: (s.symbol, s.date))]}
    store.put(layout.SUSPICIONS_KEY, (json.dumps(document, indent=2) + "\n").encode("utf-8"))
