"""Yahoo simulated for whole `stockstream` processes: one FakeYahoo, served to every process of a benchmark.

The simulator is tests/yahoo_fake.py's FakeYahoo (the one the test suite uses; benchmarks import it by
putting tests/ on sys.path rather than keeping a second copy). In a test it replaces
`yfinance.data.YfData.get` in the test's own process. A benchmark runs `stockstream` as a real process,
and its server-side rate limit and request counts must be one for the whole run, so here the FakeYahoo
lives in the benchmark's process behind a Unix socket (`FakeServer`), and the measured process installs
`client_get` at the same seam (`python -m benchmarks.launch ...`). Each worker thread of the measured
process has its own connection and the server one thread per connection, so the simulated latency of
concurrent requests overlaps as it would on the network; the simulator's own CPU is spent in the
benchmark's process, not in the one measured.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from multiprocessing.connection import Client, Listener
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
ADDRESS_ENV = "STOCKSTREAM_BENCH_YAHOO"
AUTHKEY = b"stockstream-benchmarks"


def fake_yahoo_class():
    """tests/yahoo_fake.FakeYahoo, importable from a source checkout."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    from yahoo_fake import FakeYahoo

    return FakeYahoo


class FakeServer:
    """A FakeYahoo (latency, rate_limit: as FakeYahoo's) answering over a Unix socket; a context manager."""

    def __init__(self, *, latency: float = 0.0, rate_limit: float | None = None):
        self.fake = fake_yahoo_class()(latency=latency, rate_limit=rate_limit)
        self.address = os.path.join(tempfile.mkdtemp(prefix="stockstream-bench-"), "yahoo.sock")
        self._listener = Listener(self.address, family="AF_UNIX", authkey=AUTHKEY)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="fake-yahoo-accept", daemon=True)

    def __enter__(self) -> "FakeServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._closed.set()
        try:
            Client(self.address, family="AF_UNIX", authkey=AUTHKEY).close()  # wake the accept loop
        except OSError:
            pass
        self._listener.close()

    def environment(self) -> dict[str, str]:
        """What a process needs in its environment to use this server (see launch.py)."""
        return {ADDRESS_ENV: self.address}

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection) -> None:
        with connection:
            while True:
                try:
                    url, params, timeout = connection.recv()
                except (EOFError, OSError):
                    return
                connection.send(self._answer(url, params, timeout))

    def _answer(self, url: str, params: dict, timeout: float) -> tuple:
        from yfinance.exceptions import YFRateLimitError

        try:
            response = self.fake.handle(url, params, timeout)
        except YFRateLimitError:
            return ("raise", "rate_limited", "")
        except Exception as exc:  # noqa: BLE001 - the fake's timeout is the HTTP library's exception
            return ("raise", "timeout", str(exc))
        return ("response", response.status_code, response.content, response.url)


# ---------------------------------------------------------------------------------------------- the client side

_local = threading.local()


def client_get(_yf_data, url, params=None, timeout=30):
    """`YfData.get` answered by the FakeServer at $STOCKSTREAM_BENCH_YAHOO (one connection per thread)."""
    connection = getattr(_local, "connection", None)
    if connection is None:
        connection = _local.connection = Client(os.environ[ADDRESS_ENV], family="AF_UNIX", authkey=AUTHKEY)
    connection.send((url, dict(params or {}), timeout))
    answer = connection.recv()
    if answer[0] == "raise":
        if answer[1] == "rate_limited":
            from yfinance.exceptions import YFRateLimitError

            raise YFRateLimitError()
        import requests

        raise requests.exceptions.ReadTimeout(answer[2])
    import requests

    _, status, content, full_url = answer
    response = requests.Response()
    response.status_code = status
    response._content = content
    response.encoding = "utf-8"
    response.headers["Content-Type"] = "application/json;charset=utf-8"
    response.url = full_url
    return response


def install_client() -> None:
    """Route yfinance's requests in this process to the FakeServer named in the environment.

    When yfinance is not imported yet, the patch waits for its import (`_PatchOnImport`) rather than importing
    it: a process that never fetches (run-local's parent when workers fetch) must not pay yfinance's and
    pandas' import, which the real `stockstream` would not either.
    """
    if "yfinance.data" in sys.modules:
        _patch(sys.modules["yfinance.data"])
    else:
        sys.meta_path.insert(0, _PatchOnImport("yfinance.data", _patch))


def _patch(module) -> None:
    module.YfData.get = client_get


class _PatchOnImport:
    """A meta path finder that lets the usual finders find `name`, then runs `patch` on the module once loaded."""

    def __init__(self, name: str, patch):
        self.name = name
        self.patch = patch

    def find_spec(self, name, path=None, target=None):
        if name != self.name:
            return None
        import importlib.util

        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            self.patch(module)

        spec.loader.exec_module = exec_module
        return spec
