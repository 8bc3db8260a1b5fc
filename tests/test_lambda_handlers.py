"""The two Lambda handlers over the library: their JSON, their errors, their metrics, their settings.

The last test runs both handlers in a separate process from a non-editable install of the project (what
the image's `pip install .` puts there), with the Lambda's environment variables and an S3 store on moto.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from asx_fake import markit_csv, serving
from aws_fake import load_handler
from stockstream_cli.run import lambda_runtime
from stockstream_cli.errors import BatchFailed, InputError, SourceError

DAY = "2026-11-25"
CODES = ["AAA", "BBB", "CCC", "DDD", "EEE"]


@pytest.fixture
def lambda_env(monkeypatch, tmp_path):
    """What the deployed function's environment holds (deploy sets STOCKSTREAM_STORE), with a local store."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "stock-data-fetcher")
    monkeypatch.setenv("STOCKSTREAM_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("STOCKSTREAM_BATCH_SIZE", "2")
    return tmp_path / "store"


def _emf(captured: str) -> list[dict]:
    return [json.loads(line) for line in captured.splitlines() if line.startswith('{"_aws"')]


def test_symbol_updater_returns_the_batches_each_carrying_the_runs_date(lambda_env, monkeypatch):
    with serving(markit_csv(CODES)) as url:
        monkeypatch.setenv("STOCKSTREAM_SOURCE_URL", url)
        result = load_handler("asx_symbol_updater.handler")({"date": DAY}, None)
    assert result["date"] == DAY
    assert result["symbols"] == CODES
    assert result["symbolBatches"] == [
        {"symbols": ["AAA", "BBB"], "batchNumber": 0, "date": DAY},
        {"symbols": ["CCC", "DDD"], "batchNumber": 1, "date": DAY},
        {"symbols": ["EEE"], "batchNumber": 2, "date": DAY},
    ]
    assert result["metadata"]["total_symbols"] == 5 and result["metadata"]["num_batches"] == 3
    assert (lambda_env / "symbols" / f"{DAY}-symbols.csv").read_text().splitlines()[1].startswith("AAA,")


def test_symbol_updater_defaults_to_today_in_sydney(lambda_env, monkeypatch):
    from stockstream_cli.values import today_sydney

    with serving(markit_csv(CODES)) as url:
        monkeypatch.setenv("STOCKSTREAM_SOURCE_URL", url)
        result = load_handler("asx_symbol_updater.handler")({}, None)
    assert result["date"] == today_sydney().isoformat()
    assert {batch["date"] for batch in result["symbolBatches"]} == {result["date"]}


def test_symbol_updater_raises_when_it_cannot_produce_a_list(lambda_env, monkeypatch):
    with serving(b"<html><body>Request Rejected</body></html>", content_type="text/html") as url:
        monkeypatch.setenv("STOCKSTREAM_SOURCE_URL", url)
        with pytest.raises(SourceError):
            load_handler("asx_symbol_updater.handler")({"date": DAY}, None)
    assert not (lambda_env / "symbols").exists()


def test_fetcher_returns_its_result_when_some_symbols_failed(lambda_env, fake_yahoo, capsys):
    fake_yahoo.fault("BBB", "not_found")
    result = load_handler("stock_data_fetcher.handler")({"symbols": ["AAA", "BBB"], "batchNumber": 0, "date": DAY}, None)
    metadata = result["metadata"]
    assert (metadata["batch_number"], metadata["symbols_processed"], metadata["symbols_fetched"]) == (0, 2, 1)
    assert metadata["symbols_failed"] == ["BBB"] and metadata["failure_reasons"] == {"BBB": "not_found"}
    assert (lambda_env / "raw-data" / f"{DAY}-batch-0.parquet").is_file()
    assert json.loads((lambda_env / "runs" / DAY / "batch-0.json").read_text())["metadata"]["symbols_fetched"] == 1
    [metrics] = _emf(capsys.readouterr().out)
    assert metrics["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "StockStream"
    assert (metrics["SymbolsFetched"], metrics["SymbolsFailed"], metrics["BatchesProcessed"], metrics["BatchesFailed"]) == (1, 1, 1, 0)


def test_fetcher_raises_when_the_batch_failed(lambda_env, fake_yahoo, capsys):
    fake_yahoo.fault("AAA", "rate_limited").fault("BBB", "rate_limited")
    with pytest.raises(BatchFailed):
        load_handler("stock_data_fetcher.handler")({"symbols": ["AAA", "BBB"], "batchNumber": 0, "date": DAY}, None)
    [metrics] = _emf(capsys.readouterr().out)
    assert metrics["BatchesFailed"] == 1
    assert not (lambda_env / "raw-data").exists()


def test_fetcher_raises_an_error_the_state_machine_reports_when_yfinance_is_on_plain_requests(lambda_env, fake_yahoo,
                                                                                              monkeypatch):
    from yfinance import _http

    monkeypatch.setattr(_http, "HAS_CURL_CFFI", False)
    with pytest.raises(InputError, match="not using curl_cffi"):
        load_handler("stock_data_fetcher.handler")({"symbols": ["AAA"], "batchNumber": 0, "date": DAY}, None)
    assert fake_yahoo.count(kind=None) == 0 and not (lambda_env / "raw-data").exists()
    monkeypatch.setenv("STOCKSTREAM_ALLOW_PLAIN_REQUESTS", "1")
    result = load_handler("stock_data_fetcher.handler")({"symbols": ["AAA"], "batchNumber": 0, "date": DAY}, None)
    assert result["metadata"]["symbols_fetched"] == 1


@pytest.mark.parametrize("event", [{"batchNumber": 0}, {"date": DAY}, {"date": DAY, "batchNumber": "x"},
                                   {"date": "25/11/2026", "batchNumber": 0}, {"date": DAY, "batchNumber": 0, "symbols": ["BHP.AX"]}])
def test_fetcher_refuses_a_malformed_event(lambda_env, event):
    with pytest.raises(InputError):
        load_handler("stock_data_fetcher.handler")(event, None)


def test_lambda_settings_put_the_cache_under_tmp_and_need_a_store():
    environ = {"AWS_LAMBDA_FUNCTION_NAME": "f", "STOCKSTREAM_STORE": "s3://b", "STOCKSTREAM_DELAY": "0.5"}
    settings = lambda_runtime.lambda_settings(environ)
    assert (settings.cache_dir, settings.store, settings.delay) == ("/tmp/stockstream-cache", "s3://b", 0.5)
    assert lambda_runtime.lambda_settings({**environ, "STOCKSTREAM_CACHE_DIR": "/tmp/x"}).cache_dir == "/tmp/x"
    assert lambda_runtime.lambda_settings({"STOCKSTREAM_STORE": "s3://b"}).cache_dir is None  # not on Lambda
    with pytest.raises(InputError, match="STOCKSTREAM_STORE"):
        lambda_runtime.lambda_settings({"AWS_LAMBDA_FUNCTION_NAME": "f"})


def test_emf_line_is_one_json_record_cloudwatch_understands():
    record = json.loads(lambda_runtime.emf_line({"SymbolsFetched": 98, "SymbolsFailed": 2}, timestamp_ms=1000))
    assert record["_aws"] == {
        "Timestamp": 1000,
        "CloudWatchMetrics": [{"Namespace": "StockStream", "Dimensions": [[]],
                               "Metrics": [{"Name": "SymbolsFetched", "Unit": "Count"},
                                           {"Name": "SymbolsFailed", "Unit": "Count"}]}],
    }
    assert (record["SymbolsFetched"], record["SymbolsFailed"]) == (98, 2)


def test_handlers_import_no_cli_libraries():
    code = ("import sys; sys.path.insert(0, 'lambda_src'); import asx_symbol_updater, stock_data_fetcher; "
            "print(sorted(m for m in ('typer', 'rich', 'click') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


HANDLER_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path[:0] = [sys.argv[1], sys.argv[2]]        # the image's task root (the handlers), then the fake Yahoo
    import stockstream_cli, asx_symbol_updater, stock_data_fetcher
    from yahoo_fake import FakeYahoo
    with FakeYahoo().installed():
        symbols = asx_symbol_updater.handler({"date": "2026-11-25"}, None)
        results = [stock_data_fetcher.handler(item, None) for item in symbols["symbolBatches"]]
    print(json.dumps({"package": stockstream_cli.__file__, "symbols": symbols,
                      "fetched": [r["metadata"]["symbols_fetched"] for r in results]}))
""")


def test_both_handlers_run_from_the_installed_project_with_the_lambdas_environment(s3_bucket, tmp_path):
    """What the image does: `pip install .`, the handlers in the task root, the function's variables."""
    repo = Path(__file__).resolve().parent.parent
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
                              "--target", str(site), str(repo)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-2000:]
    task_root = tmp_path / "task"
    task_root.mkdir()
    for name in ("asx_symbol_updater.py", "stock_data_fetcher.py"):  # as the Dockerfile copies them
        (task_root / name).write_bytes((site / "stockstream_cli" / "lambda_src" / name).read_bytes())
    assert (site / "stockstream_cli" / "infra" / "asl.json").is_file()
    assert (site / "stockstream_cli" / "infra" / "Dockerfile").is_file()
    bundled_lock = site / "stockstream_cli" / "infra" / "requirements.lock.txt"
    assert bundled_lock.read_bytes() == (repo / "infra" / "requirements.lock.txt").read_bytes()
    (tmp_path / "handlers.py").write_text(HANDLER_SCRIPT)
    with serving(markit_csv(CODES)) as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKSTREAM_")}
        env.update({
            "PYTHONPATH": str(site),
            "AWS_LAMBDA_FUNCTION_NAME": "stock-data-fetcher",
            "AWS_REGION": "ap-southeast-2",
            "STOCKSTREAM_STORE": f"s3://{s3_bucket}",
            "STOCKSTREAM_SOURCE_URL": url,
            "STOCKSTREAM_BATCH_SIZE": "3",
            "STOCKSTREAM_DELAY": "0",
            "STOCKSTREAM_RETRY_WAIT": "0",
        })
        env.pop("STOCKSTREAM_CACHE_DIR", None)
        run = subprocess.run([sys.executable, str(tmp_path / "handlers.py"), str(task_root),
                              str(Path(__file__).parent)], capture_output=True, text=True, env=env, cwd=tmp_path,
                             timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["package"].startswith(str(site))  # the installed copy, not the checkout
    assert [b["batchNumber"] for b in out["symbols"]["symbolBatches"]] == [0, 1]
    assert out["fetched"] == [3, 2]
    import boto3

    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]}
    assert keys == {f"symbols/{DAY}-symbols.csv", f"raw-data/{DAY}-batch-0.parquet", f"raw-data/{DAY}-batch-1.parquet",
                    f"runs/{DAY}/batch-0.json", f"runs/{DAY}/batch-1.json"}
    assert Path("/tmp/stockstream-cache").is_dir()  # the default cache folder on Lambda
