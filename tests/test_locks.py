"""One writer per day (locks.py): exclusive creates, the stale-lock rule, day against batch, S3's
conditional PUTs on moto, and real processes: a second run-local exits 2, a kill -9'd holder is taken over."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from asx_fake import asx_codes, write_markit_csv
from stockstream_cli.dataset import locks
from stockstream_cli.cli import app
from stockstream_cli.errors import InputError
from stockstream_cli.options import flag
from stockstream_cli.dataset.store import LocalStore, open_store

DAY = dt.date(2026, 8, 21)
SUPPORT = Path(__file__).resolve().parent / "pipeline_support.py"
runner = CliRunner()


def lock_file(data: Path, day=DAY) -> Path:
    return data / locks.day_key(day)


def start_run(tmp_path, list_path, data) -> subprocess.Popen:
    """run-local in a real process against a fake Yahoo with latency, so it holds the day's lock a while."""
    env = dict(os.environ, STOCKSTREAM_FAKE_LATENCY="0.05", PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, str(SUPPORT), "run-local", "--date", DAY.isoformat(), "--from-file", str(list_path),
         "--store", str(data), "--batch-size", "10", "--concurrency", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 60) -> dict:
    """Block until `path` (a lock) appears: the process is watched, nothing slept on a configured wait."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.is_file() and path.stat().st_size:
            return json.loads(path.read_text())
        if process.poll() is not None:
            pytest.fail(f"the holder ended first: {process.communicate()}")
        time.sleep(0.01)
    pytest.fail(f"{path} never appeared")


@pytest.fixture
def processes():
    started = []
    yield started.append
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_a_second_run_local_on_the_same_day_exits_2_naming_the_holder(tmp_path, processes):
    list_path = write_markit_csv(tmp_path / "asx.csv", asx_codes(200))
    data = tmp_path / "data"
    first = start_run(tmp_path, list_path, data)
    processes(first)
    holder = wait_for(lock_file(data), first)
    assert holder["command"] == "run-local" and holder["pid"] == first.pid and holder["host"] == socket.gethostname()

    second = start_run(tmp_path, list_path, data)
    processes(second)
    _, stderr = second.communicate(timeout=60)
    assert second.returncode == 2, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr
    assert f"{DAY.isoformat()} is being written by run-local (pid {first.pid} on host {socket.gethostname()}" in lines[0]
    assert "--wait" in lines[0]
    assert json.loads(lock_file(data).read_text())["pid"] == first.pid  # the holder's lock untouched
    first.send_signal(signal.SIGINT)
    first.communicate(timeout=60)
    assert first.returncode == 130
    assert not lock_file(data).exists()  # released on Ctrl-C


def test_a_lock_left_by_kill_9_is_taken_over_by_the_next_run(tmp_path, processes, fake_yahoo):
    codes = asx_codes(60)
    list_path = write_markit_csv(tmp_path / "asx.csv", codes)
    data = tmp_path / "data"
    first = start_run(tmp_path, list_path, data)
    processes(first)
    wait_for(lock_file(data), first)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    assert lock_file(data).is_file()  # nobody released it

    result = runner.invoke(app, ["run-local", "--date", DAY.isoformat(), "--from-file", str(list_path),
                                 "--store", str(data), "--batch-size", "10", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["symbols_fetched"] == 60
    assert not lock_file(data).exists()


def fake_holder(store_root: Path, key: str, **fields) -> dict:
    holder = {"host": "elsewhere", "pid": 1, "command": "run-local", "started": "2026-08-21T10:02:00Z",
              "heartbeat": locks.utc_now(), "token": "other", **fields}
    path = store_root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(holder))
    return holder


def test_another_hosts_lock_is_live_until_its_heartbeat_is_older_than_the_ttl(tmp_path):
    store = LocalStore(tmp_path / "data")
    fake_holder(store.root, locks.day_key(DAY))
    with pytest.raises(locks.LockHeld) as raised:
        with locks.day_lock(store, DAY, "rerun-failed"):
            pass
    assert isinstance(raised.value, InputError)  # exit 2
    assert raised.value.naming(flag) == ("2026-08-21 is being written by run-local (pid 1 on host elsewhere, since 10:02 UTC); "
                                 "wait for it or pass --wait")
    old = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=locks.STALE_AFTER_SECONDS + 5))
    fake_holder(store.root, locks.day_key(DAY), heartbeat=old.strftime("%Y-%m-%dT%H:%M:%SZ"))
    with locks.day_lock(store, DAY, "rerun-failed") as held:
        mine = json.loads((store.root / locks.day_key(DAY)).read_text())
        assert mine["token"] == held[0].held.holder["token"] and mine["pid"] == os.getpid()
    assert not (store.root / "locks").exists()


def test_the_same_hosts_lock_is_stale_once_its_pid_is_gone():
    assert locks.is_stale({"host": "h", "pid": 42, "heartbeat": locks.utc_now()}, host="h", alive=lambda pid: False)
    assert not locks.is_stale({"host": "h", "pid": 42, "heartbeat": "2000-01-01T00:00:00Z"}, host="h",
                              alive=lambda pid: True)


def test_day_and_batch_locks_refuse_each_other(tmp_path):
    store = LocalStore(tmp_path / "data")
    fake_holder(store.root, locks.batch_key(DAY, 3), command="fetch-batch")
    with pytest.raises(locks.LockHeld, match="being written by fetch-batch"):
        with locks.day_lock(store, DAY, "run-local"):
            pass
    assert not (store.root / locks.day_key(DAY)).exists()  # taken, then given back
    with locks.batch_lock(store, DAY, 4, "fetch-batch"):  # another batch of the day is fine
        pass
    (store.root / locks.batch_key(DAY, 3)).unlink()
    fake_holder(store.root, locks.day_key(DAY))
    with pytest.raises(locks.LockHeld, match=r"2026-08-21 \(batch 0\) is being written by run-local"):
        with locks.batch_lock(store, DAY, 0, "fetch-batch"):
            pass


def test_fetch_batch_exits_2_under_another_processes_day_lock_without_a_request(tmp_path, fake_yahoo):
    data = tmp_path / "data"
    fake_holder(data, locks.day_key(DAY))
    result = runner.invoke(app, ["fetch-batch", "--date", DAY.isoformat(), "--batch-number", "0", "--symbols", "BHP",
                                 "--store", str(data)])
    assert result.exit_code == 2 and "is being written by run-local" in result.output
    assert fake_yahoo.count(kind=None) == 0


def test_wait_polls_until_the_holder_is_gone(tmp_path):
    store = LocalStore(tmp_path / "data")
    fake_holder(store.root, locks.day_key(DAY))
    waits = []

    def holder_finishes(seconds):  # while we wait
        waits.append(seconds)
        (store.root / locks.day_key(DAY)).unlink()

    with locks.day_lock(store, DAY, "run-local", wait=True, sleep=holder_finishes):
        assert json.loads((store.root / locks.day_key(DAY)).read_text())["pid"] == os.getpid()
    assert waits == [locks.WAIT_POLL_SECONDS]


def test_released_on_ctrl_c(tmp_path):
    store = LocalStore(tmp_path / "data")
    with pytest.raises(KeyboardInterrupt):
        with locks.day_lock(store, DAY, "run-local"):
            raise KeyboardInterrupt
    assert not (store.root / locks.day_key(DAY)).exists()


def test_s3_locks_are_conditional_puts(s3_bucket):
    store = open_store(f"s3://{s3_bucket}/prefix")
    import boto3

    s3 = boto3.client("s3", region_name="ap-southeast-2")
    key = "prefix/" + locks.day_key(DAY)
    with locks.day_lock(store, DAY, "run-local"):
        holder = json.loads(s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read())
        assert holder["pid"] == os.getpid()
        other = open_store(f"s3://{s3_bucket}/prefix")
        with pytest.raises(locks.LockHeld):  # our own pid, but another token: the same rule for every holder
            locks._acquire(locks._backend(other), locks.day_key(DAY), "rerun-failed", "2026-08-21",
                           lambda: [], False, None)
        # the conditional create is what refuses: a plain IfNoneMatch PUT on the key is a 412
        with pytest.raises(Exception) as raised:
            s3.put_object(Bucket=s3_bucket, Key=key, Body=b"{}", IfNoneMatch="*")
        assert "PreconditionFailed" in str(raised.value)
    assert "Contents" not in s3.list_objects_v2(Bucket=s3_bucket, Prefix="prefix/locks/")
    # a stale lock (another host, an old heartbeat) is replaced with IfMatch its ETag
    stale = {"host": "elsewhere", "pid": 1, "command": "run-local", "started": "2026-08-21T10:02:00Z",
             "heartbeat": "2026-08-21T10:02:00Z", "token": "dead"}
    s3.put_object(Bucket=s3_bucket, Key=key, Body=json.dumps(stale).encode())
    with locks.day_lock(store, DAY, "rerun-failed") as held:
        assert json.loads(s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read())["token"] == held[0].held.holder["token"]


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_the_heartbeat_is_renewed_only_while_the_lock_is_ours(tmp_path, kind, request):
    if kind == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        store = open_store(f"s3://{bucket}")
    else:
        store = LocalStore(tmp_path / "data")
    with locks.day_lock(store, DAY, "run-local") as [lock]:
        backend = locks._backend(store)
        lock.held.holder["heartbeat"] = "2026-08-21T00:00:00Z"  # renew writes now's, whatever was there
        assert lock.renew()
        holder, version = backend.read(locks.day_key(DAY))
        assert holder["heartbeat"] > "2026-08-21T00:00:00Z" and version == lock.held.version
        # someone took it over (it looked stale to them): our renewal and our release leave theirs alone
        theirs = {**holder, "token": "theirs"}
        assert backend.replace(locks.day_key(DAY), json.dumps(theirs).encode(), version)
        assert not lock.renew()
    assert backend.read(locks.day_key(DAY))[0]["token"] == "theirs"


def killed_attempts_lock(store_root: Path, execution: str | None, batch_number: int = 3) -> dict:
    """The batch lock a deployed fetcher left when Lambda killed it (Sandbox.Timedout, out of memory): no
    release, its heartbeat seconds old, on a sandbox host that is not this one."""
    owner = {"owner": locks.batch_owner(execution, batch_number)} if execution else {}
    return fake_holder(store_root, locks.batch_key(DAY, batch_number), host="169.254.10.1", pid=8,
                       command="stock-data-fetcher", **owner)


def test_the_maps_retry_of_a_killed_batch_takes_its_lock_at_once(tmp_path):
    store = LocalStore(tmp_path / "data")
    killed_attempts_lock(store.root, "daily-2026-08-21")
    assert not locks.is_stale(json.loads((store.root / locks.batch_key(DAY, 3)).read_text()))  # 30 s after the kill
    with locks.batch_lock(store, DAY, 3, "stock-data-fetcher", owner=locks.batch_owner("daily-2026-08-21", 3)) as lock:
        mine = json.loads((store.root / locks.batch_key(DAY, 3)).read_text())
        assert mine["token"] == lock.held.holder["token"] and mine["owner"] == "daily-2026-08-21/batch-3"
    assert not (store.root / "locks").exists()


@pytest.mark.parametrize("taker", [locks.batch_owner("daily-2026-08-22", 3), locks.batch_owner("daily-2026-08-21", 4),
                                   None], ids=["another execution", "another batch's owner", "a local fetch-batch"])
def test_a_killed_batchs_lock_is_refused_to_any_other_owner_until_stale(tmp_path, taker):
    store = LocalStore(tmp_path / "data")
    killed_attempts_lock(store.root, "daily-2026-08-21")
    with pytest.raises(locks.LockHeld, match=r"2026-08-21 \(batch 3\) is being written by stock-data-fetcher"):
        with locks.batch_lock(store, DAY, 3, "fetch-batch", owner=taker):
            pass
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=locks.STALE_AFTER_SECONDS + 5)
    killed_attempts_lock(store.root, "daily-2026-08-21")
    fake_holder(store.root, locks.batch_key(DAY, 3), owner="daily-2026-08-21/batch-3",
                heartbeat=old.strftime("%Y-%m-%dT%H:%M:%SZ"))
    with locks.batch_lock(store, DAY, 3, "fetch-batch", owner=taker):  # stale: anyone takes it
        pass


def test_a_lock_without_an_owner_is_not_taken_by_an_owner(tmp_path):
    store = LocalStore(tmp_path / "data")
    killed_attempts_lock(store.root, None)  # a fetch-batch's lock: no owner to match
    with pytest.raises(locks.LockHeld):
        with locks.batch_lock(store, DAY, 3, "stock-data-fetcher", owner=locks.batch_owner("daily-2026-08-21", 3)):
            pass


def test_the_deployed_fetchers_retry_of_a_killed_attempt_fetches_the_batch(tmp_path, monkeypatch, fake_yahoo):
    """Through the Lambda path (the Map item carries $$.Execution.Name as "execution"): execution X's retry of
    batch 3 takes the lock X's killed attempt left and fetches; execution Y's item for batch 3 is refused."""
    from stockstream_cli.run import lambda_runtime

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "stock-data-fetcher")
    monkeypatch.setenv("STOCKSTREAM_STORE", str(tmp_path / "data"))
    settings = lambda_runtime.lambda_settings()
    killed_attempts_lock(tmp_path / "data", "X")
    item = {"symbols": ["BHP", "CBA"], "batchNumber": 3, "date": DAY.isoformat()}
    with pytest.raises(locks.LockHeld):
        lambda_runtime.fetch_event_batch({**item, "execution": "Y"}, settings)
    assert fake_yahoo.count(kind=None) == 0
    result = lambda_runtime.fetch_event_batch({**item, "execution": "X"}, settings)
    assert result["metadata"]["symbols_fetched"] == 2
    assert not (tmp_path / "data" / locks.batch_key(DAY, 3)).exists()  # released
