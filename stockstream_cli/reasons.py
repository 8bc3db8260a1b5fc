"""Why a symbol has no rows: the one vocabulary of failure reasons, and what each means for a retry.

Every layer speaks it: sources/yahoo.py names the reason of a failed request, fetch/batch.py retries a
symbol and decides whether a whole batch failed, rerun-failed chooses what to fetch again, backfill what
is done for good, status and the progress view what to advise. The retry policy is stated here once, as
sets of these names, so no layer keeps a copy that could drift. No typer or rich here.
"""

from __future__ import annotations

RATE_LIMITED = "rate_limited"  # Yahoo refused (HTTP 429): the request is retried after a backoff
NOT_FOUND = "not_found"  # no such symbol on Yahoo, or delisted
NO_DATA = "no_data"  # the symbol exists but has no traded bar in the window
INVALID_DATA = "invalid_data"  # bars came back, none of them valid (Yahoo corrects bad bars later)
TIMEOUT = "timeout"  # no answer in time
ERROR = "error"  # anything else (a network error, an unexpected answer)
# the window showed a new dividend or split and the refetch of the symbol's stored range failed: nothing of
# the symbol was stored (fetch/restate.py), so the next fetch sees the action as new again
RESTATE_FAILED = "restate_failed"
# Most of a batch answered "not found"/"no data" at once: Yahoo blocking the client, not delisting
# (fetch/block.py decides); retried later, never taken for a delisting.
BLOCKED = "blocked"
# Not fetched because the fetcher's deadline came (Lambda's timeout, Ctrl-C): fetched by the next try.
INTERRUPTED = "interrupted"
ALL = (RATE_LIMITED, NOT_FOUND, NO_DATA, INVALID_DATA, TIMEOUT, ERROR, RESTATE_FAILED, BLOCKED, INTERRUPTED)

UNRECORDED = ERROR  # the reason of a failed symbol whose record names none

# Retried at once, inside the batch (with backoff); a batch whose every failure is one of these, with no
# symbol fetched, failed as a whole (Yahoo refusing or unreachable) and is retried by the state machine.
TRANSIENT = frozenset({RATE_LIMITED, TIMEOUT, ERROR, RESTATE_FAILED})
# Retried by a later attempt of the batch (the state machine's Retry, run-local's batch retry), not inside it.
LATER = frozenset({BLOCKED, INTERRUPTED})
# Fetched again by a plain `rerun-failed`: the transient ones, and invalid data (Yahoo corrects bad bars).
RERUN = TRANSIENT | LATER | {INVALID_DATA}
# Fetched again only by `rerun-failed --all`: they will most likely fail the same way.
LASTING = frozenset(ALL) - RERUN
# A backfill that recorded one of these for a symbol is done with it: only transient failures are retried.
FINAL = frozenset(ALL) - TRANSIENT - LATER
