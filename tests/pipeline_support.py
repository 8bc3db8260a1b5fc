"""Support for the run-local / rerun-failed tests: a store that fails on cue, reading a store back, and a launcher that runs `stockstream` with the fake Yahoo installed (for subprocess tests,
tmux checks and benchmarks).

    python tests/pipeline_support.py run-local --from-file list.csv --store ./data ...

The launcher reads STOCKSTREAM_FAKE_LATENCY (seconds per request), STOCKSTREAM_FAKE_FAULTS (JSON
{"CODE": ["kind", times-or-null], ...}) and STOCKSTREAM_FAKE_UNREACHABLE (dns, refused, tls or proxy: Yahoo
never reached) from the environment.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

class FailingPutStore:
    """Wraps a store: the first `times` puts of `key` raise StoreError (a full disk, an S3 500)."""

    def __init__(self, inner, key: str, times: int = 1):
        self._inner = inner
        self.key = key
        self.remaining = times
        self.failed_puts = 0

    def put(self, key: str, data: bytes) -> None:
        from stockstream_cli.errors import StoreError

        if key == self.key and self.remaining > 0:
            self.remaining -= 1
            self.failed_puts += 1
            raise StoreError(f"cannot write {key}: injected failure")
        self._inner.put(key, data)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def store_files(root: Path) -> dict[str, tuple[bytes, int]]:
    """{relative path: (bytes, mtime_ns)} of every file under a local store, hidden ones included."""
    return {
        path.relative_to(root).as_posix(): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def stored_rows(root: Path, day) -> "pl.DataFrame":
    """Every row of the day's batch files, fetch_timestamp left out, sorted: what a run stored."""
    import polars as pl

    files = sorted((root / "raw-data").glob(f"{day.isoformat()}-batch-*.parquet"))
    if not files:
        return pl.DataFrame()
    frame = pl.concat([pl.read_parquet(f) for f in files])
    return frame.drop("fetch_timestamp").sort("symbol", "date")


def clean_run_rows(store_root: Path, day, list_path: Path, batch_size: int) -> "pl.DataFrame":
    """What run-local stores with no fault and no interruption (on threads, Yahoo faked in this process), read
    back with stored_rows; fails unless every symbol of the list was fetched."""
    from yahoo_fake import FakeYahoo

    from stockstream_cli.run import local
    from stockstream_cli.settings import Settings
    from stockstream_cli.dataset.store import LocalStore

    settings = Settings.resolve(batch_size=batch_size, delay=0, retry_wait=0, processes=1,
                                cache_dir=str(store_root / "yfcache"))
    with FakeYahoo().installed():
        run = local.run_local(LocalStore(store_root), day, settings,
                                 source=local.asx_source(from_file=str(list_path)))
    assert run["symbols_fetched"] == run["total_symbols"] > 0, run
    return stored_rows(store_root, day)


def install_fake_yahoo_from_environment():
    """A FakeYahoo configured from STOCKSTREAM_FAKE_*; returns its `installed()` context manager.

    STOCKSTREAM_FAKE_CRASH=CODE: a worker process (not the parent) dies (exit code 9) when it asks for CODE,
    holding the write lock of the queue it sends its events on: the worst moment, as a worker killed (OOM, say)
    while its queue's feeder thread was sending.
    """
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from yahoo_fake import FakeYahoo

    fake = FakeYahoo(latency=float(os.environ.get("STOCKSTREAM_FAKE_LATENCY", "0") or 0))
    for code, (kind, times) in json.loads(os.environ.get("STOCKSTREAM_FAKE_FAULTS", "{}") or "{}").items():
        fake.fault(code, kind, times)
    if os.environ.get("STOCKSTREAM_FAKE_UNREACHABLE"):  # dns, refused, tls or proxy: no request reaches Yahoo
        fake.unreachable(os.environ["STOCKSTREAM_FAKE_UNREACHABLE"])
    crash = os.environ.get("STOCKSTREAM_FAKE_CRASH")
    if crash and __name__ == "__mp_main__":
        _crash_on(fake, crash)
    return fake.installed()


def _crash_on(fake, code: str) -> None:
    serve = fake.serve

    def crashing(method, url, params=None, **kwargs):
        if f"/{code}.AX" in url:
            import gc

            from stockstream_cli.run import workers

            for relay in (obj for obj in gc.get_objects() if isinstance(obj, workers._RelayObserver)):
                relay._events._wlock.acquire()
            os._exit(9)
        return serve(method, url, params, **kwargs)

    fake.serve = crashing


def main(argv: list[str]) -> None:
    from stockstream_cli.cli import app

    with install_fake_yahoo_from_environment():
        app(args=argv, prog_name="stockstream")


if __name__ == "__mp_main__":
    # a run-local worker process: multiprocessing's spawn imports the parent's main module (this file) under
    # this name before the worker fetches, so the worker's yfinance is faked as the parent's is
    _WORKER_FAKE = install_fake_yahoo_from_environment()  # kept: a collected context manager would undo it
    _WORKER_FAKE.__enter__()

if __name__ == "__main__":
    main(sys.argv[1:])
