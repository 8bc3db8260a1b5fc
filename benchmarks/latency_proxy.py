"""A reverse proxy adding a fixed latency to every HTTP request: moto's S3 as far away as real S3 is.

    with LatencyProxy("http://127.0.0.1:5000", latency=0.02) as proxy:
        os.environ["AWS_ENDPOINT_URL"] = proxy.url   # boto3 and polars (object_store) both go through it

Each request waits `latency` seconds before it is forwarded (what a round trip to S3 costs on top of the
work), so a reader pays per request as it would in a region: the figure that counts is how many requests a
read makes and how many it makes at once. Keep-alive on both sides; one thread per client connection.

`LatencyProxy.in_own_process(...)` runs it as `python -m benchmarks.latency_proxy UPSTREAM LATENCY` instead:
relaying bytes in Python holds an interpreter lock, which S3 does not share with the reader it serves (moto
runs in a process of its own for the same reason). `GET /__proxy/requests` then gives the count.
"""

from __future__ import annotations

import http.client
import http.server
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

COUNT_PATH = "/__proxy/requests"
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade"}


class _Server(http.server.ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: the readers' 32 connections at once overflowed it, and each
    # dropped SYN cost its connection the kernel's 1-s retransmit (3 s for a second): stalls S3 never has
    request_queue_size = 256


class LatencyProxy:
    def __init__(self, upstream: str, *, latency: float):
        parsed = urllib.parse.urlparse(upstream)
        self.upstream = (parsed.hostname, parsed.port)
        self.latency = latency
        self.requests = 0
        self._count = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="latency-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "LatencyProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _counted(self) -> None:
        with self._count:
            self.requests += 1

    def _handler(self):
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            upstream: http.client.HTTPConnection | None = None

            def log_message(self, *args) -> None:
                pass

            def _forward(self) -> None:
                if self.path == COUNT_PATH:
                    self._answer(str(proxy.requests).encode())
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                time.sleep(proxy.latency)
                proxy._counted()
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                if self.upstream is None:
                    self.upstream = http.client.HTTPConnection(*proxy.upstream, timeout=120)
                try:
                    self.upstream.request(self.command, self.path, body=body, headers=headers)
                    response = self.upstream.getresponse()
                except (http.client.HTTPException, OSError):
                    self.upstream.close()
                    self.upstream = http.client.HTTPConnection(*proxy.upstream, timeout=120)
                    self.upstream.request(self.command, self.path, body=body, headers=headers)
                    response = self.upstream.getresponse()
                data = response.read()
                self.send_response(response.status, response.reason)
                for name, value in response.getheaders():
                    if name.lower() not in HOP_BY_HOP and (name.lower() != "content-length" or self.command == "HEAD"):
                        self.send_header(name, value)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _answer(self, data: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        return Handler


class ProxyProcess:
    """A LatencyProxy in a child process, with the same `url`, `requests` and context manager."""

    def __init__(self, upstream: str, *, latency: float):
        self._args = [sys.executable, "-m", "benchmarks.latency_proxy", upstream, repr(latency)]
        self._process: subprocess.Popen | None = None
        self.url = ""

    @property
    def requests(self) -> int:
        with urllib.request.urlopen(self.url + COUNT_PATH, timeout=30) as answer:
            return int(answer.read())

    def __enter__(self) -> "ProxyProcess":
        self._process = subprocess.Popen(self._args, stdout=subprocess.PIPE, text=True)
        self.url = self._process.stdout.readline().strip()  # the child prints its URL once it listens
        if not self.url:
            raise RuntimeError("the latency proxy did not start")
        return self

    def __exit__(self, *exc) -> None:
        self._process.terminate()
        self._process.wait(timeout=30)


LatencyProxy.in_own_process = staticmethod(lambda upstream, *, latency: ProxyProcess(upstream, latency=latency))


if __name__ == "__main__":
    import signal

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})  # for sigwait, in every thread
    with LatencyProxy(sys.argv[1], latency=float(sys.argv[2])) as running:
        print(running.url, flush=True)
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
