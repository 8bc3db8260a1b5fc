"""The ASX calendar: holidays checked by hand against the ASX's published 2025 and 2026 trading calendars."""

from __future__ import annotations

import datetime as dt

import pytest

from stockstream_cli import calendar

D = dt.date


def weekdays(start: dt.date, end: dt.date) -> list[dt.date]:
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    return [day for day in days if day.weekday() < 5]


def test_easter_and_anzac_day_2025_are_not_sessions():
    # Good Friday 18 Apr, Easter Monday 21 Apr, Anzac Day Friday 25 Apr 2025.
    got = calendar.sessions(D(2025, 4, 14), D(2025, 4, 30))
    holidays = {D(2025, 4, 18), D(2025, 4, 21), D(2025, 4, 25)}
    assert got == [day for day in weekdays(D(2025, 4, 14), D(2025, 4, 30)) if day not in holidays]
    assert len(got) == 10


def test_easter_2026_and_anzac_day_on_a_saturday_gives_no_monday_off():
    # Good Friday 3 Apr, Easter Monday 6 Apr 2026; Anzac Day is Saturday 25 Apr and the ASX trades Monday 27 Apr.
    got = calendar.sessions(D(2026, 3, 30), D(2026, 4, 30))
    assert D(2026, 4, 3) not in got and D(2026, 4, 6) not in got
    assert D(2026, 4, 27) in got
    assert len(got) == len(weekdays(D(2026, 3, 30), D(2026, 4, 30))) - 2 == 22


def test_christmas_and_boxing_day():
    # 2025: Thu 25 and Fri 26 Dec closed. 2026: Boxing Day is a Saturday, so Monday 28 Dec is closed.
    assert calendar.sessions(D(2025, 12, 22), D(2026, 1, 2)) == [
        D(2025, 12, 22), D(2025, 12, 23), D(2025, 12, 24), D(2025, 12, 29), D(2025, 12, 30), D(2025, 12, 31),
        D(2026, 1, 2),
    ]
    assert calendar.sessions(D(2026, 12, 21), D(2026, 12, 31)) == [
        D(2026, 12, 21), D(2026, 12, 22), D(2026, 12, 23), D(2026, 12, 24), D(2026, 12, 29), D(2026, 12, 30),
        D(2026, 12, 31),
    ]


def test_a_whole_year_counts_every_holiday_once():
    # 2025 closures on weekdays: 1 Jan, 27 Jan, 18 Apr, 21 Apr, 25 Apr, 9 Jun, 25 Dec, 26 Dec.
    assert len(calendar.sessions(D(2025, 1, 1), D(2025, 12, 31))) == 261 - 8 == 253
    # 2026: 1 Jan, 26 Jan, 3 Apr, 6 Apr, 8 Jun, 25 Dec, 28 Dec.
    assert len(calendar.sessions(D(2026, 1, 1), D(2026, 12, 31))) == 261 - 7 == 254


@pytest.mark.parametrize(
    "day, expected",
    [
        (D(2026, 4, 7), D(2026, 4, 2)),  # Tuesday after Easter Monday: back over the long weekend
        (D(2026, 4, 6), D(2026, 4, 2)),  # Easter Monday itself is not a session
        (D(2025, 12, 29), D(2025, 12, 24)),
        (D(2026, 11, 30), D(2026, 11, 27)),  # a Monday: the Friday before
    ],
)
def test_previous_session(day, expected):
    assert calendar.previous_session(day) == expected


def test_is_session_and_neighbours():
    assert calendar.is_session(D(2026, 11, 25))
    assert not calendar.is_session(D(2026, 11, 28))  # Saturday
    assert not calendar.is_session(D(2025, 4, 25))  # Anzac Day
    assert calendar.session_on_or_before(D(2025, 4, 27)) == D(2025, 4, 24)
    assert calendar.session_on_or_after(D(2025, 4, 25)) == D(2025, 4, 28)
    assert calendar.next_session(D(2025, 12, 24)) == D(2025, 12, 29)


def test_sessions_before_counts_back_over_holidays():
    assert calendar.sessions_before(D(2025, 4, 22), 3) == [D(2025, 4, 15), D(2025, 4, 16), D(2025, 4, 17)]


def test_empty_and_single_day_ranges():
    assert calendar.sessions(D(2026, 1, 5), D(2026, 1, 1)) == []
    assert calendar.sessions(D(2026, 1, 1), D(2026, 1, 1)) == []
    assert calendar.sessions(D(2026, 1, 2), D(2026, 1, 2)) == [D(2026, 1, 2)]


def test_far_past_and_future_years_work():
    assert calendar.sessions(D(1998, 12, 24), D(1998, 12, 31)) == [
        D(1998, 12, 24), D(1998, 12, 29), D(1998, 12, 30), D(1998, 12, 31)
    ]
    assert calendar.is_session(D(2030, 4, 23))


@pytest.mark.parametrize("clock", ["15:59", "16:10", "16:20", "16:29", "16:30", "16:45", "23:00"])
def test_a_fetch_stores_a_session_exactly_when_check_expects_it(clock):
    """One rule for when a bar is final: a run at any moment stores the day's bar iff its check expects it."""
    from zoneinfo import ZoneInfo

    day = dt.date(2026, 11, 24)  # a Tuesday session closing at 16:00
    moment = dt.datetime.combine(day, dt.time.fromisoformat(clock), tzinfo=ZoneInfo("Australia/Sydney"))
    stored = calendar.last_final_day(day, moment) == day
    expected = calendar.session_to_check(day, moment, lookback_days=5) == day
    assert stored == expected == (clock >= "16:30")


def test_an_early_close_is_final_thirty_minutes_after_it():
    final = calendar.bar_final_at(dt.date(2025, 12, 24))  # closes 14:10 Sydney (AEDT, UTC+11)
    assert final == dt.datetime(2025, 12, 24, 3, 40, tzinfo=dt.timezone.utc)
