"""Worker processes (stockstream_cli/run/workers.py): how many, the rate budget shared across processes, and a
run-local spread over processes storing exactly what a run on threads stores, a dead worker failing only
the batches it held."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from asx_fake import asx_codes, write_markit_csv
from clock import Clock
from pipeline_support import clean_run_rows, stored_rows
from stockstream_cli.fetch import pacing
from stockstream_cli.run import rerun
from stockstream_cli.dataset import summary as run_summary
from stockstream_cli.run import workers
from stockstream_cli.cli import exit_code_for
from stockstream_cli.settings import Settings
from stockstream_cli.dataset.store import LocalStore

DAY = dt.date(2026, 8, 21)
SUPPORT = Path(__file__).resolve().parent / "pipeline_support.py"
SYMBOLS, BATCH_SIZE = 60, 10


# ---------------------------------------------------------------------------------------------- how many


@pytest.mark.parametrize(
    ("typed", "cores", "expected"),
    [
        ({}, 8, 1),  # the defaults: 10 workers pausing 2 s = 5 requests/s, one process is plenty
        ({"rate": 100}, 8, 4),  # 100 requests/s at 30 per process
        ({"rate": 100}, 2, 2),  # ... but never more than the cores
        ({"rate": 60}, 8, 2),
        ({"rate": 30}, 8, 1),
        ({"delay": 0}, 8, 1),  # adaptive with no delay: Yahoo's limit sets the pace, far below one process's
        ({"delay": 0, "processes": 2}, 8, 2),  # ... unless asked for
        ({"delay": 0, "concurrency": 1}, 8, 1),  # never more processes than batches at once
        ({"delay": 0.2, "concurrency": 10}, 8, 2),  # 10 workers x 5 requests/s
        ({"rate": 100, "delay": 2}, 8, 1),  # the lower bound wins: 10 workers pausing 2 s
        ({"processes": 3, "delay": 2}, 8, 3),  # --processes decides
        ({"processes": 16, "concurrency": 4}, 8, 4),
    ],
)
def test_planned_processes(monkeypatch, typed, cores, expected):
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    settings = Settings.resolve(environ={}, **typed)  # as typed: --rate alone drops the --delay
    assert workers.planned_processes(settings) == expected


def test_planned_processes_never_exceed_the_jobs():
    settings = Settings.resolve(environ={}, processes=4)
    assert workers.planned_processes(settings, jobs=2) == 2
    assert workers.planned_processes(settings, jobs=0) == 1


def test_processes_setting_is_checked():
    from stockstream_cli.errors import InputError

    with pytest.raises(InputError, match="^processes must be at least 1, got 0"):
        Settings.resolve(processes=0)
    assert Settings.resolve(environ={"STOCKSTREAM_PROCESSES": "3"}).processes == 3


def test_thread_shares_spread_the_concurrency():
    assert workers.thread_shares(10, 3) == [4, 3, 3]
    assert workers.thread_shares(10, 2) == [5, 5]
    assert workers.thread_shares(2, 2) == [1, 1]


def test_only_stores_a_worker_can_open_again_go_to_processes(tmp_path):
    from pipeline_support import FailingPutStore

    local = LocalStore(tmp_path)
    assert workers.reopenable(local) == (str(tmp_path), None, None)
    assert workers.reopenable(FailingPutStore(local, "x")) is None  # a wrapper stays on threads


# ---------------------------------------------------------------------------------------------- the budget


def test_remote_threads_draw_from_one_budget_in_the_parent():
    clock = Clock(start=1000.0)  # stands still unless a test moves it
    budget = pacing.RateBudget(10, clock=clock, sleep=lambda s: pytest.fail("the service never sleeps"))
    service = workers.BudgetService(budget)
    waits: dict[str, list[float]] = {"a": [], "b": []}
    try:
        remote = workers.RemoteBudget(service.address, service.authkey, sleep=lambda s: None)

        def draw(name: str) -> None:
            for _ in range(3):
                waits[name].append(remote.acquire())

        threads = [threading.Thread(target=draw, args=(name,)) for name in waits]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        service.close()
    # six requests at 10/s with the clock standing still: slots 0, 0.102, ..., 0.51 s away, whoever asked
    slot = (1 + pacing.MARGIN) / 10
    assert sorted(waits["a"] + waits["b"]) == pytest.approx([k * slot for k in range(6)])
    assert budget.requests == 6


def test_a_429_reported_by_a_worker_backs_the_shared_budget_off():
    clock = Clock(start=1000.0)  # stands still unless a test moves it
    budget = pacing.RateBudget(100, clock=clock)
    service = workers.BudgetService(budget)
    try:
        remote = workers.RemoteBudget(service.address, service.authkey, sleep=lambda s: None)
        for _ in range(20):
            remote.acquire()
            clock.now += 0.01
            remote.on_success()
        remote.on_rate_limited()
        remote.acquire()  # a round trip: the one-way reports before it have been handled
    finally:
        service.close()
    assert (budget.rate_limited, budget.decreases) == (1, 1)
    assert budget.cap < 100


def test_a_client_without_the_key_is_refused_and_the_service_goes_on():
    from multiprocessing import AuthenticationError

    budget = pacing.RateBudget(None)
    service = workers.BudgetService(budget)
    try:
        with pytest.raises(AuthenticationError):
            workers.RemoteBudget(service.address, b"wrong key", sleep=lambda s: None).acquire()
        assert workers.RemoteBudget(service.address, service.authkey, sleep=lambda s: None).acquire() == 0
    finally:
        service.close()
    assert not os.path.exists(service.address)


def test_close_while_the_service_is_between_two_accepts_returns_and_ends_the_service(monkeypatch):
    """The race: close() sets _closed after accept() returned and before the thread looks at it again. Here the
    thread is held exactly there (a Listener whose accept pauses after a connection came in) until close() has
    set _closed; close() must then neither wait for an accept that never comes nor leave the thread running."""
    from multiprocessing import connection

    accepted, resume = threading.Event(), threading.Event()

    class PausingListener(connection.Listener):
        def accept(self):
            client = super().accept()
            if not accepted.is_set():
                accepted.set()
                resume.wait()
            return client

    monkeypatch.setattr(connection, "Listener", PausingListener)
    service = workers.BudgetService(pacing.RateBudget(None))
    client = connection.Client(service.address, family="AF_UNIX", authkey=service.authkey)
    assert accepted.wait(30)  # the thread now holds an accepted connection, before its look at _closed
    closer = threading.Thread(target=service.close, daemon=True)
    closer.start()
    assert service._closed.wait(30)
    resume.set()
    closer.join(30)  # bounds a failure only: a fixed close() returns at once
    assert not closer.is_alive(), "close() waits for an accept the service thread will never make"
    service._thread.join(30)
    assert not service._thread.is_alive()
    assert not os.path.exists(service.address)
    client.close()


def test_close_while_a_client_is_mid_handshake_returns_and_the_service_ends_when_it_hangs_up():
    import socket

    service = workers.BudgetService(pacing.RateBudget(None))
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.connect(service.address)  # connected, never answers the challenge: the accept thread waits on it
    assert silent.recv(1)  # the challenge has been sent: the thread is in the handshake
    service.close()
    silent.close()
    service._thread.join(30)
    assert not service._thread.is_alive()


# ---------------------------------------------------------------------------------------------- whole runs


@pytest.fixture(scope="module")
def asx_list(tmp_path_factory):
    return write_markit_csv(tmp_path_factory.mktemp("list") / "asx.csv", asx_codes(SYMBOLS))


@pytest.fixture(scope="module")
def clean_rows(asx_list, tmp_path_factory):
    """What a run on threads stores (fetch_timestamp left out)."""
    return clean_run_rows(tmp_path_factory.mktemp("clean"), DAY, asx_list, BATCH_SIZE)


def run_local_in_processes(tmp_path, asx_list, data, *extra, **env):
    """`stockstream run-local` with its batches in 2 worker processes (one thread each), Yahoo faked in each."""
    environment = dict(os.environ, PYTHONUNBUFFERED="1", **env)
    return subprocess.run(
        [sys.executable, str(SUPPORT), "run-local", "--date", DAY.isoformat(), "--from-file", str(asx_list),
         "--store", str(data), "--batch-size", str(BATCH_SIZE), "--concurrency", "2", "--processes", "2",
         "--json", *extra],
        env=environment, capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )


def test_run_local_in_worker_processes_stores_what_a_run_on_threads_stores(tmp_path, asx_list, clean_rows):
    data = tmp_path / "data"
    failing = asx_codes(SYMBOLS)[2 * BATCH_SIZE + 5]
    done = run_local_in_processes(tmp_path, asx_list, data,
                                  STOCKSTREAM_FAKE_FAULTS=json.dumps({failing: ["timeout", None]}))

    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    summary = json.loads(done.stdout)
    assert (summary["total_symbols"], summary["num_batches"], summary["batches_failed"]) == (SYMBOLS, 6, []), (
        summary.get("batch_errors"), done.stderr[-2000:])  # seen once under heavy load: say why a batch failed
    assert (summary["symbols_fetched"], summary["symbols_failed"]) == (SYMBOLS - 1, [failing])
    run = json.loads((data / "runs" / DAY.isoformat() / "run.json").read_text())
    assert run["failure_reasons"] == {failing: "timeout"}
    expected = clean_rows.filter(clean_rows["symbol"] != failing)
    assert stored_rows(data, DAY).equals(expected)


def test_a_worker_that_dies_fails_the_batch_it_held_and_the_other_worker_finishes_the_rest(
        tmp_path, asx_list, clean_rows, fake_yahoo):
    data = tmp_path / "data"
    victim = asx_codes(SYMBOLS)[BATCH_SIZE + 3]  # in batch 1
    done = run_local_in_processes(tmp_path, asx_list, data, STOCKSTREAM_FAKE_CRASH=victim)

    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    summary = json.loads(done.stdout)
    assert summary["batches_failed"] == [1]
    assert summary["symbols_fetched"] == SYMBOLS - BATCH_SIZE
    run = json.loads((data / "runs" / DAY.isoformat() / "run.json").read_text())
    assert "worker process running it exited (exit code 9)" in run["batch_errors"]["1"]
    assert not (data / "raw-data" / f"{DAY.isoformat()}-batch-1.parquet").exists()

    healed = rerun.rerun_failed(LocalStore(data), DAY, Settings.resolve())
    assert exit_code_for(run_summary.outcome(healed)) == 0
    assert fake_yahoo.chart_requests() == BATCH_SIZE  # only the lost batch
    assert stored_rows(data, DAY).equals(clean_rows)


def test_yahoo_unreachable_in_a_worker_process_stops_the_whole_run_in_one_line(tmp_path, asx_list):
    data = tmp_path / "data"
    done = run_local_in_processes(tmp_path, asx_list, data, STOCKSTREAM_FAKE_UNREACHABLE="refused")
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "stockstream: error: Yahoo Finance cannot be reached: Failed to connect to query2.finance.yahoo.com port 443 "
        "after 2 ms: Could not connect to server; check the network"]
    run = json.loads((data / "runs" / DAY.isoformat() / "run.json").read_text())
    assert run["error"].startswith("Yahoo Finance cannot be reached") and run["symbols_fetched"] == 0
    assert not (data / "raw-data").exists()
