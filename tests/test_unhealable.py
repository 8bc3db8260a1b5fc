"""Fail fast on what cannot heal: a store that is a file, permission denied, a full disk, no such host (the
ASX source or S3). Each: one clear line, the right exit code, no retry loop, not one request to Yahoo."""

from __future__ import annotations

import errno
import os

import pytest
from typer.testing import CliRunner

from asx_fake import asx_codes, write_markit_csv
from stockstream_cli.dataset import store as store_module
from stockstream_cli.cli import app

DAY = "2026-08-21"
runner = CliRunner()


def run_local(*args):
    return runner.invoke(app, ["run-local", "--date", DAY, "--batch-size", "10", *args])


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output and lines[0].startswith("stockstream: error:")
    return lines[0]


@pytest.fixture
def asx_file(tmp_path):
    return str(write_markit_csv(tmp_path / "asx.csv", asx_codes(30)))


def test_a_store_path_that_is_a_file_is_bad_input(tmp_path, fake_yahoo, asx_file):
    path = tmp_path / "data"
    path.write_text("not a folder")
    result = run_local("--from-file", asx_file, "--store", str(path))
    assert result.exit_code == 2
    assert "is a file, not a folder" in one_error_line(result)
    assert path.read_text() == "not a folder" and fake_yahoo.count(kind=None) == 0
    inside = run_local("--from-file", asx_file, "--store", str(path / "below"))  # a file further up
    assert inside.exit_code == 2 and "is a file, not a folder" in one_error_line(inside)


@pytest.mark.parametrize("code, said", [(errno.EACCES, "permission denied"), (errno.ENOSPC, "the disk is full")])
def test_a_store_that_refuses_the_lock_probe_stops_before_yahoo(tmp_path, fake_yahoo, asx_file, monkeypatch, code, said):
    data = tmp_path / "data"
    real_open = os.open
    calls = []

    def refusing_open(path, flags, *args):
        if str(path).startswith(str(data)):
            calls.append(path)
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", refusing_open)
    result = run_local("--from-file", asx_file, "--store", str(data))
    assert result.exit_code == 1
    assert said in one_error_line(result)
    assert len(calls) == 1 and fake_yahoo.count(kind=None) == 0  # no retry, no request


def test_a_disk_that_fills_during_the_run_stops_it_without_retrying(tmp_path, fake_yahoo, asx_file, monkeypatch):
    data = tmp_path / "data"
    real = store_module.write_atomically
    writes = []

    def full_after_the_list(path, content):
        writes.append(path)
        if "raw-data" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, content)

    monkeypatch.setattr(store_module, "write_atomically", full_after_the_list)
    result = run_local("--from-file", asx_file, "--store", str(data), "--concurrency", "1")
    assert result.exit_code == 1
    assert "the disk is full" in one_error_line(result)
    assert len([p for p in writes if "raw-data" in str(p)]) == 1  # batch 0 once: no batch retry, no other batch
    assert fake_yahoo.chart_requests() == 10  # only the batch that could not be written


def test_no_such_host_for_the_asx_source_is_one_try(tmp_path, fake_yahoo):
    result = run_local("--source-url", "http://no-such-host.invalid/list.csv", "--store", str(tmp_path / "data"))
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "does not resolve (no such host)" in line and "tries" not in line
    assert fake_yahoo.count(kind=None) == 0


def test_no_such_host_for_s3_stops_before_yahoo(tmp_path, fake_yahoo, asx_file, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://no-such-host.invalid:9000")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-southeast-2")
    result = run_local("--from-file", asx_file, "--store", "s3://bucket")
    assert result.exit_code == 1
    assert "no such host" in one_error_line(result)
    assert fake_yahoo.count(kind=None) == 0
