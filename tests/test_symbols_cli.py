"""`stockstream symbols` from the command line: options, exit codes, stdout, and what lands in the store."""

from __future__ import annotations

import json

import pytest

from asx_fake import (
    FAILURE_BODIES,
    MARKIT_SAMPLE,
    OLD_FORMAT_SAMPLE,
    PARTIAL_1130,
    ListServer,
    codes_in,
    make_codes,
    markit_csv,
)
from helpers import run_stockstream, runner
from stockstream_cli.sources.asx import parse_list
from stockstream_cli.cli import app

SAMPLE_CODES = sorted(codes_in(MARKIT_SAMPLE.read_bytes()))


def invoke(*args: str):
    return runner.invoke(app, ["symbols", *args])


def files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_json_document_is_exactly_the_contracts(tmp_path):
    store = tmp_path / "store"
    result = invoke("--from-file", str(MARKIT_SAMPLE), "--date", "2026-08-22", "--batch-size", "20",
                    "--store", str(store), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "statusCode": 200,
        "symbols": SAMPLE_CODES,
        "symbolBatches": [
            {"symbols": SAMPLE_CODES[:20], "batchNumber": 0},
            {"symbols": SAMPLE_CODES[20:40], "batchNumber": 1},
            {"symbols": SAMPLE_CODES[40:], "batchNumber": 2},
        ],
        "metadata": {"total_symbols": 42, "num_batches": 3, "s3_key": "symbols/2026-08-22-symbols.csv",
                     "changes": {"added": [], "removed": []}, "previous_key": None},
    }
    assert list(files(store)) == ["symbols/2026-08-22-symbols.csv"]


def test_human_summary_on_stdout_with_the_diff(tmp_path):
    store = tmp_path / "store"
    assert invoke("--from-file", str(OLD_FORMAT_SAMPLE), "--date", "2026-08-21", "--store", str(store)).exit_code == 0
    result = invoke("--from-file", str(MARKIT_SAMPLE), "--date", "2026-08-22", "--store", str(store))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "ASX list for 2026-08-22: 42 symbols in 1 batch of up to 100"
    assert lines[1] == f"written to {store}/symbols/2026-08-22-symbols.csv"
    assert lines[2].startswith("since symbols/2026-08-21-symbols.csv: ")
    old = {company.symbol for company in parse_list(OLD_FORMAT_SAMPLE.read_bytes()).companies}
    added, removed = sorted(set(SAMPLE_CODES) - old), sorted(old - set(SAMPLE_CODES))
    assert lines[2] == (f"since symbols/2026-08-21-symbols.csv: {len(added)} added ({', '.join(added[:10])}, ...), "
                        f"{len(removed)} removed ({', '.join(removed[:10])}, ...)")


def test_store_and_batch_size_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("STOCKSTREAM_STORE", str(tmp_path / "env-store"))
    monkeypatch.setenv("STOCKSTREAM_BATCH_SIZE", "10")
    result = invoke("--from-file", str(MARKIT_SAMPLE), "--date", "2026-08-22", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metadata"]["num_batches"] == 5
    assert (tmp_path / "env-store/symbols/2026-08-22-symbols.csv").is_file()


def test_source_url_from_a_local_server(tmp_path):
    with ListServer().answer((200, markit_csv(["BHP", "CBA", "14D"]))) as server:
        result = invoke("--source-url", server.url, "--date", "2026-08-22", "--store", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["symbols"] == ["14D", "BHP", "CBA"]


@pytest.mark.parametrize("name", sorted(FAILURE_BODIES))
def test_failure_bodies_exit_1_previous_list_byte_identical(tmp_path, name):
    store = tmp_path / "store"
    assert invoke("--from-file", str(MARKIT_SAMPLE), "--date", "2026-08-21", "--store", str(store)).exit_code == 0
    before = files(store)
    with ListServer().answer((200, FAILURE_BODIES[name].read_bytes(), "text/html")) as server:
        result = invoke("--source-url", server.url, "--date", "2026-08-22", "--store", str(store), "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    error = result.stderr.splitlines()[-1]  # the lines before are the retries' notes
    assert error.startswith(f"stockstream: error: the ASX source {server.url} answered with ")
    assert "not a CSV list" in error and error.endswith("(4 tries)")
    assert files(store) == before


def test_partial_list_after_a_full_one_exit_1_then_force(tmp_path):
    store = tmp_path / "store"
    full = tmp_path / "full.csv"
    full.write_bytes(markit_csv(codes_in(PARTIAL_1130.read_bytes()) + make_codes(708)))
    assert invoke("--from-file", str(full), "--date", "2026-08-21", "--store", str(store)).exit_code == 0
    before = files(store)

    result = invoke("--from-file", str(PARTIAL_1130), "--date", "2026-08-22", "--store", str(store))
    assert result.exit_code == 1
    assert "has 1,130 symbols but needs at least 1,783" in result.stderr and "--force" in result.stderr
    assert files(store) == before

    result = invoke("--from-file", str(PARTIAL_1130), "--date", "2026-08-22", "--store", str(store), "--force", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["metadata"]["total_symbols"] == 1130 and document["metadata"]["num_batches"] == 12
    assert document["metadata"]["changes"] == {"added": [], "removed": make_codes(708)}
    assert files(store)["symbols/2026-08-21-symbols.csv"] == before["symbols/2026-08-21-symbols.csv"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--source-url", "http://127.0.0.1:9/x", "--from-file", "f.csv"], "--source-url and --from-file cannot be used together"),
        (["--from-file", "no-such-file.csv"], "--from-file no-such-file.csv: no such file"),
        (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        (["--date", "22/08/2026"], "--date '22/08/2026' is not a date: use YYYY-MM-DD"),
        (["--date", "2026-02-30"], "is not a real date"),
        (["--source-url", "asx.com.au/list.csv"], "--source-url 'asx.com.au/list.csv' is not an http(s) URL"),
        (["--store", "gs://bucket"], "unknown scheme 'gs'"),
    ],
)
def test_bad_input_exit_2_one_line_nothing_written(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    if "--store" not in args:
        args = [*args, "--store", str(tmp_path / "store")]
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "store").exists()


def test_bad_input_in_a_real_process_exit_2_one_line_no_traceback(tmp_path):
    result = run_stockstream("symbols", "--from-file", str(tmp_path / "missing.csv"), "--store", str(tmp_path / "s"))
    assert result.returncode == 2
    assert result.stderr == f"stockstream: error: --from-file {tmp_path / 'missing.csv'}: no such file\n"
    assert result.stdout == "" and not (tmp_path / "s").exists()

    result = run_stockstream("symbols", "--source-url", "http://127.0.0.1:9/", "--from-file", str(MARKIT_SAMPLE),
                             "--store", str(tmp_path / "s"))
    assert result.returncode == 2
    assert result.stderr == "stockstream: error: --source-url and --from-file cannot be used together: choose one source\n"
    assert not (tmp_path / "s").exists()


def test_json_in_a_real_process_is_one_document_and_a_refusal_exits_1(tmp_path):
    store = tmp_path / "s"
    result = run_stockstream("symbols", "--from-file", str(MARKIT_SAMPLE), "--date", "2026-08-22",
                             "--store", str(store), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["metadata"]["total_symbols"] == 42

    result = run_stockstream("symbols", "--from-file", str(FAILURE_BODIES["bad_gateway"]), "--date", "2026-08-23",
                             "--store", str(store))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "not a CSV list: 'Bad Gateway'" in result.stderr
    assert sorted(files(store)) == ["symbols/2026-08-22-symbols.csv"]
