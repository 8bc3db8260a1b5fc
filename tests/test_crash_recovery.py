"""A run killed part way (SIGKILL) or stopped with Ctrl-C (SIGINT) loses nothing rerun-failed cannot restore."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from asx_fake import asx_codes, write_markit_csv
from pipeline_support import clean_run_rows, stored_rows
from stockstream_cli.dataset import locks
from stockstream_cli.run import rerun
from stockstream_cli.dataset import summary as run_summary
from stockstream_cli.settings import Settings
from stockstream_cli.dataset.store import LocalStore
from stockstream_cli.cli import exit_code_for

DAY = dt.date(2026, 8, 21)
SUPPORT = Path(__file__).resolve().parent / "pipeline_support.py"
SYMBOLS, BATCH_SIZE = 150, 10
BATCHES = SYMBOLS // BATCH_SIZE


def start_run(tmp_path, list_path, data, processes=1, *options, **fake):
    """run-local in a real process, Yahoo faked there with some latency so the run takes a few seconds.

    processes 2: the batches run in two worker processes (their fake Yahoo: tests/pipeline_support.py);
    every process of the run carries STOCKSTREAM_TEST_RUN=tmp_path in its environment (see run_pids).
    """
    env = dict(os.environ, STOCKSTREAM_FAKE_LATENCY="0.01", PYTHONUNBUFFERED="1",
               STOCKSTREAM_PROCESSES=str(processes), STOCKSTREAM_TEST_RUN=str(tmp_path), **fake)
    return subprocess.Popen(
        [sys.executable, str(SUPPORT), "run-local", "--date", DAY.isoformat(), "--from-file", str(list_path),
         "--store", str(data), "--batch-size", str(BATCH_SIZE), "--concurrency", "2", *options],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )


@pytest.fixture
def run_process():
    """Holds the run's process; kills it whatever the test's outcome, so no run outlives its test."""
    processes = []
    yield processes.append
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.communicate()


def run_pids(tmp_path) -> list[int]:
    """The processes still alive of the run started in tmp_path (the parent and its workers)."""
    marker = f"STOCKSTREAM_TEST_RUN={tmp_path}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if marker in environ and state != "Z":
                pids.append(int(entry.name))
    return pids


def wait_until_gone(tmp_path, timeout: float = 30) -> None:
    """Block until no process of the run is left (workers exit on their own once the parent is gone)."""
    deadline = time.monotonic() + timeout
    while run_pids(tmp_path):
        if time.monotonic() > deadline:
            pytest.fail(f"processes of the run outlived it: {run_pids(tmp_path)}")
        time.sleep(0.02)


def wait_for_manifests(process, data: Path, count: int, timeout: float = 90) -> list[Path]:
    """Block until `count` batches are done (the process is watched, not slept on a configured wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = sorted((data / "runs" / DAY.isoformat()).glob("batch-*.json"))
        if len(done) >= count:
            return done
        if process.poll() is not None:
            pytest.fail(f"run ended before {count} batches: {process.communicate()}")
        time.sleep(0.02)
    process.kill()
    pytest.fail("the run made no progress")


@pytest.fixture(scope="module")
def asx_list(tmp_path_factory):
    return write_markit_csv(tmp_path_factory.mktemp("list") / "asx.csv", asx_codes(SYMBOLS))


@pytest.fixture(scope="module")
def clean_rows(asx_list, tmp_path_factory):
    """What a run without faults or interruptions stores (fetch_timestamp left out)."""
    return clean_run_rows(tmp_path_factory.mktemp("clean"), DAY, asx_list, BATCH_SIZE)


def visible_files(data: Path) -> list[Path]:
    return [p for p in sorted(data.rglob("*")) if p.is_file() and not p.name.startswith(".")]


@pytest.mark.parametrize("processes", [1, 2])
def test_sigkill_part_way_then_rerun_failed_restores_a_clean_run(tmp_path, asx_list, clean_rows, fake_yahoo,
                                                                  run_process, processes):
    data = tmp_path / "data"
    process = start_run(tmp_path, asx_list, data, processes)
    run_process(process)
    wait_for_manifests(process, data, 3)
    assert process.poll() is None, "the run finished before it could be killed"
    if processes > 1:
        assert len(run_pids(tmp_path)) >= 1 + processes  # the parent, its workers (and multiprocessing's tracker)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    wait_until_gone(tmp_path)  # no orphaned worker goes on fetching
    done_when_killed = len(list((data / "runs" / DAY.isoformat()).glob("batch-*.json")))
    assert 3 <= done_when_killed < BATCHES
    assert not (data / "runs" / DAY.isoformat() / "run.json").exists()

    left = json.loads((data / locks.day_key(DAY)).read_text())  # the killed run's day lock, never released
    assert left["pid"] == process.pid and locks.is_stale(left)

    fake_yahoo.reset_counts()
    healed = rerun.rerun_failed(LocalStore(data), DAY, Settings.resolve())  # the stale day lock taken over
    assert not (data / "locks").exists()
    assert exit_code_for(run_summary.outcome(healed)) == 0
    assert (healed["symbols_fetched"], healed["num_batches"], healed["batches_failed"]) == (SYMBOLS, BATCHES, [])
    assert fake_yahoo.chart_requests() == SYMBOLS - BATCH_SIZE * done_when_killed  # only batches with no result

    assert stored_rows(data, DAY).equals(clean_rows)
    for path in visible_files(data):
        if path.suffix == ".parquet":
            assert pl.read_parquet(path).height > 0
        elif path.suffix == ".json":
            json.loads(path.read_text())
        else:
            assert pl.read_csv(path).height == SYMBOLS


@pytest.mark.parametrize("processes", [1, 2])
def test_ctrl_c_stops_promptly_keeps_finished_batches_and_names_rerun_failed(tmp_path, asx_list, clean_rows,
                                                                            fake_yahoo, run_process, processes):
    data = tmp_path / "data"
    process = start_run(tmp_path, asx_list, data, processes)
    run_process(process)
    wait_for_manifests(process, data, 2)
    assert process.poll() is None
    interrupted_at = time.monotonic()
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    stopped_in = time.monotonic() - interrupted_at

    assert process.returncode == 130, stderr
    assert "stockstream rerun-failed --date 2026-08-21" in stderr
    assert "Traceback" not in stderr
    assert stdout == ""
    assert stopped_in < 5, f"took {stopped_in:.1f} s to stop"
    assert run_pids(tmp_path) == [], "a worker process outlived the run"
    assert not [p for p in data.rglob("*") if p.name.startswith(".")], "a temporary file was left behind"

    manifests = sorted((data / "runs" / DAY.isoformat()).glob("batch-*.json"))
    assert 2 <= len(manifests) < BATCHES
    complete = 0
    for manifest in manifests:  # a batch in flight keeps what it fetched, the rest recorded as interrupted
        number = manifest.stem.split("-")[1]
        metadata = json.loads(manifest.read_text())["metadata"]
        assert set(metadata["failure_reasons"].values()) <= {"interrupted"}
        complete += not metadata["failure_reasons"]
        assert pl.read_parquet(data / "raw-data" / f"2026-08-21-batch-{number}.parquet").height == \
            metadata["symbols_fetched"] * 5
    run = json.loads((data / "runs" / DAY.isoformat() / "run.json").read_text())
    assert run["interrupted"] is True and run["batches_succeeded"] == len(manifests) and complete >= 2

    healed = rerun.rerun_failed(LocalStore(data), DAY, Settings.resolve())
    assert exit_code_for(run_summary.outcome(healed)) == 0 and healed["symbols_fetched"] == SYMBOLS
    assert stored_rows(data, DAY).equals(clean_rows)


@pytest.mark.parametrize("processes", [1, 2])
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_after_a_stop_the_message_run_json_status_and_the_stored_files_agree(tmp_path, asx_list, fake_yahoo,
                                                                          run_process, stop, processes):
    """Issue 24 item 4: a stop (Ctrl-C, or SIGTERM as Ctrl-C) part way; batch 2 is cut short for sure (its 5th
    symbol times out forever, so the batch waits in its first retry's backoff, at least 15 s, with 4 symbols
    fetched when the stop comes: the stop ends that wait)."""
    codes = asx_codes(SYMBOLS)
    stuck = codes[2 * BATCH_SIZE + 4]
    data = tmp_path / "data"
    process = start_run(tmp_path, asx_list, data, processes, "--retry-wait", "30",
                        STOCKSTREAM_FAKE_FAULTS=json.dumps({stuck: ["timeout", None]}))
    run_process(process)
    wait_for_manifests(process, data, 3)  # batches 0, 1 and 3 at least: batch 2 is waiting on `stuck`
    assert process.poll() is None
    process.send_signal(stop)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and stdout == ""

    # what is stored
    day_runs = data / "runs" / DAY.isoformat()
    records = {int(p.stem.split("-")[1]): json.loads(p.read_text())["metadata"] for p in day_runs.glob("batch-*.json")}
    stored_symbols = 0
    for number, metadata in records.items():
        rows = pl.read_parquet(data / "raw-data" / f"{DAY.isoformat()}-batch-{number}.parquet")
        assert rows["symbol"].n_unique() == metadata["symbols_fetched"] == rows.height // 5
        stored_symbols += metadata["symbols_fetched"]
    cut_short = records[2]
    assert cut_short["symbols_fetched"] == 4 and set(cut_short["failure_reasons"]) == set(codes[24:30])
    interrupted = {symbol: detail for metadata in records.values()
                   for symbol, detail in metadata["failure_details"].items()}
    assert set(interrupted) >= set(codes[24:30])
    assert set(interrupted.values()) == {"not fetched: the run was interrupted (Ctrl-C or SIGTERM)"}
    assert all(reason == "interrupted" for m in records.values() for reason in m["failure_reasons"].values())
    without_result = sorted(set(range(BATCHES)) - set(records))

    # run.json
    run = json.loads((day_runs / "run.json").read_text())
    assert run["interrupted"] is True
    assert (run["batches_succeeded"], run["batches_failed"]) == (len(records), without_result)
    assert run["symbols_fetched"] == stored_symbols
    assert run["total_symbols"] == SYMBOLS == run["symbols_fetched"] + len(run["symbols_failed"])

    # the message
    message = [line for line in stderr.splitlines() if line.startswith("stockstream: error: interrupted")]
    assert message == [
        f"stockstream: error: interrupted: {stored_symbols} of {SYMBOLS} symbols of {DAY.isoformat()} are stored, "
        f"in {len(records)} of {BATCHES} batches, {len(interrupted)} of their symbols recorded as interrupted; "
        f"run `stockstream rerun-failed --date {DAY.isoformat()} --store {data}` to fetch the rest"], stderr

    # status
    shown = subprocess.run([sys.executable, "-m", "stockstream_cli", "status", "--date", DAY.isoformat(),
                            "--store", str(data), "--json"], capture_output=True, text=True, cwd=tmp_path)
    status = json.loads(shown.stdout)
    assert status["batches_done"] == sorted(records) and status["batches_missing"] == without_result
    assert status["symbols_fetched"] == stored_symbols
    assert status["failed_by_reason"]["interrupted"] == sorted(interrupted)
    assert status["run"]["outcome"] == "interrupted"
