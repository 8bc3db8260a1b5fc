"""The store's key layout: the one place keys are built and parsed.

    symbols/YYYY-MM-DD-symbols.csv         the day's ASX list
    raw-data/YYYY-MM-DD-batch-N.parquet    one file per batch
    runs/YYYY-MM-DD/batch-N.json           the fetcher's result for that batch
    runs/YYYY-MM-DD/run.json               the whole run's summary
    raw-data/YYYY-MM-DD-backfill-N.parquet one file per chunk of a backfill (same schema as a batch file)
    runs/YYYY-MM-DD/backfill-N.json        that chunk's result: what a rerun of the backfill skips
    raw-data/compacted-YYYY-MM.parquet     `stockstream compact`: a month's batch files and backfill chunks in one sorted file
    actions/SYMBOL.parquet                 a symbol's corporate actions (dividends, splits), its whole history
    repairs/SYMBOL.parquet                 a symbol's days stored repaired (Yahoo's unit errors): what Yahoo said
    suspicions/open.json                   the (symbol, date)s later runs fetch again (quality/reverify.py)
"""

from __future__ import annotations

import datetime as dt
import re

SYMBOLS_PREFIX = "symbols/"
RAW_DATA_PREFIX = "raw-data/"
RUNS_PREFIX = "runs/"
ACTIONS_PREFIX = "actions/"
LOCKS_PREFIX = "locks/"  # a writer's lock (locks.py): exists only while it writes
REPAIRS_PREFIX = "repairs/"
SUSPICIONS_PREFIX = "suspicions/"
SUSPICIONS_KEY = f"{SUSPICIONS_PREFIX}open.json"
DATA_PREFIXES = (SYMBOLS_PREFIX, RAW_DATA_PREFIX, RUNS_PREFIX, ACTIONS_PREFIX, LOCKS_PREFIX, REPAIRS_PREFIX,
                 SUSPICIONS_PREFIX)  # every key lives under one (the IAM policy grants these)

_SYMBOLS_RE = re.compile(r"^symbols/(\d{4}-\d{2}-\d{2})-symbols\.csv$")
_BATCH_DATA_RE = re.compile(r"^raw-data/(\d{4}-\d{2}-\d{2})-batch-(\d+)\.parquet$")
_BATCH_MANIFEST_RE = re.compile(r"^runs/(\d{4}-\d{2}-\d{2})/batch-(\d+)\.json$")
_BACKFILL_DATA_RE = re.compile(r"^raw-data/(\d{4}-\d{2}-\d{2})-backfill-(\d+)\.parquet$")
_BACKFILL_MANIFEST_RE = re.compile(r"^runs/(\d{4}-\d{2}-\d{2})/backfill-(\d+)\.json$")


def symbols_key(day: dt.date) -> str:
    return f"{SYMBOLS_PREFIX}{day.isoformat()}-symbols.csv"


def batch_data_key(day: dt.date, batch_number: int) -> str:
    return f"{batch_data_prefix(day)}{batch_number}.parquet"


def batch_data_prefix(day: dt.date) -> str:
    """What the keys of `day`'s batch data files start with."""
    return f"{day_data_prefix(day)}batch-"


def batch_manifest_key(day: dt.date, batch_number: int) -> str:
    return f"{RUNS_PREFIX}{day.isoformat()}/batch-{batch_number}.json"


def day_data_prefix(day: dt.date) -> str:
    """What the keys of every data file fetched for `day` (its batches and backfill chunks) start with."""
    return f"{RAW_DATA_PREFIX}{day.isoformat()}-"


def run_prefix(day: dt.date) -> str:
    return f"{RUNS_PREFIX}{day.isoformat()}/"


def run_summary_key(day: dt.date) -> str:
    return f"{run_prefix(day)}run.json"


def parse_symbols_key(key: str) -> dt.date | None:
    match = _SYMBOLS_RE.match(key)
    return dt.date.fromisoformat(match.group(1)) if match else None


def parse_batch_data_key(key: str) -> tuple[dt.date, int] | None:
    match = _BATCH_DATA_RE.match(key)
    return (dt.date.fromisoformat(match.group(1)), int(match.group(2))) if match else None


def parse_batch_manifest_key(key: str) -> tuple[dt.date, int] | None:
    match = _BATCH_MANIFEST_RE.match(key)
    return (dt.date.fromisoformat(match.group(1)), int(match.group(2))) if match else None


def backfill_data_key(day: dt.date, number: int) -> str:
    return f"{RAW_DATA_PREFIX}{day.isoformat()}-backfill-{number}.parquet"


def backfill_manifest_key(day: dt.date, number: int) -> str:
    return f"{RUNS_PREFIX}{day.isoformat()}/backfill-{number}.json"


def parse_backfill_data_key(key: str) -> tuple[dt.date, int] | None:
    match = _BACKFILL_DATA_RE.match(key)
    return (dt.date.fromisoformat(match.group(1)), int(match.group(2))) if match else None


def parse_backfill_manifest_key(key: str) -> tuple[dt.date, int] | None:
    match = _BACKFILL_MANIFEST_RE.match(key)
    return (dt.date.fromisoformat(match.group(1)), int(match.group(2))) if match else None


_RUN_SUMMARY_RE = re.compile(r"^runs/(\d{4}-\d{2}-\d{2})/run\.json$")


def parse_run_summary_key(key: str) -> dt.date | None:
    match = _RUN_SUMMARY_RE.match(key)
    return dt.date.fromisoformat(match.group(1)) if match else None


# `stockstream compact`: the batch files fetched in one month, merged into one sorted file
_COMPACTED_DATA_RE = re.compile(r"^raw-data/compacted-(\d{4})-(\d{2})\.parquet$")


def compacted_data_key(month: str) -> str:
    """raw-data/compacted-YYYY-MM.parquet: the batch files and backfill chunks of the days of `month` (YYYY-MM), merged."""
    return f"{RAW_DATA_PREFIX}compacted-{month}.parquet"


def parse_compacted_data_key(key: str) -> str | None:
    """The month (YYYY-MM) of a compacted data key; None for any other key."""
    match = _COMPACTED_DATA_RE.match(key)
    return f"{match.group(1)}-{match.group(2)}" if match and 1 <= int(match.group(2)) <= 12 else None



# corporate actions: one file per symbol (dataset/actions.py)
_ACTIONS_RE = re.compile(r"^actions/([A-Z0-9]{3,6})\.parquet$")


def actions_key(symbol: str) -> str:
    return f"{ACTIONS_PREFIX}{symbol}.parquet"


def parse_actions_key(key: str) -> str | None:
    """The symbol of an actions file's key; None for any other key."""
    match = _ACTIONS_RE.match(key)
    return match.group(1) if match else None


# repaired days: one file per symbol that has any (repairs.py)
_REPAIRS_RE = re.compile(r"^repairs/([A-Z0-9]{3,6})\.parquet$")


def repairs_key(symbol: str) -> str:
    return f"{REPAIRS_PREFIX}{symbol}.parquet"


def parse_repairs_key(key: str) -> str | None:
    """The symbol of a repairs file's key; None for any other key."""
    match = _REPAIRS_RE.match(key)
    return match.group(1) if match else None
