"""The store: a local folder and S3 (moto server) behind one interface, with atomic puts."""

from __future__ import annotations

import io
import os

import pytest

from stockstream_cli.errors import InputError, KeyNotFound, StoreError
from stockstream_cli.dataset.store import LocalStore, S3Store, open_store


def _exercise(store):
    assert store.list() == []
    assert not store.exists("runs/2026-11-25/run.json")
    store.put("runs/2026-11-25/run.json", b'{"a": 1}')
    store.put("runs/2026-11-25/batch-0.json", b"{}")
    store.put("symbols/2026-11-25-symbols.csv", b"symbol\n")
    assert store.exists("runs/2026-11-25/run.json")
    assert store.get("runs/2026-11-25/run.json") == b'{"a": 1}'
    store.put("runs/2026-11-25/run.json", b'{"a": 2}')
    assert store.get("runs/2026-11-25/run.json") == b'{"a": 2}'
    assert store.list("runs/") == ["runs/2026-11-25/batch-0.json", "runs/2026-11-25/run.json"]
    assert store.list("runs/2026-11-25/b") == ["runs/2026-11-25/batch-0.json"]
    assert store.list("symbols/2026") == ["symbols/2026-11-25-symbols.csv"]
    assert store.list("raw-data/") == []
    with pytest.raises(KeyNotFound, match="raw-data/x.parquet"):
        store.get("raw-data/x.parquet")
    store.delete("runs/2026-11-25/batch-0.json")
    assert store.list("runs/") == ["runs/2026-11-25/run.json"]


def _exercise_versions_and_tails(store):
    store.put("raw-data/a.parquet", b"0123456789")
    store.put("raw-data/b.parquet", b"abc")
    store.put("runs/d/run.json", b"{}")
    versions = store.list_versions("raw-data/")
    assert list(versions) == store.list("raw-data/") == ["raw-data/a.parquet", "raw-data/b.parquet"]
    assert list(store.list_versions()) == store.list()
    assert store.list_versions("nothing/") == {}
    store.put("raw-data/a.parquet", b"9876543210")  # the same size, new content: a new version
    after = store.list_versions("raw-data/")
    assert after["raw-data/a.parquet"] != versions["raw-data/a.parquet"]
    assert after["raw-data/b.parquet"] == versions["raw-data/b.parquet"]
    assert store.read_tail("raw-data/a.parquet", 4) == b"3210"
    assert store.read_tail("raw-data/b.parquet", 64) == b"abc"  # shorter than asked: all of it
    with pytest.raises(KeyNotFound, match="raw-data/x.parquet"):
        store.read_tail("raw-data/x.parquet", 8)


def test_local_store(tmp_path):
    store = open_store(str(tmp_path / "data"))
    assert isinstance(store, LocalStore)
    _exercise(store)
    assert store.polars_path("raw-data/a.parquet") == str(tmp_path / "data" / "raw-data" / "a.parquet")
    _exercise_versions_and_tails(store)


def test_local_versions_are_size_mtime_and_inode_and_skip_what_list_skips(tmp_path):
    store = LocalStore(tmp_path / "data")
    assert store.list_versions() == {}
    store.put("raw-data/a.parquet", b"x")
    (tmp_path / "data" / "raw-data" / ".a.parquet.123.tmp").write_bytes(b"half")  # a put in progress
    (tmp_path / "data" / "raw-data" / "folder").mkdir()
    status = os.stat(tmp_path / "data" / "raw-data" / "a.parquet")
    assert store.list_versions("raw-data/") == {"raw-data/a.parquet": f"1-{status.st_mtime_ns}-{status.st_ino}"}
    assert list(store.list_versions("raw-data/")) == store.list("raw-data/")


def test_local_put_leaves_no_temporary_file_and_keeps_the_old_content_on_failure(tmp_path, monkeypatch):
    store = LocalStore(tmp_path)
    store.put("runs/d/run.json", b"old")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(StoreError, match="No space left on device"):
        store.put("runs/d/run.json", b"new")
    assert store.get("runs/d/run.json") == b"old"
    assert sorted(p.name for p in (tmp_path / "runs" / "d").iterdir()) == ["run.json"]


def test_s3_store(s3_bucket):
    store = open_store(f"s3://{s3_bucket}/team/prefix")
    assert isinstance(store, S3Store)
    _exercise(store)
    assert store.polars_path("raw-data/a.parquet") == f"s3://{s3_bucket}/team/prefix/raw-data/a.parquet"
    _exercise_versions_and_tails(store)
    options = store.polars_storage_options()
    assert options["aws_endpoint_url"] == os.environ["AWS_ENDPOINT_URL"]
    assert options["aws_region"] == "ap-southeast-2"
    assert not any("key" in name or "token" in name for name in options)  # no frozen credentials
    assert store.client.meta.config.retries["mode"] == "standard"


def test_polars_reads_s3_with_keys_from_a_credential_provider_of_the_stores_profile(s3_bucket, tmp_path, monkeypatch):
    """No keys in the storage options: polars asks boto3's credential chain (here: the store's --profile)
    through CredentialProviderAWS, and again when the keys it gave expire. The endpoint is moto's server."""
    import polars as pl

    credentials = tmp_path / "credentials"
    credentials.write_text("[team]\naws_access_key_id = team-key\naws_secret_access_key = team-secret\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    store = open_store(f"s3://{s3_bucket}/p", profile="team", region="ap-southeast-2")
    buffer = io.BytesIO()
    pl.DataFrame({"a": [1, 2, 3]}).write_parquet(buffer)
    store.put("raw-data/x.parquet", buffer.getvalue())

    provider = store.polars_credential_provider()
    assert isinstance(provider, pl.CredentialProviderAWS)
    keys, _expiry = provider()
    assert (keys["aws_access_key_id"], keys["aws_secret_access_key"]) == ("team-key", "team-secret")
    frame = pl.scan_parquet(store.polars_path("raw-data/x.parquet"), storage_options=store.polars_storage_options(),
                            credential_provider=provider).collect()
    assert frame["a"].to_list() == [1, 2, 3]


def test_s3_store_on_a_missing_bucket_says_so(moto_endpoint):
    with pytest.raises(StoreError, match="bucket does not exist"):
        open_store("s3://no-such-bucket").put("runs/x.json", b"{}")


@pytest.mark.parametrize(
    ("uri", "message"),
    [("gs://bucket", "unknown scheme 'gs'"), ("s3://", "names no bucket"), ("", "^store is empty")],
)
def test_bad_store_uris_are_input_errors(uri, message):
    with pytest.raises(InputError, match=message):
        open_store(uri)


def test_local_files_get_the_usual_mode_not_the_temporary_files_private_one(tmp_path):
    store = LocalStore(tmp_path)
    store.put("runs/d/run.json", b"{}")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "runs" / "d" / "run.json").stat().st_mode & 0o777 == 0o666 & ~mask
