"""Re-verification of what the quality step finds suspicious: Yahoo's own errors corrected, not only flagged.

After a run's check (check.run_quality), every suspicious (symbol, date) of the checked session (a big move, a
broken OHLC) is opened in suspicions/open.json with Yahoo's prices of the day. Every later run's batch fetches
the symbol's open suspicions again within its one daily chart request (fetch/reverify.py: no extra request),
stores the answer through the ordinary commit (newest fetch wins; an unmistakable 100x day is stored repaired,
fetch/unit_errors.py), and this step then closes each suspicion whose answer changed (Yahoo corrected it) and
each that stood for REVERIFY_SESSIONS sessions and has left the lookback window (confirmed as Yahoo reports
it; check keeps flagging it). The answer is compared as Yahoo reported it (`load --as-reported`), so a day
stored repaired stays open, and fetched with its neighbours, until Yahoo corrects it or it is confirmed.
No typer or rich here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from ..dataset.suspicions import Suspicion
from ..errors import CorruptFileError, StockstreamError
from ..schema import REPAIRED_PRICES
from ..thresholds import REVERIFY_SESSIONS

KINDS = ("big_move", "ohlc")  # check's suspicious kinds about one (symbol, date): a second answer may settle them
SAME_PRICE = 1e-9  # relative: an answer within this of the suspected one is the same answer


@dataclasses.dataclass
class Tracked:
    open: list[Suspicion]
    opened: list[Suspicion]
    changed: list[Suspicion]  # closed: Yahoo's answer changed (the newest fetch, stored, is its correction)
    confirmed: list[Suspicion]  # closed: the same answer for REVERIFY_SESSIONS sessions
    previous: list[Suspicion] = dataclasses.field(default_factory=list)  # those open before

    @property
    def changes_record(self) -> bool:
        """Whether suspicions/open.json must be written (a store with nothing ever suspicious gets no file)."""
        return self.open != self.previous

    def summary(self) -> dict:
        def names(items: list[Suspicion]) -> list[str]:
            return [f"{one.symbol} {one.date.isoformat()}" for one in items]

        return {"open": len(self.open), "opened": names(self.opened), "changed": names(self.changed),
                "confirmed": names(self.confirmed)}


def track(previous: list[Suspicion], found: list[dict], answers: dict[tuple[str, dt.date], dict], day: dt.date,
          window_first: dt.date) -> Tracked:
    """Pure: the suspicions after run day `day`. previous: those open before it; found: check's suspicious
    items of the session checked ({"symbol", "date", "kind"}); answers: (symbol, date) -> the newest stored row
    as Yahoo reported it; window_first: the first day of this run's lookback window."""
    kept, changed, confirmed = [], [], []
    for one in previous:
        answer = answers.get((one.symbol, one.date))
        if answer is not None and not _same(answer, one.reported):
            changed.append(one)
            continue
        if one.last_run is None or day > one.last_run:
            one = dataclasses.replace(one, sessions=one.sessions + 1, last_run=day)
        if one.sessions >= REVERIFY_SESSIONS and one.date < window_first:
            confirmed.append(one)
        else:
            kept.append(one)
    held = {(one.symbol, one.date) for one in kept}
    opened = []
    for item in found:
        key = (item["symbol"], dt.date.fromisoformat(item["date"]))
        answer = answers.get(key)
        if key in held or answer is None:
            continue
        held.add(key)
        opened.append(Suspicion(key[0], key[1], item["kind"], day, {f: answer[f] for f in REPAIRED_PRICES},
                                answer["fetch_timestamp"], 0, day))
    return Tracked(kept + opened, opened, changed, confirmed, list(previous))


def _same(answer: dict, reported: dict[str, float]) -> bool:
    for name, value in reported.items():
        now = answer.get(name)
        if now is None or abs(now - value) > SAME_PRICE * max(abs(now), abs(value)):
            return False
    return True


def suspicious_items(document: dict) -> list[dict]:
    """check's suspicious items about one (symbol, date) that a second answer may settle."""
    return [{"symbol": item["symbol"], "date": item["date"], "kind": kind}
            for kind in KINDS for item in document.get("suspicious", {}).get(kind, [])]


def reverify(store, day: dt.date, document: dict | None, lookback_days: int,
             note: Callable[[str], None]) -> Tracked:
    """Read what track needs from the store (the open suspicions, the answers as reported) and track."""
    from ..dataset.aggregate import DataAggregator
    from ..dataset.suspicions import read_open

    try:
        previous = read_open(store)
    except CorruptFileError as error:
        note(f"{error}; starting the open suspicions afresh")
        previous = []
    found = suspicious_items(document) if document else []
    keys = {(one.symbol, one.date) for one in previous} | {(i["symbol"], dt.date.fromisoformat(i["date"])) for i in found}
    answers = {}
    if keys:
        rows = DataAggregator(store).load(sorted({s for s, _ in keys}), start=min(d for _, d in keys),
                                          end=max(d for _, d in keys), as_reported=True)
        answers = {(row["symbol"], row["date"]): row for row in rows.iter_rows(named=True)
                   if (row["symbol"], row["date"]) in keys}
    window_first = day - dt.timedelta(days=max(lookback_days, 1) - 1)
    return track(previous, found, answers, day, window_first)


def quality_step(store, day: dt.date, run_started, *, lookback_days: int, note: Callable[[str], None],
                 commit: Callable[[dt.date, list[Suspicion]], None],
                 symbols: list[str] | None = None) -> tuple[dict, dict | None]:
    """A run's data-quality step followed by re-verification's bookkeeping: (check.run_quality's "quality"
    block, run.json's "reverify" block: Tracked.summary, or {"error"}; None when the check could not run).
    The open suspicions are written through `commit` (the run's writer). A failure of the bookkeeping is a
    note, never the run's failure."""
    from .check import run_quality

    checked: dict = {}
    summary = run_quality(store, day, run_started, lookback_days=lookback_days, note=note, symbols=symbols,
                          checked=lambda session, document: checked.update(document=document))
    if summary.get("complete") is None and "error" in summary:
        return summary, None  # the check could not run: the suspicions stay as they are
    try:
        tracked = reverify(store, day, checked.get("document"), lookback_days, note)
        if tracked.changes_record:
            commit(day, tracked.open)
    except StockstreamError as error:
        note(f"re-verification's record could not be updated: {error}")
        return summary, {"error": str(error)}
    return summary, tracked.summary()
