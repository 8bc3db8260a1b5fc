"""The stored ASX list, symbols/D-symbols.csv: its rows, their batches, reading and writing it.

Batch N holds symbols [N*size, (N+1)*size) of the ASCII-sorted list, and the batch_number column records it,
so every later step reads batch membership from the file and never needs the batch size again.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from .. import hints
from ..errors import CorruptFileError, InputError, KeyNotFound, named
from ..values import SYMBOL_RE, check_batch_number, check_symbol
from . import layout

CSV_COLUMNS = ("symbol", "company_name", "industry_group", "listing_date", "market_cap", "batch_number")


class Company(Protocol):
    """What a listed company brings to the list (sources.asx.Company has it)."""

    symbol: str
    company_name: str
    industry_group: str
    listing_date: dt.date | None
    market_cap: int | None


@dataclasses.dataclass(frozen=True)
class Listing:
    """One row of symbols/D-symbols.csv."""

    symbol: str
    company_name: str
    industry_group: str
    listing_date: dt.date | None
    market_cap: int | None
    batch_number: int




def assign_batches(companies: Iterable[Company], batch_size: int) -> list[Listing]:
    """Batch N holds symbols [N*size, (N+1)*size) of the ASCII-sorted list."""
    if batch_size < 1:
        raise InputError(f"must be at least 1, got {batch_size}", parameter="batch_size")
    ordered = sorted(companies, key=lambda c: c.symbol)
    return [Listing(c.symbol, c.company_name, c.industry_group, c.listing_date, c.market_cap, i // batch_size) for i, c in enumerate(ordered)]


def batch_numbers(listings: Iterable[Listing]) -> list[int]:
    return sorted({listing.batch_number for listing in listings})


def batch_symbols(listings: list[Listing], batch_number: int) -> list[str]:
    """The symbols of one batch, sorted; InputError naming the valid range when there is no such batch."""
    symbols = sorted(listing.symbol for listing in listings if listing.batch_number == batch_number)
    if not symbols:
        numbers = batch_numbers(listings)
        valid = f"0 to {numbers[-1]}" if numbers else "none (the list is empty)"
        raise InputError(f"batch {batch_number} is out of range: valid batch numbers are {valid}")
    return symbols


def symbol_batches(listings: Sequence[Listing]) -> list[dict[str, Any]]:
    """The state machine's shape: [{"symbols": [...], "batchNumber": N}, ...]."""
    groups: dict[int, list[str]] = {}
    for listing in sorted(listings, key=lambda item: item.symbol):
        groups.setdefault(listing.batch_number, []).append(listing.symbol)
    return [{"symbols": groups[number], "batchNumber": number} for number in sorted(groups)]


# ---------------------------------------------------------------------------------------------- the stored CSV


def to_csv(listings: Iterable[Listing]) -> bytes:
    """symbols/D-symbols.csv: the contract's columns, ISO dates, integer or empty market cap, sorted by symbol."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for item in sorted(listings, key=lambda listing: listing.symbol):
        writer.writerow([
            item.symbol,
            item.company_name,
            item.industry_group,
            item.listing_date.isoformat() if item.listing_date else "",
            "" if item.market_cap is None else item.market_cap,
            item.batch_number,
        ])
    return out.getvalue().encode("utf-8")


def from_csv(data: bytes, key: str) -> list[Listing]:
    """Read symbols/D-symbols.csv back; CorruptFileError (naming the key) when it is not what we write."""
    try:
        reader = csv.reader(io.StringIO(data.decode("utf-8")))
        header = next(reader, None)
        if header is None or tuple(header) != CSV_COLUMNS:
            raise ValueError(f"header is {header!r}, expected {','.join(CSV_COLUMNS)}")
        listings = [_listing_from_row(row, line) for line, row in enumerate(reader, start=2) if row]
    except (UnicodeDecodeError, csv.Error, ValueError) as exc:
        raise CorruptFileError(key, str(exc)) from None
    if not listings:
        raise CorruptFileError(key, "no rows")
    return listings


def _listing_from_row(row: list[str], line: int) -> Listing:
    if len(row) != len(CSV_COLUMNS):
        raise ValueError(f"line {line} has {len(row)} fields, expected {len(CSV_COLUMNS)}")
    symbol, name, industry, listed, cap, batch = row
    if not SYMBOL_RE.match(symbol):
        raise ValueError(f"line {line}: {symbol!r} is not an ASX code")
    try:
        return Listing(
            symbol=symbol,
            company_name=name,
            industry_group=industry,
            listing_date=dt.date.fromisoformat(listed) if listed else None,
            market_cap=int(cap) if cap else None,
            batch_number=int(batch),
        )
    except ValueError as exc:
        raise ValueError(f"line {line}: {exc}") from None


def read_symbols(store, day: dt.date) -> list[Listing]:
    """The stored list of day D; InputError when there is none, CorruptFileError when it is unreadable."""
    key = layout.symbols_key(day)
    try:
        data = store.get(key)
    except KeyNotFound:
        raise InputError(
            f"no ASX list for {day.isoformat()} in {store.uri}: run `{hints.command('symbols', '--date', day.isoformat())}` first"
        ) from None
    return from_csv(data, key)


def previous_list_key(store, day: dt.date) -> str | None:
    """The key of the latest list strictly before D, or None."""
    earlier = [(d, key) for key in store.list(layout.SYMBOLS_PREFIX) if (d := layout.parse_symbols_key(key)) and d < day]
    return max(earlier)[1] if earlier else None


def previous_symbols(store, day: dt.date) -> tuple[str | None, list[str] | None]:
    """The latest list strictly before D: its key and its symbols; (None, None) when there is none."""
    key = previous_list_key(store, day)
    return (key, [item.symbol for item in from_csv(store.get(key), key)]) if key else (None, None)


def write_symbols(store, day: dt.date, listings: Iterable[Listing]) -> str:
    """Store day D's list (one atomic put); its key."""
    key = layout.symbols_key(day)
    store.put(key, to_csv(listings))
    return key


def day_batches(store, day: dt.date) -> dict[int, tuple[str, ...]]:
    """{batch_number: its symbols}: every batch of symbols/D-symbols.csv."""
    listings = read_symbols(store, day)
    return {n: tuple(batch_symbols(listings, n)) for n in batch_numbers(listings)}


def batch_codes(store, day: dt.date, batch_number: int, symbols: Iterable[str] | None = None) -> list[str]:
    """The symbols to fetch: those given (checked, sorted, unique), else batch N of symbols/D-symbols.csv."""
    check_batch_number(batch_number)
    if symbols is not None:
        codes = sorted({check_symbol(code) for code in symbols})
        if not codes:
            raise InputError(f"no symbols were given: name at least one, e.g. {named('symbols')} BHP CBA")
        return codes
    return batch_symbols(read_symbols(store, day), batch_number)


def batches_of(store, day: dt.date, symbols: Iterable[str], batch_number: int | None) -> dict[int, list[str]]:
    """{batch number: its symbols} that `fetch-batch --symbols` fetches, checked against the day's list before
    any request: with a batch number, every symbol must be in that batch (InputError naming the right one);
    without, each symbol is filed under its own batch. A day with no list: only with a batch number, as given."""
    codes = batch_codes(store, day, 0 if batch_number is None else batch_number, symbols)
    try:
        listings = read_symbols(store, day)
    except InputError:
        if batch_number is None:
            raise InputError(f"no ASX list for {day.isoformat()} in {store.uri} to find the symbols' batches in: "
                             f"give {named('batch_number')}, or run `{hints.command('symbols', '--date', day.isoformat())}` "
                             "first") from None
        return {batch_number: codes}
    home = {listing.symbol: listing.batch_number for listing in listings}
    unlisted = [code for code in codes if code not in home]
    if unlisted:
        raise InputError(f"not in the ASX list of {day.isoformat()}: {' '.join(unlisted)}")
    if batch_number is not None:
        elsewhere = {code: home[code] for code in codes if home[code] != batch_number}
        if elsewhere:
            where = ", ".join(f"{code} is in batch {number}" for code, number in elsewhere.items())
            raise InputError(f"not in batch {batch_number} of {day.isoformat()}: {where}; give that "
                             f"{named('batch_number')}, or leave {named('batch_number')} out to file each symbol "
                             "under its own batch")
        return {batch_number: codes}
    grouped: dict[int, list[str]] = {}
    for code in codes:
        grouped.setdefault(home[code], []).append(code)
    return dict(sorted(grouped.items()))
