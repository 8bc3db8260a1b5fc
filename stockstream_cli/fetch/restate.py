"""History that stays right through splits and dividends: refetch a symbol's stored range when its window
shows an action the store does not know yet.

Yahoo restates history: from a split's ex-date on it reports every earlier open/high/low/close/volume in the
new units, and each dividend lowers every earlier adjusted close. So when the daily fetch of a symbol sees a
dividend or split that actions/SYMBOL.parquet does not hold (or holds with another value: a later split
restates earlier dividends), the symbol's whole stored range — its first stored date to the day — is fetched
again in one chart request through the same paced session, and those rows (and the actions of the whole
range) replace the window's. They go into the batch's one write with a newer fetch_timestamp than anything
stored, so the one newest-fetch-wins rule (read/newest.py) restates every earlier row.

Never half-applied: a refetch that fails turns the symbol into a failure (reasons.RESTATE_FAILED, retried by
rerun-failed and the Map) with neither its window rows nor its new actions stored, so the next fetch still
sees the action as new. The batch writes its data file before the actions files and both before its
manifest: a crash between them leaves at worst restated rows with the action unrecorded, which the rerun
refetches again (the same answer), never a recorded action over rows in the old units.

The first stored date comes from the rows themselves (read.aggregate.earliest_rows: the footer index prunes
the scan to about one file per stored day, for the few symbols with a new action only). No typer or rich here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

from ..reasons import RESTATE_FAILED

SymbolResult = Any  # fetch.batch.SymbolResult (which imports this module: not imported back)

Refetch = Callable[[str, dt.date, dt.date], SymbolResult]
FirstDates = Callable[[list[str]], dict[str, dt.date]]


@dataclasses.dataclass
class Restatement:
    results: list[SymbolResult]  # the batch's results, refetched symbols replaced
    refetched: list[str]  # symbols fetched again over their stored range
    failed: list[str]  # symbols whose refetch failed (recorded as RESTATE_FAILED)
    requests: int  # requests the refetches sent


def restate(store, results: list[SymbolResult], window_first: dt.date, day: dt.date, *, refetch: Refetch,
            first_dates: FirstDates | None = None) -> Restatement:
    """Refetch every symbol of `results` whose window shows an action the store does not know, over its
    stored range (first stored date .. `day`), when that range reaches before the window."""
    from ..dataset import actions as stored_actions

    known = {r.symbol: stored_actions.read_symbol_actions(store, r.symbol) for r in results if _has_actions(r)}
    news = [r.symbol for r in results if r.symbol in known
            and not stored_actions.unknown_actions(r.actions, known[r.symbol]).is_empty()]
    firsts = (first_dates or (lambda codes: _earliest_rows(store, codes)))(news) if news else {}
    out, refetched, failed, requests = [], [], [], 0
    for result in results:
        first = firsts.get(result.symbol)
        if result.symbol not in news or first is None or first >= window_first:
            out.append(result)  # no action news, or nothing stored before the window: the window is the history
            continue
        again = refetch(result.symbol, first, day)
        requests += again.attempts
        refetched.append(result.symbol)
        if again.failure is not None:
            failed.append(result.symbol)
            again = dataclasses.replace(
                again, rows=None, actions=None, failure=RESTATE_FAILED, attempts=result.attempts + again.attempts,
                detail=f"new action seen, refetch of {first}..{day} failed ({again.failure}: {again.detail}); "
                       "nothing of the symbol stored")
        else:
            again = dataclasses.replace(again, attempts=result.attempts + again.attempts,
                                        dropped=result.dropped, restated_from=first)
        out.append(again)
    return Restatement(out, refetched, failed, requests)


def write_actions(store, results: list[SymbolResult]) -> list[str]:
    """Store the actions of every symbol fetched (merged, only where something is new); the symbols written."""
    from ..dataset.actions import store_actions

    return [r.symbol for r in results if _has_actions(r) and store_actions(store, r.symbol, r.actions)]


def _has_actions(result: SymbolResult) -> bool:
    return result.failure is None and result.actions is not None and not result.actions.is_empty()


def _earliest_rows(store, codes: list[str]) -> dict[str, dt.date]:
    from ..dataset.aggregate import earliest_rows

    return earliest_rows(store, codes)
