"""The uv lock: uv.lock matches pyproject.toml, and infra/requirements.lock.txt (what the Lambda image installs,
with --require-hashes) is exactly what `uv export` makes of uv.lock. Re-run with uv when it is installed
(CI installs it); without uv, the pins are compared with the lock's packages."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCK_FILE = ROOT / "uv.lock"
EXPORTED = ROOT / "infra" / "requirements.lock.txt"
# the one command that writes infra/requirements.lock.txt (README, "CI")
EXPORT = ["export", "--frozen", "--no-dev", "--no-emit-project", "--no-header", "--format", "requirements-txt"]


def uv() -> str | None:
    beside_python = Path(sys.executable).with_name("uv")
    return str(beside_python) if beside_python.is_file() else shutil.which("uv")


def pins(text: str) -> set[tuple[str, str]]:
    return {(name.lower(), version) for name, version in re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", text, re.M)}


def test_the_exported_requirements_pin_every_file_by_hash():
    text = EXPORTED.read_text()
    entries = [entry for entry in re.split(r"\n(?=[A-Za-z])", text) if "==" in entry]
    assert len(entries) > 30 and all("--hash=sha256:" in entry for entry in entries)
    assert "stockstream" not in {name for name, _ in pins(text)}  # the project is installed apart, --no-deps


def test_the_exported_requirements_are_the_runtime_packages_of_the_lock():
    lock = tomllib.loads(LOCK_FILE.read_text())
    locked = {(package["name"].lower(), package["version"]) for package in lock["package"]}
    exported = pins(EXPORTED.read_text())
    assert exported <= locked
    names = {name for name, _ in exported}
    assert {"typer", "polars", "yfinance", "curl-cffi", "boto3", "exchange-calendars"} <= names
    assert not names & {"pytest", "moto", "matplotlib", "flask"}  # no test extra in the image


@pytest.mark.skipif(uv() is None, reason="uv is not installed (CI installs it)")
def test_the_exported_requirements_are_what_uv_exports_from_the_lock_now():
    result = subprocess.run([uv(), *EXPORT], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == EXPORTED.read_text(), "run: uv " + " ".join(EXPORT) + " -o infra/requirements.lock.txt"


def test_the_lock_is_resolved_for_linux_on_x86_64_and_arm64():
    lock = tomllib.loads(LOCK_FILE.read_text())
    assert lock["requires-python"] == ">=3.11"
    wheels = [wheel["url"] for package in lock["package"] if package["name"] == "polars-runtime-32"
              for wheel in package.get("wheels", [])]
    assert any("manylinux" in url and "x86_64" in url for url in wheels)
    assert any("manylinux" in url and "aarch64" in url for url in wheels)
