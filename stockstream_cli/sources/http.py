"""The HTTP session every request to Yahoo goes through: paced, counted by kind, 429s reported to the budget.

yfinance sends more than the chart request a symbol needs: a cookie (fc.yahoo.com), a crumb
(`/v1/test/getcrumb`), on a status >= 400 the other cookie strategy (guce.yahoo.com consent pages), a new
crumb and a resend. `YahooSession` is a curl_cffi `Session` (impersonating Chrome, as yfinance's own) handed
to yfinance (`yf.Ticker(symbol, session=session())`), and each of those requests, at the moment it goes out
(`_request_once`, below curl_cffi's own retry loop):

- takes a slot of the pacer bound to the sending thread (`paced(pacer)`: the worker's --delay, the run's
  --rate budget and its AIMD), and reports what came back: `on_success()`, or `on_rate_limited(retry_after)`
  for a 429 anywhere (cookie, crumb, consent or chart) and for a crumb whose body is "Too Many Requests"
  (Yahoo's poisoned crumb, status 200); `Retry-After` (seconds or an HTTP date, read against the answer's
  own `Date`) is passed on so the budget holds every worker until then;
- is counted by kind (KINDS) in the session's totals and in every tally bound to the sending thread, so a
  batch can say how many requests of each kind it cost.

One session per process (`session()`), reused by every symbol and batch, so the cookie and crumb are fetched
once per process. When yfinance runs on plain `requests` (curl_cffi not importable, or YF_DISABLE_CURL_CFFI),
Yahoo fingerprints and rate-limits it: `require_impersonation` refuses to fetch unless the user opted out
(STOCKSTREAM_ALLOW_PLAIN_REQUESTS / --allow-plain-requests); then `PlainYahooSession` (a requests.Session
with the same pacing and counting) is used.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import InputError, named

KINDS = ("cookie", "crumb", "consent", "chart", "other")
# A request that cannot connect (connection_failure) after this long without any answer from Yahoo means Yahoo
# cannot be reached at all; within it, a network blip between answers, retried like any error.
UNREACHED_AFTER_SECONDS = 60.0
POISONED_CRUMB = "Too Many Requests"
IMPERSONATE = "chrome"

_local = threading.local()  # .pacer and .tallies of the sending thread
_session_lock = threading.Lock()
_session: Any = None


def request_kind(url: str) -> str:
    """cookie (fc.yahoo.com), crumb (getcrumb), consent (guce/consent.yahoo.com), chart (v8 chart) or other."""
    host = url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower()
    if host == "fc.yahoo.com":
        return "cookie"
    if "/v1/test/getcrumb" in url:
        return "crumb"
    if host.endswith(("guce.yahoo.com", "consent.yahoo.com")):
        return "consent"
    if "/v8/finance/chart/" in url:
        return "chart"
    return "other"


class RequestCounts:
    """HTTP requests by kind (KINDS), and how many of them Yahoo refused with a 429; thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self.by_kind: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.rate_limited = 0

    def add(self, kind: str, rate_limited: bool = False) -> None:
        with self._lock:
            self.by_kind[kind] += 1
            self.rate_limited += rate_limited

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.by_kind)


@contextlib.contextmanager
def paced(pacer, tally: RequestCounts | None = None) -> Iterator[None]:
    """Requests this thread sends inside the block take a slot of `pacer` (None: no pacing) and are added
    to `tally`. Blocks nest: the innermost pacer paces, every tally counts."""
    previous = getattr(_local, "pacer", None)
    tallies = getattr(_local, "tallies", ())
    _local.pacer = pacer if pacer is not None else previous
    _local.tallies = tallies + ((tally,) if tally is not None else ())
    try:
        yield
    except PacerFailed as failed:
        raise failed.original from None
    finally:
        _local.pacer = previous
        _local.tallies = tallies


def retry_after_seconds(headers, now: dt.datetime | None = None) -> float | None:
    """Seconds a `Retry-After` header asks to wait: delta-seconds, or an HTTP date read against the answer's
    `Date` header (else `now`, else this machine's clock). None when absent or unreadable."""
    value = _header(headers, "retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        until = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    base = None
    date_header = _header(headers, "date")
    if date_header:
        with contextlib.suppress(TypeError, ValueError):
            base = email.utils.parsedate_to_datetime(date_header)
    base = base or now or dt.datetime.now(dt.timezone.utc)
    if until.tzinfo is None:
        until = until.replace(tzinfo=dt.timezone.utc)
    if base.tzinfo is None:
        base = base.replace(tzinfo=dt.timezone.utc)
    return max((until - base).total_seconds(), 0.0)


def _header(headers, name: str) -> str | None:
    if headers is None:
        return None
    try:
        value = headers.get(name)
        if value is None and hasattr(headers, "items"):  # a plain mapping: names in any case
            value = next((v for k, v in headers.items() if k.lower() == name), None)
        return value
    except Exception:  # noqa: BLE001 - a header object that cannot be read is no header
        return None


def is_rate_limited(kind: str, response) -> bool:
    """A 429, or a crumb whose body is Yahoo's "Too Many Requests" (sent with status 200)."""
    if response.status_code == 429:
        return True
    if kind == "crumb":
        with contextlib.suppress(Exception):
            return POISONED_CRUMB in response.text
    return False


@contextlib.contextmanager
def within(time_left: Callable[[], float] | None) -> Iterator[None]:
    """Requests this thread sends inside the block wait at most `time_left()` seconds each (None: no bound):
    the fetcher's deadline (fetch/deadline.py). A request's timeout is cut to it when it goes (after its pacing),
    and one with no time left is not sent: TimeoutError, a timeout like any other to yfinance and yahoo.fetch."""
    previous = getattr(_local, "time_left", None)
    _local.time_left = time_left if time_left is not None else previous
    try:
        yield
    finally:
        _local.time_left = previous


def _bound_timeout(options: dict) -> None:
    """Cut the request's `timeout` option to the time `within` leaves (see there)."""
    time_left = getattr(_local, "time_left", None)
    if time_left is None:
        return
    left = time_left()
    if left <= 0:
        raise TimeoutError("not sent: the fetcher's deadline left no time for this request")
    timeout = options.get("timeout")
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        options["timeout"] = min(float(timeout), left)
    elif isinstance(timeout, tuple):
        options["timeout"] = tuple(min(float(part), left) if isinstance(part, (int, float)) else left
                                   for part in timeout)
    else:
        options["timeout"] = left


class PacerFailed(BaseException):
    """The pacer itself failed (its budget service gone, say) during a request: a BaseException, so that it
    passes through yfinance's and yahoo.fetch's `except Exception` instead of passing for Yahoo's answer;
    `paced` re-raises the original at the caller."""

    def __init__(self, original: BaseException):
        super().__init__(str(original))
        self.original = original


def _tell(pacer, signal: str, *args) -> None:
    try:
        getattr(pacer, signal)(*args)
    except Exception as exc:  # noqa: BLE001 - re-raised as itself by `paced`
        raise PacerFailed(exc) from exc


class _Paced:
    """What both session classes do around one request: pace it, send it, count it, report it, and remember
    when Yahoo last answered at all (`answered_within`)."""

    counts: RequestCounts
    answered_at: float | None = None  # the clock's reading at the last answer (any status)
    clock = staticmethod(time.monotonic)

    def answered_within(self, seconds: float) -> bool:
        """Whether any request of this session got an answer (of any status) in the last `seconds`."""
        return self.answered_at is not None and self.clock() - self.answered_at <= seconds

    def _paced(self, url: str, send, options: dict):
        kind = request_kind(url)
        pacer = getattr(_local, "pacer", None)
        if pacer is not None:
            _tell(pacer, "wait")
        _bound_timeout(options)
        try:
            response = send()
        except Exception:
            self._count(kind, False)  # sent, never answered (a timeout): no signal either way
            raise
        self.answered_at = self.clock()
        refused = is_rate_limited(kind, response)
        self._count(kind, refused)
        if pacer is not None:
            if refused:
                _tell(pacer, "on_rate_limited", retry_after_seconds(response.headers))
            else:
                _tell(pacer, "on_success")
        return response

    def _count(self, kind: str, refused: bool) -> None:
        self.counts.add(kind, refused)
        for tally in getattr(_local, "tallies", ()):
            tally.add(kind, refused)


# curl's error codes (CurlECode) of a request that never reached the server: no such host or proxy host,
# no connection, the proxy or TLS failing. A timeout is not one (a slow Yahoo is retried), nor a connection
# dropped after it was made (RECV_ERROR, GOT_NOTHING: a server was reached).
_CURL_UNREACHED = frozenset({
    5, 6, 7, 96,  # COULDNT_RESOLVE_PROXY, COULDNT_RESOLVE_HOST, COULDNT_CONNECT, QUIC_CONNECT_ERROR
    97,  # PROXY (the proxy's handshake failed)
    35, 58, 59, 60, 77, 83, 90, 91, 98,  # SSL_CONNECT_ERROR and the certificate, cipher and key failures
})


def connection_failure(exc: BaseException) -> str | None:
    """Why a request never reached its server (DNS, a refused connection, TLS, a proxy), in one line of the
    HTTP library's own words, from the exception or what it wraps; None for anything else (a timeout, a
    connection dropped after it was made, an answer)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        cause = _unreached(exc)
        if cause is not None:
            return cause
        exc = exc.__cause__ or exc.__context__
    return None


def _unreached(exc: BaseException) -> str | None:
    import socket

    if isinstance(exc, (TimeoutError, socket.timeout)) or "Timeout" in type(exc).__name__:
        return None
    code = getattr(exc, "code", None)
    if type(exc).__module__.startswith("curl_cffi"):
        return _curl_words(str(exc)) if int(code or 0) in _CURL_UNREACHED else None
    if isinstance(exc, (socket.gaierror, ConnectionRefusedError)):
        return str(exc) or type(exc).__name__
    try:
        import requests
        from urllib3.exceptions import NewConnectionError
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, (requests.exceptions.ProxyError, requests.exceptions.SSLError)):
        return str(exc)
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        if isinstance(reason, NewConnectionError):  # no such host (NameResolutionError) or no connection
            return str(reason)
    return None


def _curl_words(message: str) -> str:
    """"Failed to perform, curl: (6) Could not resolve host: X (Domain name not found). See https://..."
    -> "Could not resolve host: X (Domain name not found)"."""
    text = message.split("curl: ", 1)[-1]
    if text.startswith("(") and ") " in text:
        text = text.split(") ", 1)[1]
    return text.split(". See https://", 1)[0].strip() or message


def _curl_session_class():
    from curl_cffi import requests as curl_requests

    class YahooSession(_Paced, curl_requests.Session):
        """curl_cffi's Session, impersonating Chrome, each request paced and counted (see the module)."""

        def __init__(self, **kwargs):
            kwargs.setdefault("impersonate", IMPERSONATE)
            super().__init__(**kwargs)
            self.counts = RequestCounts()

        def _request_once(self, method, url, *args, **kwargs):
            return self._paced(url, lambda: super(YahooSession, self)._request_once(method, url, *args, **kwargs),
                               kwargs)

    YahooSession.__qualname__ = "YahooSession"
    return YahooSession


def _plain_session_class():
    import requests

    class PlainYahooSession(_Paced, requests.Session):
        """requests' Session (yfinance's fallback backend, only when allowed), paced and counted."""

        def __init__(self):
            super().__init__()
            self.counts = RequestCounts()
            from yfinance import _http

            self.headers.update({"User-Agent": getattr(_http, "_FALLBACK_USER_AGENT", self.headers["User-Agent"])})

        def request(self, method, url, *args, **kwargs):
            return self._paced(url, lambda: super(PlainYahooSession, self).request(method, url, *args, **kwargs),
                               kwargs)

    PlainYahooSession.__qualname__ = "PlainYahooSession"
    return PlainYahooSession


def yfinance_uses_curl_cffi() -> bool:
    """Whether yfinance's HTTP backend is curl_cffi (since 1.4 a failed import falls back to requests).

    When yfinance is imported, its own answer (`yfinance._http.HAS_CURL_CFFI`); before that, the same rule
    without importing yfinance and pandas (a parent process that never fetches does not pay for them):
    curl_cffi imports and YF_DISABLE_CURL_CFFI is not set.
    """
    import os
    import sys

    backend = sys.modules.get("yfinance._http")
    if backend is not None and hasattr(backend, "HAS_CURL_CFFI"):
        return bool(backend.HAS_CURL_CFFI)
    if os.environ.get("YF_DISABLE_CURL_CFFI", "").lower() in ("1", "true", "yes"):
        return False
    return _curl_importable()


def _curl_importable() -> bool:
    try:
        import curl_cffi.requests  # noqa: F401
    except ImportError:
        return False
    return True


def require_impersonation(allow_plain_requests: bool) -> None:
    """Refuse to fetch when yfinance is on plain requests, unless the user allowed it (InputError: exit 2)."""
    if allow_plain_requests or yfinance_uses_curl_cffi():
        return
    raise InputError(
        "yfinance is not using curl_cffi (it failed to import, or YF_DISABLE_CURL_CFFI is set), and Yahoo "
        "rate-limits or blocks plain requests: install curl_cffi (pip install 'curl_cffi>=0.15'), or set "
        f"STOCKSTREAM_ALLOW_PLAIN_REQUESTS=1 ({named('allow_plain_requests')}) to fetch anyway"
    )


def session():
    """This process's session to Yahoo, made on first use: one cookie and crumb for every symbol and batch."""
    global _session
    with _session_lock:
        if _session is None:
            plain = not yfinance_uses_curl_cffi() or not _curl_importable()
            _session = (_plain_session_class() if plain else _curl_session_class())()
        return _session


def reset_session() -> None:
    """Forget this process's session (tests: a cold process); the next `session()` makes a new one."""
    global _session
    with _session_lock:
        _session = None
