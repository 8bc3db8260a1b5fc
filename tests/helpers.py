"""Helpers for tests that run the real program in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys


def run_stockstream(*args: str, env: dict | None = None, cwd=None, timeout: float = 120) -> subprocess.CompletedProcess:
    """The installed program in a real process: `python -m stockstream_cli ARGS`."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "stockstream_cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
    )
