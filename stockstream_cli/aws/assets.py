"""Finding infra/asl.json, infra/Dockerfile and the handlers, from a source checkout or an installed package.

A checkout has them at the top level (infra/, lambda_src/, beside stockstream_cli/). An installed package
carries copies inside itself (stockstream_cli/infra/, stockstream_cli/lambda_src/: see pyproject.toml), so
`pip install .` followed by `stockstream deploy` works with no checkout around.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent
HANDLER_FILES = ("asx_symbol_updater.py", "stock_data_fetcher.py")


@dataclasses.dataclass(frozen=True)
class Sources:
    """Where the pieces of the Lambda image come from."""

    package_dir: Path  # stockstream_cli/
    infra_dir: Path  # asl.json, Dockerfile
    handlers_dir: Path  # asx_symbol_updater.py, stock_data_fetcher.py
    project_root: Path | None  # the checkout (with pyproject.toml), or None when running from an install

    @property
    def asl_path(self) -> Path:
        return self.infra_dir / "asl.json"

    @property
    def dockerfile(self) -> Path:
        return self.infra_dir / "Dockerfile"


def _is_checkout(root: Path) -> bool:
    pyproject = root / "pyproject.toml"
    return (
        pyproject.is_file()
        and 'name = "stockstream"' in pyproject.read_text(encoding="utf-8", errors="replace")
        and (root / "infra" / "asl.json").is_file()
        and (root / "lambda_src").is_dir()
    )


def find_sources(package_dir: Path = PACKAGE_DIR) -> Sources:
    root = package_dir.parent
    if _is_checkout(root):
        return Sources(package_dir, root / "infra", root / "lambda_src", root)
    bundled = Sources(package_dir, package_dir / "infra", package_dir / "lambda_src", None)
    if not bundled.asl_path.is_file():
        raise FileNotFoundError(
            f"infra/asl.json is neither in a checkout ({root}) nor bundled in the package ({package_dir}): reinstall stockstream"
        )
    return bundled


def asl_text() -> str:
    return find_sources().asl_path.read_text(encoding="utf-8")
