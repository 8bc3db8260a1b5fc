"""Yahoo simulated for whole `stockstream` processes: one FakeYahoo, served to every process of a benchmark.

The simulator is tests/yahoo_fake.py's FakeYahoo (the one the test suite uses; benchmarks import it by
putting tests/ on sys.path rather than keeping a second copy). In a test it answers at the HTTP transport
(curl_cffi's `Session._request_once`, requests' `Session.request`) of the test's own process. A benchmark
runs `stockstream` as a real process, and its server-side rate limit and request counts must be one for the
whole run, so here the FakeYahoo lives in the benchmark's process behind a Unix socket (`FakeServer`), and
the measured process installs `client_request_once` at the same transport seam (`python -m benchmarks.launch
...`): yfinance's cookie, crumb and resend logic and stockstream's session run there, and every HTTP request
reaches the simulator, counted by kind. Each worker thread of the measured process has its own connection
and the server one thread per connection, so the simulated latency of concurrent requests overlaps as it
would on the network; the simulator's own CPU is spent in the benchmark's process, not in the one measured.
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


def use_test_fakes() -> None:
    """tests/ on sys.path: a benchmark fakes every seam with the test suite's own fake (yahoo_fake.py,
    asx_fake.py, aws_fake.py, clock.py; tests/test_fakes_shared.py holds it to that)."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))


def fake_yahoo_class():
    """tests/yahoo_fake.FakeYahoo, importable from a source checkout."""
    use_test_fakes()
    from yahoo_fake import FakeYahoo

    return FakeYahoo


class FakeServer:
    """A FakeYahoo (latency, rate_limit: as FakeYahoo's) answering over a Unix socket; a context manager."""

    def __init__(self, *, latency: float = 0.0, rate_limit: float | None = None):
        self.fake = fake_yahoo_class()(latency=latency, rate_limit=rate_limit)
        self.address = os.path.join(tempfile.mkdtemp(prefix="stockstream-bench-"), "yahoo.sock")
        self._listener = Listener(self.address, family="AF_UNIX", backlog=64, authkey=AUTHKEY)  # every worker at once
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
                    method, url, params, client = connection.recv()
                except (EOFError, OSError):
                    return
                connection.send(self._answer(method, url, params, client))

    def _answer(self, method: str, url: str, params: dict, client) -> tuple:
        reply = self.fake.serve(method, url, params, client=client)
        return (reply.status, reply.body, reply.headers, reply.url, reply.set_cookie, reply.timeout)


# ---------------------------------------------------------------------------------------------- the client side

_local = threading.local()


def _ask(method: str, url: str, params) -> "object":
    """The FakeServer's Reply to one request (one connection per thread)."""
    connection = getattr(_local, "connection", None)
    if connection is None:
        connection = _local.connection = Client(os.environ[ADDRESS_ENV], family="AF_UNIX", authkey=AUTHKEY)
    connection.send((method, url, dict(params or {}), (os.getpid(), threading.get_ident())))
    status, body, headers, full_url, set_cookie, timeout = connection.recv()
    from yahoo_fake import Reply

    return Reply(status, body, headers, full_url, set_cookie=set_cookie, timeout=timeout)


def client_request_once(session, method, url, params=None, *args, **kwargs):
    """curl_cffi's `Session._request_once`, answered by the FakeServer at $STOCKSTREAM_BENCH_YAHOO."""
    from curl_cffi.requests.exceptions import Timeout
    from yahoo_fake import to_curl_response

    return to_curl_response(session, _ask(method, url, params), Timeout)


def client_request(session, method, url, params=None, *args, **kwargs):
    """requests' `Session.request` (yfinance's fallback), answered by the FakeServer."""
    import requests
    from yahoo_fake import to_requests_response

    return to_requests_response(session, _ask(method, url, params), requests.exceptions.ReadTimeout)


def install_client() -> None:
    """Route every HTTP request of this process to the FakeServer named in the environment.

    Patched where the HTTP libraries are, not in yfinance: curl_cffi and requests are imported here, but
    yfinance (and pandas) are not, so a process that never fetches (run-local's parent when workers fetch)
    pays for neither, as the real `stockstream` would not.
    """
    use_test_fakes()
    import requests
    from curl_cffi.requests import Session as CurlSession

    from yahoo_fake import only_yahoo

    CurlSession._request_once = only_yahoo(client_request_once, CurlSession.__dict__["_request_once"])
    requests.Session.request = only_yahoo(client_request, requests.Session.__dict__["request"])
