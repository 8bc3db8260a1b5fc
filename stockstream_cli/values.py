"""Parsing and checking the values users type: dates and ASX symbols. Pure functions."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from .errors import InputError, named

from .calendar import SYDNEY
SYMBOL_RE = re.compile(r"^[A-Z0-9]{3,6}$")


def today_sydney() -> dt.date:
    from zoneinfo import ZoneInfo

    return dt.datetime.now(ZoneInfo(SYDNEY)).date()


def check_range(start: dt.date | None, end: dt.date | None) -> None:
    """The one check of a date range: InputError when `start` is after `end` (None is an open end)."""
    if start is not None and end is not None and start > end:
        raise InputError(f"{start} is after {named('end')} {end}: give the earlier date first", parameter="start")


def check_pipeline_day(day: dt.date, *, parameter: str = "date", today: dt.date | None = None) -> str | None:
    """The one check of a day a pipeline command fetches or writes: InputError when it is after today in
    Sydney (nothing can be fetched for it); a one-line warning (returned, not raised) when it is not an ASX
    session, whose fetch window then ends at the previous session; None for an ASX session."""
    from . import calendar

    today = today or today_sydney()
    if day > today:
        raise InputError(f"{day.isoformat()} is after today ({today.isoformat()} in Sydney): "
                         "there is no data for it yet", parameter=parameter)
    if calendar.is_session(day):
        return None
    previous = calendar.previous_session(day)
    return (f"{day.isoformat()} ({day:%A}) is not an ASX session: its window's latest session is "
            f"{previous.isoformat()} ({previous:%A})")


def check_batch_number(batch_number: int) -> None:
    if batch_number < 0:
        raise InputError(f"must be 0 or more, got {batch_number}", parameter="batch_number")


def parse_date(text: str | dt.date | None, *, parameter: str = "date") -> dt.date:
    """A YYYY-MM-DD date; None means today in Sydney."""
    if text is None:
        return today_sydney()
    if isinstance(text, dt.datetime):
        return text.date()
    if isinstance(text, dt.date):
        return text
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
        raise InputError(f"{text!r} is not a date: use YYYY-MM-DD, e.g. 2026-11-25", parameter=parameter)
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{text!r} is not a real date: use YYYY-MM-DD, e.g. 2026-11-25", parameter=parameter) from None


def check_symbol(code: str) -> str:
    """The ASX code `code` names, upper-cased (ASX codes are unambiguous in any case: `bhp` is BHP)."""
    if SYMBOL_RE.match(code.upper()):
        return code.upper()
    hint = "ASX codes are 3-6 letters or digits, e.g. BHP, 14D, NWSLV"
    if code.upper().endswith(".AX"):
        hint = f"give the ASX code without the .AX suffix, e.g. {code[:-3].upper()}"
    raise InputError(f"invalid symbol {code!r}: {hint}")


def parse_symbols(values: Iterable[str] | None) -> list[str] | None:
    """`--symbols BHP CBA`, `--symbols BHP --symbols CBA` and `--symbols BHP,CBA` alike.

    Returns the codes sorted in plain ASCII order without duplicates, or None when none were given.
    """
    if not values:
        return None
    codes = {check_symbol(part.strip()) for value in values for part in value.split(",") if part.strip()}
    if not codes:
        raise InputError("was given no symbols: name at least one, e.g. BHP CBA", parameter="symbols")
    return sorted(codes)


def parse_batch_numbers(values: Iterable[str] | None) -> list[int] | None:
    """Batch numbers as given ("0 3", repeated, or "0,3") alike: the numbers sorted without
    duplicates, or None when none were given."""
    if not values:
        return None
    numbers = set()
    for part in (part.strip() for value in values for part in str(value).split(",")):
        if not part:
            continue
        if not part.isdigit():
            raise InputError(f"takes batch numbers (0, 1, ...), got {part!r}", parameter="batches")
        numbers.add(int(part))
    if not numbers:
        raise InputError("was given no batch numbers: name at least one, e.g. 0 3", parameter="batches")
    return sorted(numbers)


def yahoo_ticker(code: str) -> str:
    return f"{code}.AX"
