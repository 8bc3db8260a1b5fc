"""History that stays right through splits and dividends: refetch a symbol's stored range when its window
shows an action the store does not know yet.

Yahoo restates history: from a split's ex-date on it reports every earlier open/high/low/close/volume in the
new units, and each dividend lowers every earlier adjusted close. So when the daily fetch of a symbol sees a
dividend or split that actions/SYMBOL.parquet does not hold (or holds with another value: a later split
restates earlier dividends), the symbol's whole stored range — its first stored date to the day — is fetched
again in one chart request through the same paced session, and those rows (and the actions of the whole
range) replace the window's. They go into the batch's one commit with a newer fetch_timestamp than anything
stored, so the one newest-fetch-wins rule (dataset/newest.py) restates every earlier row.

Never half-applied: a refetch that fails turns the symbol into a failure (reasons.RESTATE_FAILED, retried by
rerun-failed and the Map) with neither its window rows nor its new actions stored, so the next fetch still
sees the action as new. The batch writes its data file before the actions files and both before its
manifest: a crash between them leaves at worst restated rows with the action unrecorded, which the rerun
refetches again (the same answer), never a recorded action over rows in the old units.

Pure: which symbols show news (dataset.actions.symbols_with_news) and where their stored rows begin
(dataset.aggregate.earliest_rows) are read from the store by the caller (run/batch.py), and the commit
(dataset/commit.py) stores rows before actions. No typer or rich here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from ..reasons import RESTATE_FAILED
from .batch import SymbolResult

Refetch = Callable[[str, dt.date, dt.date], SymbolResult]


@dataclasses.dataclass
class Restatement:
    results: list[SymbolResult]  # the batch's results, refetched symbols replaced
    refetched: list[str]  # symbols fetched again over their stored range
    failed: list[str]  # symbols whose refetch failed (recorded as RESTATE_FAILED)
    requests: int  # requests the refetches sent


def restate(results: list[SymbolResult], window_first: dt.date, day: dt.date, *, news: set[str],
            first_dates: dict[str, dt.date], refetch: Refetch) -> Restatement:
    """Refetch every symbol of `news` (its window shows an action the store does not know) over its stored
    range, first_dates[symbol] .. `day`, when that range reaches before the window."""
    out, refetched, failed, requests = [], [], [], 0
    for result in results:
        first = first_dates.get(result.symbol)
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


def with_actions(results: list[SymbolResult]) -> dict:
    """{symbol: the actions its answer carried} of every symbol fetched whose window shows any."""
    return {r.symbol: r.actions for r in results
            if r.failure is None and r.actions is not None and not r.actions.is_empty()}
