"""Parsing and checking the values users type: dates and ASX symbols. Pure functions."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from .errors import InputError

SYDNEY = "Australia/Sydney"
SYMBOL_RE = re.compile(r"^[A-Z0-9]{3,6}$")


def today_sydney() -> dt.date:
    from zoneinfo import ZoneInfo

    return dt.datetime.now(ZoneInfo(SYDNEY)).date()


def check_range(start: dt.date | None, end: dt.date | None, *, names: tuple[str, str] = ("--start", "--end")) -> None:
    """The one check of a date range: InputError when `start` is after `end` (None is an open end)."""
    if start is not None and end is not None and start > end:
        raise InputError(f"{names[0]} {start} is after {names[1]} {end}: give the earlier date first")


def check_batch_number(batch_number: int) -> None:
    if batch_number < 0:
        raise InputError(f"--batch-number must be 0 or more, got {batch_number}")


def parse_date(text: str | dt.date | None, *, option: str = "--date") -> dt.date:
    """A YYYY-MM-DD date; None means today in Sydney."""
    if text is None:
        return today_sydney()
    if isinstance(text, dt.datetime):
        return text.date()
    if isinstance(text, dt.date):
        return text
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
        raise InputError(f"{option} {text!r} is not a date: use YYYY-MM-DD, e.g. 2026-11-25")
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{option} {text!r} is not a real date: use YYYY-MM-DD, e.g. 2026-11-25") from None


def check_symbol(code: str) -> str:
    if SYMBOL_RE.match(code):
        return code
    hint = "ASX codes are 3-6 upper-case letters or digits, e.g. BHP, 14D, NWSLV"
    if code.upper().endswith(".AX"):
        hint = f"give the ASX code without the .AX suffix, e.g. {code[:-3].upper()}"
    elif SYMBOL_RE.match(code.upper()):
        hint = f"ASX codes are upper case: {code.upper()}"
    raise InputError(f"invalid symbol {code!r}: {hint}")


def parse_symbols(values: Iterable[str] | None) -> list[str] | None:
    """`--symbols BHP CBA`, `--symbols BHP --symbols CBA` and `--symbols BHP,CBA` alike.

    Returns the codes sorted in plain ASCII order without duplicates, or None when none were given.
    """
    if not values:
        return None
    codes = {check_symbol(part.strip()) for value in values for part in value.split(",") if part.strip()}
    if not codes:
        raise InputError("--symbols was given no symbols: name at least one, e.g. --symbols BHP CBA")
    return sorted(codes)


def yahoo_ticker(code: str) -> str:
    return f"{code}.AX"
