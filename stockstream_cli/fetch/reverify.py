"""Re-verification: a (symbol, date) the quality step found suspicious is fetched again by later runs.

No extra request: the symbol's one daily chart request starts early enough to cover every open suspicion of
it and the session before the earliest (so unit_errors.py can judge the day between its two neighbours). Pure:
the open suspicions are read from the store by the caller (run/batch.py, dataset/suspicions.py) and closed by
the quality step (quality/reverify.py) once Yahoo's answer changed or stood for REVERIFY_SESSIONS sessions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from .. import calendar


def widened_starts(open_dates: dict[str, list[dt.date]], codes: Iterable[str],
                   window_first: dt.date) -> dict[str, dt.date]:
    """{symbol: the first day its request must ask for} for the `codes` whose open suspicions (the session
    before the earliest of them included) reach before the window; the others keep the window."""
    starts = {}
    for code in codes:
        dates = open_dates.get(code)
        if not dates:
            continue
        first = calendar.previous_session(min(dates))
        if first < window_first:
            starts[code] = first
    return starts
