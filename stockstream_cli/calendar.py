"""The ASX trading calendar: which days are sessions, from exchange_calendars' XASX (not a hand-kept list).

Every function takes and returns `datetime.date` (a trading day in Sydney). The underlying calendar is built
once for a span of years and rebuilt wider only when asked about a day outside it.
"""

from __future__ import annotations

import datetime as dt
import functools

SYDNEY = "Australia/Sydney"  # the ASX's time zone: every date stockstream speaks of is a Sydney date

CALENDAR_NAME = "XASX"
_FIRST_YEAR = 2000


def sessions(start: dt.date, end: dt.date) -> list[dt.date]:
    """The ASX sessions from start to end, both included, oldest first (empty when start > end)."""
    if start > end:
        return []
    calendar = _calendar_covering(start, end)
    return [stamp.date() for stamp in calendar.sessions_in_range(start.isoformat(), end.isoformat())]


def is_session(day: dt.date) -> bool:
    return _calendar_covering(day, day).is_session(day.isoformat())


def previous_session(day: dt.date) -> dt.date:
    """The last session strictly before `day` (whether or not `day` is a session)."""
    return session_on_or_before(day - dt.timedelta(days=1))


def session_on_or_before(day: dt.date) -> dt.date:
    """`day` when it is a session, else the latest session before it."""
    calendar = _calendar_covering(day - dt.timedelta(days=31), day)
    return calendar.date_to_session(day.isoformat(), direction="previous").date()


def next_session(day: dt.date) -> dt.date:
    """The first session strictly after `day`."""
    return session_on_or_after(day + dt.timedelta(days=1))


def session_on_or_after(day: dt.date) -> dt.date:
    calendar = _calendar_covering(day, day + dt.timedelta(days=31))
    return calendar.date_to_session(day.isoformat(), direction="next").date()


def sessions_before(day: dt.date, count: int) -> list[dt.date]:
    """The `count` sessions strictly before `day`, oldest first."""
    if count <= 0:
        return []
    span = dt.timedelta(days=count * 2 + 31)
    return sessions(day - span, day - dt.timedelta(days=1))[-count:]


def _calendar_covering(start: dt.date, end: dt.date):
    first_year = min(_FIRST_YEAR, start.year)
    last_year = max(dt.date.today().year + 2, end.year)
    return _calendar(first_year, last_year)


@functools.lru_cache(maxsize=4)
def _calendar(first_year: int, last_year: int):
    import warnings

    import exchange_calendars

    with warnings.catch_warnings():
        # exchange_calendars 4.x on pandas 3 warns about its own use of Series.values while building.
        warnings.simplefilter("ignore")
        return exchange_calendars.get_calendar(
            CALENDAR_NAME, start=f"{first_year}-01-01", end=f"{last_year}-12-31"
        )


# The one rule for when a session's daily bar is final: its close (early closes included) plus FINAL_AFTER_CLOSE.
# The ASX closing auction runs to about 16:12 and Yahoo's bar follows it, so a regular session (16:00 close) is
# final from 16:30 Sydney time. A fetch stores a session's bar only from then on (last_final_day), and check
# expects it from then on (session_to_check): what is stored is exactly what is expected.
FINAL_AFTER_CLOSE = dt.timedelta(minutes=30)


def bar_final_at(session: dt.date) -> dt.datetime:
    """When `session`'s daily bar is final: its XASX close (early closes included) plus FINAL_AFTER_CLOSE, UTC."""
    close = _calendar_covering(session, session).session_close(session.isoformat())
    return close.to_pydatetime().astimezone(dt.timezone.utc) + FINAL_AFTER_CLOSE


def last_final_day(last: dt.date, now: dt.datetime) -> dt.date:
    """The last day through which a fetch at `now` (aware) can store bars, for a window ending at `last`: the
    day before `last` when `last` is today's session in Sydney and it is not final yet, else `last`."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    from zoneinfo import ZoneInfo

    today = now.astimezone(ZoneInfo(SYDNEY)).date()
    if last >= today and is_session(today) and now < bar_final_at(today):
        return today - dt.timedelta(days=1)
    return last


def session_to_check(day: dt.date, run_started: dt.datetime, lookback_days: int) -> dt.date | None:
    """The session a run for `day` that started at `run_started` can be expected to have complete.

    The most recent ASX session whose bar was final when the run started, if the run's fetch window (the
    `lookback_days` calendar days ending at `day`) holds it; else None (nothing to check). The 06:00
    Sydney scheduled run of D thus checks the previous session, a run after D's close checks D itself.
    """
    if run_started.tzinfo is None:
        raise ValueError("run_started must be timezone-aware")
    window_start = day - dt.timedelta(days=max(lookback_days, 1) - 1)
    for session in reversed(sessions(window_start, day)):
        if bar_final_at(session) <= run_started:
            return session
    return None
