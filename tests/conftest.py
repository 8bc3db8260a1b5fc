"""Shared test fixtures: a clean environment, no network, no sleeping, the one local store, and the moto server
(tests/aws_fake.py) every AWS test talks to.

`store` is an empty local store (tmp_path / "data"); a test module that needs one filled in a certain way
extends it under the same name (`def store(store): build_day(store, ...); return store`), so every test's
store comes from here."""

from __future__ import annotations

import os
import socket
import pytest

from aws_fake import FAKE_CREDENTIALS, endpoint_environment
from yahoo_fake import FakeYahoo

# Batches on threads of the test's own process, where fake_yahoo patches yfinance: worker processes would not
# see that patch. Set for the whole session (module- and session-scoped fixtures run before the per-test
# environment below); the tests of worker processes ask for them, with a fake Yahoo of their own.
os.environ["STOCKSTREAM_PROCESSES"] = "1"

LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
_real_connect = socket.socket.connect


def _loopback_only_connect(sock, address):
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and host not in LOOPBACK and not host.startswith("127.") and sock.family != socket.AF_UNIX:
        raise OSError(f"test tried to reach the network: {address!r}")
    return _real_connect(sock, address)


@pytest.fixture
def fake_yahoo():
    """An installed FakeYahoo (no latency, no limit, the market complete) in a cold process; program it.
    (Defined here, not in tests/yahoo_fake.py, so that the benchmarks' measured processes, which import that
    module, do not import pytest.)"""
    with FakeYahoo().installed() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _no_test_hangs_forever():
    """A test still running after 5 minutes is stuck (a lost message between processes, say): print every
    thread's stack and end the run, rather than leave CI waiting without a word."""
    import faulthandler

    faulthandler.dump_traceback_later(300, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(autouse=True)
def _no_hints_carried_between_tests():
    """Options a test remembered for hints by hand (hints.remember) never reach the next test's messages."""
    from stockstream_cli import hints

    yield
    hints.forget()


@pytest.fixture(autouse=True)
def _offline_quiet_environment(monkeypatch, tmp_path_factory):
    """No STOCKSTREAM_* from the developer's shell, no waits, fake AWS credentials, no network."""
    for name in list(os.environ):
        if name.startswith(("STOCKSTREAM_", "AWS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("STOCKSTREAM_DELAY", "0")
    monkeypatch.setenv("STOCKSTREAM_RETRY_WAIT", "0")
    monkeypatch.setenv("STOCKSTREAM_PROCESSES", "1")  # see the top of this file
    monkeypatch.setenv("STOCKSTREAM_CACHE_DIR", str(tmp_path_factory.mktemp("yfcache")))
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(socket.socket, "connect", _loopback_only_connect)


@pytest.fixture
def store(tmp_path):
    """An empty local store in tmp_path / "data" (created on first write)."""
    from storefactory import as_store

    return as_store(tmp_path / "data")


@pytest.fixture(scope="session")
def played(tmp_path_factory):
    """The folder of a local store holding the ten-session play with every kind of data file
    (actions_support.played_store), built once per session: tests only read it (copy it to change it)."""
    from actions_support import played_store
    from storefactory import as_store

    folder = tmp_path_factory.mktemp("played")
    played_store(as_store(folder / "data"), folder)
    return folder / "data"


@pytest.fixture(scope="session")
def moto_server():
    """A moto server on a free loopback port for the session; yields its endpoint URL."""
    from aws_fake import moto_server

    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def moto_endpoint(moto_server, monkeypatch):
    """Point every AWS access (boto3, polars, subprocesses) at the moto server, and reset it after."""
    from aws_fake import reset

    for name, value in endpoint_environment(moto_server).items():
        monkeypatch.setenv(name, value)
    yield moto_server
    reset(moto_server)


@pytest.fixture
def s3_bucket(moto_endpoint):
    """An empty bucket on the moto server; yields its name."""
    import boto3

    boto3.client("s3", region_name="ap-southeast-2").create_bucket(
        Bucket="stockstream-test",
        CreateBucketConfiguration={"LocationConstraint": "ap-southeast-2"},
    )
    return "stockstream-test"
