"""The ASX list: download, parse (both formats), validate, guard against a short list, diff.

Pure functions do the parsing, checking and diffing; the edges (HTTP, the file system) are passed in, so tests swap an edge rather than patch the middle. No typer or rich here: the Lambda
symbol updater imports this module.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..backoff import wait_before
from ..errors import InputError, SourceError, SourceUnreachable, is_dns_failure, named
from ..settings import MARKIT_URL, Settings
from ..thresholds import DEFAULT_SOURCE_FLOOR, MIN_SHARE_OF_PREVIOUS
from ..values import SYMBOL_RE

log = logging.getLogger(__name__)

GUARD_TRIES = 3  # downloads, keeping the largest, before a short list is refused
USER_AGENT = "stockstream (+https://pypi.org/project/stockstream/)"

# Header names, normalised (lower case, single spaces): the Markit file says "GICs", the older one "GICS".
_CODE, _NAME, _INDUSTRY, _LISTED, _MARKET_CAP = "asx code", "company name", "gics industry group", "listing date", "market cap"
_NO_VALUE = {"", "--", "-", "n/a", "na", "suspended"}

Note = Callable[[str], None]
HttpGet = Callable[..., Any]


@dataclasses.dataclass(frozen=True)
class Company:
    """One company of a downloaded list, before it is given a batch."""

    symbol: str
    company_name: str
    industry_group: str = ""
    listing_date: dt.date | None = None
    market_cap: int | None = None


@dataclasses.dataclass(frozen=True)
class ParsedList:
    companies: list[Company]  # sorted by symbol, one per symbol
    skipped: list[str]  # one line per odd row left out, for the log


# ---------------------------------------------------------------------------------------------- parsing


def parse_list(body: bytes | str, *, origin: str = "the ASX source answered with") -> ParsedList:
    """Parse either ASX list format by header name, or raise SourceError saying what came back instead.

    `origin` starts the error message: "the ASX source answered with", "FILE holds".
    """
    text = _decode(body)
    rows = list(csv.reader(io.StringIO(text.strip("\ufeff \t\r\n"))))
    header_at = _find_header(rows)
    if header_at is None:
        raise SourceError(f"{origin} {describe_body(text)}")
    header = [_normalise(name) for name in rows[header_at]]
    data = [row for row in rows[header_at + 1:] if any(cell.strip() for cell in row)]
    if not data:
        raise SourceError(f"{origin} a header and no rows, not a CSV list")
    columns = {name: header.index(name) for name in (_CODE, _NAME, _INDUSTRY, _LISTED, _MARKET_CAP) if name in header}
    companies, skipped = _companies(data, columns, first_line=header_at + 2)
    _refuse_if_mostly_odd(origin, len(data), skipped)
    return ParsedList(companies=sorted(companies, key=lambda c: c.symbol), skipped=skipped)


def describe_body(text: str) -> str:
    """What a body that is not a list is, for an error message: 'an HTML page, not a CSV list: ...'."""
    stripped = text.strip("\ufeff \t\r\n")
    if not stripped:
        return "an empty body, not a CSV list"
    flat = _clip(" ".join(stripped.split()))
    lowered = stripped[:2000].lower()
    if lowered.startswith("<") and ("<html" in lowered or "<!doctype" in lowered or "<body" in lowered):
        title = re.search(r"<title[^>]*>(.*?)</title>", stripped, re.IGNORECASE | re.DOTALL)
        shown = " ".join(title.group(1).split()) if title and title.group(1).strip() else flat
        return f"an HTML page, not a CSV list: {_clip(shown)!r}"
    if stripped[0] in "{[":
        try:
            json.loads(stripped)
        except ValueError:
            pass
        else:
            return f"a JSON document, not a CSV list: {flat}"
    return f"text with no 'ASX code' header, not a CSV list: {flat!r}"


def _decode(body: bytes | str) -> str:
    if isinstance(body, str):
        return body
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError:
        return body.decode("cp1252", errors="replace")


def _normalise(name: str) -> str:
    return " ".join(name.replace("\ufeff", "").strip().lower().split())


def _find_header(rows: list[list[str]]) -> int | None:
    """The row naming both 'ASX code' and 'Company name': first in Markit files, third in the older format."""
    for index, row in enumerate(rows[:10]):
        names = {_normalise(cell) for cell in row}
        if _CODE in names and _NAME in names:
            return index
    return None


def _companies(data: list[list[str]], columns: dict[str, int], first_line: int) -> tuple[list[Company], list[str]]:
    companies: dict[str, Company] = {}
    skipped: list[str] = []

    def cell(row: list[str], name: str) -> str:
        index = columns.get(name)
        return row[index].strip() if index is not None and index < len(row) else ""

    for line, row in enumerate(data, start=first_line):
        code = cell(row, _CODE)
        if not SYMBOL_RE.match(code):
            skipped.append(f"row {line}: {code!r} is not an ASX code (3-6 upper-case letters or digits)")
            continue
        company = Company(
            symbol=code,
            company_name=cell(row, _NAME),
            industry_group=cell(row, _INDUSTRY),
            listing_date=parse_listing_date(cell(row, _LISTED)),
            market_cap=parse_market_cap(cell(row, _MARKET_CAP)),
        )
        if code in companies:
            if companies[code] != company:
                skipped.append(f"row {line}: {code} appears again with different details; the first row is kept")
            continue
        companies[code] = company
    return list(companies.values()), skipped


def _refuse_if_mostly_odd(origin: str, rows: int, skipped: list[str]) -> None:
    """A few odd rows are left out with a note; more than 1% means this is not the list we think it is."""
    if len(skipped) > rows // 100:
        raise SourceError(
            f"{origin} a list with {len(skipped)} odd rows out of {rows}, too many to trust "
            f"(first: {skipped[0]})"
        )


def parse_listing_date(text: str) -> dt.date | None:
    """DD/MM/YYYY as the ASX writes it (ISO also accepted); empty, '--' or unreadable -> None."""
    text = text.strip()
    for fmt in ("%d/%m/%Y", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def parse_market_cap(text: str) -> int | None:
    """An integer number of AUD; '--', empty, 'SUSPENDED' or anything unreadable -> None."""
    text = text.strip().replace(",", "")
    if text.lower() in _NO_VALUE:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return int(round(float(text)))
    except (ValueError, OverflowError):
        return None


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def diff_symbols(previous: Iterable[str], current: Iterable[str]) -> dict[str, list[str]]:
    before, after = set(previous), set(current)
    return {"added": sorted(after - before), "removed": sorted(before - after)}


# ---------------------------------------------------------------------------------------------- download


def download_list(url: str, settings: Settings, *, http_get: HttpGet | None = None, note: Note | None = None,
                  sleep: Callable[[float], None] = time.sleep) -> ParsedList:
    """GET and parse the list. What may pass is retried (settings.retries times, exponential backoff from
    settings.retry_wait): timeouts, connection errors, 429, 5xx, and a body that is not a list (the Markit
    endpoint answers error bodies with status 200 now and then). Other HTTP errors fail at once.
    SourceError after the last try, naming what came back."""
    import requests

    http_get = http_get or requests.get
    note = note or log.warning
    tries = settings.retries + 1
    problem = ""
    for attempt in range(tries):
        if attempt:
            wait = wait_before(attempt, settings.retry_wait)
            note(f"{problem}; try {attempt + 1} of {tries}" + (f" in {wait:g}s" if wait else ""))
            if wait > 0:
                sleep(wait)
        try:
            response = http_get(url, timeout=settings.timeout, headers={"User-Agent": USER_AGENT})
        except requests.Timeout:
            problem = f"the ASX source {url} did not answer within {settings.timeout:g}s"
            continue
        except requests.ConnectionError as exc:
            problem = f"cannot connect to the ASX source {url}: {_root_cause(exc)}"
            if is_dns_failure(exc):  # a name that does not resolve will not in the seconds of a retry
                raise SourceUnreachable(f"the ASX source's host does not resolve (no such host): {url}; "
                                        f"check the URL ({named('source_url')}) and the network") from None
            continue
        except requests.RequestException as exc:
            raise SourceError(f"cannot download the ASX list from {url}: {exc}") from None
        status = response.status_code
        if status >= 400:
            problem = f"the ASX source {url} answered HTTP {status} {response.reason or ''}".rstrip()
            problem += _body_first_line(response.content)
            if status != 429 and status < 500:
                raise SourceError(problem)
            continue
        try:
            return parse_list(response.content, origin=f"the ASX source {url} answered with")
        except SourceError as error:
            problem = str(error)
    raise SourceError(f"{problem} ({tries} tries)" if tries > 1 else problem)


def _body_first_line(content: bytes) -> str:
    line = _decode(content or b"").strip().split("\n", 1)[0].strip()
    return f": {_clip(line, 80)!r}" if line else ""


def _root_cause(exc: BaseException) -> str:
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    text = str(exc)
    return _clip(text.split("]", 1)[-1].strip() if text.startswith("[") else text, 100)


def check_source_url(url: str) -> None:
    if not re.match(r"^https?://[^/\s]+", url or ""):
        raise InputError(f"{url!r} is not an http(s) URL, e.g. {MARKIT_URL}", parameter="source_url")


def check_from_file(path: str) -> None:
    file = Path(path)
    if not file.exists():
        raise InputError(f"{path}: no such file", parameter="from_file")
    if not file.is_file():
        raise InputError(f"{path}: not a file", parameter="from_file")


def required_size(previous: list[str] | None, *, is_default_source: bool) -> int:
    """The fewest symbols a new list may have: MIN_SHARE_OF_PREVIOUS percent of the previous list, else the
    default source's floor."""
    if previous is not None:
        return -(-len(previous) * MIN_SHARE_OF_PREVIOUS // 100)  # the ceiling: a fractional symbol is a whole one
    return DEFAULT_SOURCE_FLOOR if is_default_source else 1


def fetch_guarded(settings: Settings, from_file: str | None, floor: int, force: bool, previous_key: str | None,
                   http_get: HttpGet | None, note: Note) -> ParsedList:
    """Fetch until the list is long enough: GUARD_TRIES downloads (one read of a file), keeping the largest.
    Still short: SourceError, or with --force the largest is accepted."""
    tries = 1 if from_file is not None else GUARD_TRIES
    best: ParsedList | None = None
    for attempt in range(tries):
        if attempt:
            note(f"the ASX list has only {len(best.companies):,} symbols, fewer than the {floor:,} expected; "
                 f"downloading again (try {attempt + 1} of {tries})")
        try:
            parsed = _fetch_once(settings, from_file, http_get, note)
        except SourceError as error:
            if best is None:
                raise
            note(f"download {attempt + 1} of {tries} failed: {error}")
            continue
        if best is None or len(parsed.companies) > len(best.companies):
            best = parsed
        if len(best.companies) >= floor:
            return best
    if force:
        note(f"forced: accepting a list of {len(best.companies):,} symbols (expected at least {floor:,})")
        return best
    source = from_file or settings.source_url
    against = (f"{MIN_SHARE_OF_PREVIOUS}% of the previous list {previous_key}" if previous_key
               else f"the floor of {DEFAULT_SOURCE_FLOOR:,} for the ASX source")
    raise SourceError(
        f"the ASX list from {source} has {len(best.companies):,} symbols "
        f"{'(the largest of ' + str(tries) + ' downloads) ' if tries > 1 else ''}"
        f"but needs at least {floor:,} ({against}); nothing written. "
        f"If the market really shrank, run again with {named('force')}"
    )


def _fetch_once(settings: Settings, from_file: str | None, http_get: HttpGet | None, note: Note) -> ParsedList:
    if from_file is not None:
        try:
            body = Path(from_file).read_bytes()
        except OSError as exc:
            raise InputError(f"{from_file}: {exc.strerror}", parameter="from_file") from None
        return parse_list(body, origin=f"{from_file} holds")
    return download_list(settings.source_url, settings, http_get=http_get, note=note)
