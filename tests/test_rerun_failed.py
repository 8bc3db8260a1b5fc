"""`stockstream rerun-failed`: heals exactly what failed, leaves the rest byte for byte, and is idempotent."""

from __future__ import annotations

import datetime as dt
import json


from asx_fake import asx_codes, write_markit_csv
from pipeline_support import FailingPutStore, store_files, stored_rows
from helpers import runner
from stockstream_cli.dataset import layout
from stockstream_cli.run import local
from stockstream_cli.cli import app
from stockstream_cli.settings import Settings
from stockstream_cli.dataset.store import LocalStore, open_store

DAY = dt.date(2026, 8, 21)


def rerun_cli(store, *extra):
    return runner.invoke(app, ["rerun-failed", "--date", DAY.isoformat(), "--store", str(store), *extra])


def clean_rows(tmp_path, list_path, fake_yahoo, *, keep_faults=()):
    """What a fault-free run stores (permanent faults in `keep_faults` kept)."""
    saved = {code: faults for code, faults in fake_yahoo._faults.items()}
    fake_yahoo._faults.clear()
    for code in keep_faults:
        fake_yahoo.fault(code, "not_found")
    store = tmp_path / "clean"
    local.run_local(LocalStore(store), DAY, Settings.resolve(batch_size=25),
                       source=local.asx_source(from_file=str(list_path)))
    fake_yahoo._faults.clear()
    fake_yahoo._faults.update(saved)
    return stored_rows(store, DAY)


def test_rerun_heals_exactly_the_failed_symbols_and_batches(tmp_path, fake_yahoo):
    codes = asx_codes(150)
    list_path = write_markit_csv(tmp_path / "asx.csv", codes)
    expected = clean_rows(tmp_path, list_path, fake_yahoo, keep_faults=[codes[5]])
    data = tmp_path / "data"

    # the run: a permanent not_found, retryable failures in batches 1 and 4, batch 3 cannot be written
    fake_yahoo.fault(codes[5], "not_found")
    retryable = {codes[30]: "rate_limited", codes[31]: "timeout", codes[110]: "malformed"}
    for code, kind in retryable.items():
        fake_yahoo.fault(code, kind)
    failing = FailingPutStore(LocalStore(data), layout.batch_data_key(DAY, 3), times=3)
    first = local.run_local(failing, DAY, Settings.resolve(batch_size=25),
                               source=local.asx_source(from_file=str(list_path)))
    assert first["batches_failed"] == [3]
    assert first["failure_reasons"] == {codes[5]: "not_found", codes[30]: "rate_limited", codes[31]: "timeout",
                                        codes[110]: "error"}
    before = store_files(data)

    # Yahoo recovers (the delisted symbol stays delisted)
    fake_yahoo._faults.clear()
    fake_yahoo.fault(codes[5], "not_found")
    fake_yahoo.reset_counts()
    result = rerun_cli(data, "--json")

    assert result.exit_code == 3, result.output  # the not_found symbol is still failed
    summary = json.loads(result.stdout)
    assert summary["symbols_failed"] == [codes[5]] and summary["batches_failed"] == []
    assert (summary["symbols_fetched"], summary["batches_succeeded"]) == (149, 6)
    asked = {ticker.removesuffix(".AX") for ticker in fake_yahoo.per_ticker()}
    assert asked == set(retryable) | set(codes[75:100])
    assert all(count == 1 for count in fake_yahoo.per_ticker().values())

    after = store_files(data)
    untouched = [f"raw-data/2026-08-21-batch-{n}.parquet" for n in (0, 2, 5)] + \
                [f"runs/2026-08-21/batch-{n}.json" for n in (0, 2, 5)] + ["symbols/2026-08-21-symbols.csv"]
    for name in untouched:
        assert after[name] == before[name], f"{name} changed"
    for name in ["raw-data/2026-08-21-batch-1.parquet", "raw-data/2026-08-21-batch-4.parquet",
                 "runs/2026-08-21/run.json"]:
        assert after[name][0] != before[name][0]
    assert "raw-data/2026-08-21-batch-3.parquet" in after
    assert not [name for name in after if "/." in name or name.startswith(".")]

    healed = stored_rows(data, DAY)
    assert healed.equals(expected)
    manifest = json.loads(after["runs/2026-08-21/batch-1.json"][0])
    assert manifest["metadata"]["symbols_failed"] == [] and manifest["metadata"]["symbols_fetched"] == 25

    # a second call: nothing to fetch, no file changes (not even run.json)
    fake_yahoo.reset_counts()
    again = rerun_cli(data, "--json")
    assert again.exit_code == 3
    assert json.loads(again.stdout)["symbols_failed"] == [codes[5]]
    assert fake_yahoo.count(kind=None) == 0
    assert store_files(data) == after


def test_rerun_all_retries_not_found_and_no_data(tmp_path, fake_yahoo):
    codes = asx_codes(30)
    list_path = write_markit_csv(tmp_path / "asx.csv", codes)
    data = tmp_path / "data"
    fake_yahoo.fault(codes[0], "not_found").fault(codes[1], "empty")
    first = local.run_local(LocalStore(data), DAY, Settings.resolve(), source=local.asx_source(from_file=str(list_path)))
    assert first["symbols_failed"] == codes[:2]
    fake_yahoo._faults.clear()
    fake_yahoo.reset_counts()

    plain = rerun_cli(data)
    assert plain.exit_code == 3
    assert fake_yahoo.chart_requests() == 0
    assert "--all" in plain.stdout

    healed = rerun_cli(data, "--all", "--json")
    assert healed.exit_code == 0, healed.output
    assert json.loads(healed.stdout)["symbols_fetched"] == 30
    assert fake_yahoo.per_ticker() == {f"{codes[0]}.AX": 1, f"{codes[1]}.AX": 1}
    assert json.loads((data / "runs/2026-08-21/run.json").read_text())["command"] == "rerun-failed"


def test_rerun_when_run_json_is_missing_writes_it_and_nothing_else(tmp_path, fake_yahoo):
    codes = asx_codes(20)
    list_path = write_markit_csv(tmp_path / "asx.csv", codes)
    data = tmp_path / "data"
    local.run_local(LocalStore(data), DAY, Settings.resolve(), source=local.asx_source(from_file=str(list_path)))
    (data / "runs/2026-08-21/run.json").unlink()
    before = store_files(data)
    result = rerun_cli(data, "--json")
    assert result.exit_code == 0
    after = store_files(data)
    assert {k: v for k, v in after.items() if not k.endswith("run.json")} == before
    assert json.loads(after["runs/2026-08-21/run.json"][0])["symbols_fetched"] == 20


def test_rerun_without_a_list_for_the_day_exits_2(tmp_path):
    result = rerun_cli(tmp_path / "data")
    assert result.exit_code == 2
    assert "no ASX list for 2026-08-21" in result.stderr
    assert not (tmp_path / "data").exists()


def test_rerun_failed_on_an_s3_store(s3_bucket, tmp_path, fake_yahoo):
    codes = asx_codes(40)
    list_path = write_markit_csv(tmp_path / "asx.csv", codes)
    uri = f"s3://{s3_bucket}/prefix"
    fake_yahoo.fault(codes[7], "rate_limited").fault(codes[33], "timeout")
    first = runner.invoke(app, ["run-local", "--date", DAY.isoformat(), "--from-file", str(list_path),
                                "--store", uri, "--batch-size", "20", "--json"])
    assert first.exit_code == 3, first.output
    assert json.loads(first.stdout)["symbols_failed"] == [codes[7], codes[33]]
    fake_yahoo._faults.clear()
    fake_yahoo.reset_counts()

    healed = rerun_cli(uri, "--json")
    assert healed.exit_code == 0, healed.output
    assert json.loads(healed.stdout)["symbols_fetched"] == 40
    assert fake_yahoo.chart_requests() == 2
    store = open_store(uri)
    assert sorted(store.list("raw-data/")) == [f"raw-data/2026-08-21-batch-{n}.parquet" for n in (0, 1)]

    before = s3_objects(s3_bucket)
    second = rerun_cli(uri, "--json")
    assert second.exit_code == 0
    assert fake_yahoo.chart_requests() == 2
    assert s3_objects(s3_bucket) == before


def s3_objects(bucket):
    """{key: (ETag, LastModified, body)} of every object: a rewrite changes at least the body or the time."""
    import boto3

    client = boto3.client("s3", region_name="ap-southeast-2")
    listing = client.list_objects_v2(Bucket=bucket)["Contents"]
    return {o["Key"]: (o["ETag"], o["LastModified"], client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
            for o in listing}


def test_rerun_after_the_month_was_compacted_fetches_only_what_failed(tmp_path, fake_yahoo):
    from stockstream_cli.dataset import compact

    codes = asx_codes(50)
    list_path = write_markit_csv(tmp_path / "asx.csv", codes)
    store = LocalStore(tmp_path / "data")
    fake_yahoo.fault(codes[7], "rate_limited")
    local.run_local(store, DAY, Settings.resolve(batch_size=25), source=local.asx_source(from_file=str(list_path)))
    compact.compact(store, today=dt.date(2026, 9, 1))
    assert not store.list(f"raw-data/{DAY.isoformat()}-batch-")  # folded into raw-data/compacted-2026-08.parquet

    fake_yahoo._faults.clear()
    fake_yahoo.reset_counts()
    result = rerun_cli(tmp_path / "data", "--json")
    assert result.exit_code == 0, result.output
    assert fake_yahoo.per_ticker() == {f"{codes[7]}.AX": 1}  # not the whole of both batches again
    assert json.loads(result.stdout)["symbols_failed"] == []


def test_a_batch_file_lost_after_its_manifest_is_refetched_though_the_month_has_a_compacted_file(tmp_path, fake_yahoo):
    """The run of DAY folds the day before into compacted-2026-08; DAY's batch 1 file is then lost. The
    compacted file's record says which days it holds, so rerun-failed refetches DAY's batch 1 (and nothing
    of the folded day)."""
    from stockstream_cli.dataset.compact import folded_batches

    codes = asx_codes(50)
    list_path = write_markit_csv(tmp_path / "asx.csv", codes)
    store = LocalStore(tmp_path / "data")
    source = local.asx_source(from_file=str(list_path))
    before = DAY - dt.timedelta(days=1)
    local.run_local(store, before, Settings.resolve(batch_size=25), source=source)
    local.run_local(store, DAY, Settings.resolve(batch_size=25), source=source)
    assert folded_batches(store, "raw-data/compacted-2026-08.parquet") == {before.isoformat(): [0, 1]}
    store.delete(layout.batch_data_key(DAY, 1))

    fake_yahoo.reset_counts()
    assert rerun_cli(tmp_path / "data", "--json").exit_code == 0
    assert sorted(fake_yahoo.per_ticker()) == [f"{code}.AX" for code in codes[25:]]
    fake_yahoo.reset_counts()
    result = runner.invoke(app, ["rerun-failed", "--date", before.isoformat(), "--store", str(tmp_path / "data")])
    assert result.exit_code == 0 and fake_yahoo.per_ticker() == {}


def test_the_rerun_keeps_the_days_run_apart_in_run_json(tmp_path, fake_yahoo):
    codes = asx_codes(20)
    list_path = write_markit_csv(tmp_path / "asx.csv", codes)
    data = tmp_path / "data"
    fake_yahoo.fault(codes[3], "rate_limited")
    first = local.run_local(LocalStore(data), DAY, Settings.resolve(batch_size=10),
                            source=local.asx_source(from_file=str(list_path)))
    fake_yahoo.clear_faults()
    assert rerun_cli(data).exit_code == 0
    run = json.loads((data / "runs" / DAY.isoformat() / "run.json").read_text())
    assert run["command"] == "rerun-failed" and run["symbols_failed"] == []
    assert run["day_run"] == {key: first[key] for key in ("command", "execution_time", "started_at", "finished_at")}
    assert run["day_run"]["command"] == "run-local"
