"""The Lambda container image: its build context, a tag from its content, and building it with Docker or Podman.

One image serves both functions (each sets its handler with ImageConfig.Command). The tag is a hash of the
exact files sent to the build plus the architecture, so an unchanged project maps to an image already in
ECR and deploy has nothing to build, push or update.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from ..errors import AwsError, InputError
from .assets import HANDLER_FILES, Sources

ARCHITECTURES = {"arm64": "linux/arm64", "x86_64": "linux/amd64"}
ENGINES = ("docker", "podman")
NO_IMAGE_HELP = (
    "no working Docker or Podman engine to build the Lambda image: start one, or build infra/Dockerfile "
    "elsewhere, push it to ECR and pass --image-uri URI"
)

Runner = Callable[..., subprocess.CompletedProcess]


def check_arch(arch: str) -> str:
    if arch not in ARCHITECTURES:
        raise InputError(f"--arch {arch!r}: use arm64 (cheaper, the default) or x86_64")
    return arch


def context_files(sources: Sources) -> dict[str, bytes]:
    """Every file the image is built from, by its path in the build context (the layout of a checkout)."""
    files: dict[str, bytes] = {
        "Dockerfile": sources.dockerfile.read_bytes(),
        "infra/Dockerfile": sources.dockerfile.read_bytes(),
        "infra/asl.json": sources.asl_path.read_bytes(),
        "infra/requirements.lock.txt": (sources.infra_dir / "requirements.lock.txt").read_bytes(),
    }
    for name in HANDLER_FILES:
        files[f"lambda_src/{name}"] = (sources.handlers_dir / name).read_bytes()
    bundled = {sources.package_dir / "infra", sources.package_dir / "lambda_src"}
    for path in sorted(sources.package_dir.rglob("*.py")):
        if "__pycache__" in path.parts or any(folder in path.parents for folder in bundled):
            continue
        files[f"stockstream_cli/{path.relative_to(sources.package_dir).as_posix()}"] = path.read_bytes()
    if sources.project_root is not None:
        files["pyproject.toml"] = (sources.project_root / "pyproject.toml").read_bytes()
        readme = sources.project_root / "README.md"
        files["README.md"] = readme.read_bytes() if readme.is_file() else b"# stockstream\n"
    else:
        files["pyproject.toml"] = pyproject_from_metadata().encode()
        files["README.md"] = b"# stockstream\n"
    return files


def pyproject_from_metadata(distribution: str = "stockstream") -> str:
    """A pyproject.toml for an installed stockstream, from its own metadata: the same dependencies, so the
    image built without a checkout still installs exactly what this install declares."""
    from importlib import metadata

    dist = metadata.distribution(distribution)
    requires = [r for r in (dist.requires or []) if "extra ==" not in r]
    python = dist.metadata.get("Requires-Python") or ">=3.11"
    deps = ",\n".join(f"    {_toml_string(r)}" for r in requires)
    return f"""[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "stockstream"
version = {_toml_string(dist.version)}
readme = "README.md"
requires-python = {_toml_string(python)}
dependencies = [
{deps}
]

[project.scripts]
stockstream = "stockstream_cli.cli:main"

[tool.setuptools]
packages = ["stockstream_cli", "stockstream_cli.commands", "stockstream_cli.sources", "stockstream_cli.fetch", "stockstream_cli.run", "stockstream_cli.read", "stockstream_cli.quality", "stockstream_cli.aws", "stockstream_cli.infra", "stockstream_cli.lambda_src"]

[tool.setuptools.package-dir]
"stockstream_cli.infra" = "infra"
"stockstream_cli.lambda_src" = "lambda_src"

[tool.setuptools.package-data]
"stockstream_cli.infra" = ["asl.json", "Dockerfile"]
"""


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def content_tag(files: dict[str, bytes], arch: str) -> str:
    digest = hashlib.sha256(arch.encode())
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
    return f"{arch}-{digest.hexdigest()[:24]}"


def write_context(files: dict[str, bytes], folder: Path) -> Path:
    for relative, data in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder


def find_engine(run: Runner = subprocess.run, which: Callable[[str], str | None] = shutil.which) -> str | None:
    """docker or podman, if its client is installed AND answers (a client without a daemon does not count)."""
    for engine in ENGINES:
        if not which(engine):
            continue
        try:
            result = run([engine, "info"], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if result.returncode == 0:
            return engine
    return None


def build_and_push(engine: str, files: dict[str, bytes], image_uri: str, arch: str, ecr_client,
                   run: Runner = subprocess.run) -> None:
    import base64
    import tempfile

    token = ecr_client.get_authorization_token()["authorizationData"][0]
    user, password = base64.b64decode(token["authorizationToken"]).decode().split(":", 1)
    registry = image_uri.split("/", 1)[0]
    build = [engine, "build", "--platform", ARCHITECTURES[arch], "-t", image_uri]
    if engine == "docker":
        build.append("--provenance=false")  # Lambda refuses the manifest lists buildx makes for attestations
    with tempfile.TemporaryDirectory(prefix="stockstream-image-") as folder:
        write_context(files, Path(folder))
        steps = [
            ([engine, "login", "--username", user, "--password-stdin", registry], password),
            (build + [folder], None),
            ([engine, "push", image_uri], None),
        ]
        for command, stdin in steps:
            result = run(command, input=stdin, capture_output=True, text=True)
            if result.returncode != 0:
                tail = (result.stderr or result.stdout or "").strip().splitlines()[-1:] or ["no output"]
                raise AwsError(f"`{' '.join(command[:2])}` failed for the Lambda image: {tail[0]}")
