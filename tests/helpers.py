"""Running the program from a test: in-process through the one CLI runner (`runner.invoke(app, [...])`, for
argument handling and rendering), or the installed program in a real process (`run_stockstream`, for what only
a process shows: exit codes, stdout purity, signals, locks)."""

from __future__ import annotations

import os
import subprocess
import sys

from typer.testing import CliRunner

runner = CliRunner()  # the one in-process runner every CLI test shares


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


def fetch_batch(store, day, batch_number: int, settings, **options) -> dict:
    """One batch fetched and committed as fetch-batch does it, without taking its lock: the contract's
    document (the options are run.batch.fetch_batch's)."""
    from stockstream_cli.dataset.commit import Writer
    from stockstream_cli.run.batch import fetch_batch as fetch_and_commit

    return fetch_and_commit(Writer(store, "test"), day, batch_number, settings, **options).to_document()
