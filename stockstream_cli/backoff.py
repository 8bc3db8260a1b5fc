"""The one retry backoff: every retry waits BACKOFF_RATE times the one before, from a first wait (the state
machine's BackoffRate, mirrored in infra/asl.json and compared by tests/test_mirrors.py). The batch and the
symbols step retry on it (run/types.py), a symbol (fetch/pacing.py, with jitter) and the ASX download too.
A leaf: no imports."""

from __future__ import annotations

BACKOFF_RATE = 2.0


def wait_before(retry: int, first_wait: float, rate: float = BACKOFF_RATE) -> float:
    """Seconds before retry number `retry` (1, 2, ...): first_wait, first_wait*rate, first_wait*rate**2, ..."""
    return first_wait * rate ** (retry - 1)
