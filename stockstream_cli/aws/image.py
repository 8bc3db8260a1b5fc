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

from ..errors import AwsError, InputError, named
from .assets import HANDLER_FILES, Sources

ARCHITECTURES = {"arm64": "linux/arm64", "x86_64": "linux/amd64"}
ENGINES = ("docker", "podman")


class NoEngine(InputError):
    """No container engine to build the Lambda image, and no image given to deploy instead."""

    def __init__(self):
        super().__init__("no working Docker or Podman engine to build the Lambda image: start one, or build "
                         f"infra/Dockerfile elsewhere, push it to ECR and pass {named('image_uri')} URI")


Runner = Callable[..., subprocess.CompletedProcess]


def check_arch(arch: str) -> str:
    if arch not in ARCHITECTURES:
        raise InputError(f"{arch!r}: use arm64 (cheaper) or x86_64", parameter="arch")
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
packages = ["stockstream_cli", "stockstream_cli.commands", "stockstream_cli.sources", "stockstream_cli.fetch", "stockstream_cli.run", "stockstream_cli.dataset", "stockstream_cli.quality", "stockstream_cli.aws", "stockstream_cli.infra", "stockstream_cli.lambda_src"]

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


def host_arch(machine: str | None = None) -> str:
    """The Lambda architecture this machine builds natively (no QEMU needed)."""
    import platform

    machine = (machine or platform.machine()).lower()
    return "arm64" if machine in {"arm64", "aarch64", "armv8l"} else "x86_64"


def _output(run: Runner, command: list[str]) -> subprocess.CompletedProcess | None:
    try:
        return run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None


def build_command(engine: str, image_uri: str, arch: str, folder: str, run: Runner = subprocess.run) -> list[str]:
    """The build command for this engine and builder, or a clear error when it cannot build `arch` here.

    buildx: checked to list the platform, and told --provenance=false --sbom=false (attestations make an OCI
    index, which Lambda refuses). The legacy builder makes no attestations but cannot build another platform."""
    platform = ARCHITECTURES[arch]
    native = host_arch() == arch
    if engine == "podman":
        return [engine, "build", "--platform", platform, "-t", image_uri, folder]
    buildx = _output(run, [engine, "buildx", "version"])
    if buildx is None or buildx.returncode != 0:
        if not native:
            raise InputError(f"{arch}: this {host_arch()} machine has Docker's legacy builder, which cannot "
                             f"build {platform}; install buildx and QEMU (docker run --privileged --rm "
                             f"tonistiigi/binfmt --install {arch.replace('x86_64', 'amd64')}) or pass "
                             f"{named('arch')} {host_arch()}", parameter="arch")
        return [engine, "build", "--platform", platform, "-t", image_uri, folder]
    inspect = _output(run, [engine, "buildx", "inspect", "--bootstrap"])
    platforms = ""
    for line in (inspect.stdout if inspect and inspect.returncode == 0 else "").splitlines():
        if line.strip().lower().startswith("platforms:"):
            platforms = line.split(":", 1)[1]
    if platform not in {p.strip().rstrip("*") for p in platforms.split(",")}:
        raise InputError(f"{arch}: docker buildx here cannot build {platform} (it lists: "
                         f"{platforms.strip() or 'nothing'}); install QEMU with `docker run --privileged --rm "
                         f"tonistiigi/binfmt --install {arch.replace('x86_64', 'amd64')}`, or pass "
                         f"{named('arch')} {host_arch()}", parameter="arch")
    help_text = _output(run, [engine, "buildx", "build", "--help"])
    flags = help_text.stdout if help_text and help_text.returncode == 0 else ""
    missing = [flag for flag in ("--provenance", "--sbom") if flag not in flags]
    if missing:
        raise InputError(f"docker buildx here has no {' or '.join(missing)} option: update Docker (buildx 0.10 or "
                         "later), since without them the image is an OCI index Lambda refuses")
    return [engine, "buildx", "build", "--platform", platform, "--provenance=false", "--sbom=false", "--load",
            "-t", image_uri, folder]


LAMBDA_MEDIA_TYPES = ("application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.manifest.v1+json")


def lambda_runs(media_type: str | None) -> bool:
    """Whether Lambda runs an image of this manifest media type (None: not reported, so assumed)."""
    return media_type is None or media_type in LAMBDA_MEDIA_TYPES


def _repository_and_tag(image_uri: str) -> tuple[str, str]:
    repository, tag = image_uri.rsplit("/", 1)[1].split(":", 1)
    return repository, tag


def check_pushed_manifest(ecr_client, image_uri: str) -> None:
    """Lambda runs only a single-platform image manifest: say so now rather than in CreateFunction's error.

    A refused image is deleted: its tag is the content's, and the repository's tags are immutable, so left
    there it would make the next deploy skip the build and hand Lambda the same image."""
    repository, tag = _repository_and_tag(image_uri)
    found = ecr_client.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}],
                                       acceptedMediaTypes=[*LAMBDA_MEDIA_TYPES,
                                                           "application/vnd.docker.distribution.manifest.list.v2+json",
                                                           "application/vnd.oci.image.index.v1+json"])
    images = found.get("images") or []
    if not images:
        raise AwsError(f"the pushed image {image_uri} is not in ECR")
    media_type = images[0].get("imageManifestMediaType")
    if media_type is None:
        import json

        media_type = json.loads(images[0]["imageManifest"]).get("mediaType")
    if not lambda_runs(media_type):
        removed = _remove_image(ecr_client, repository, tag)
        raise AwsError(f"the pushed image {image_uri} is a {media_type}, which Lambda does not run: build one "
                       f"platform without attestations (docker buildx build --provenance=false --sbom=false); {removed}")


def _remove_image(ecr_client, repository: str, tag: str) -> str:
    """Delete the image under `tag`; what happened, as the end of a message."""
    try:
        failures = ecr_client.batch_delete_image(repositoryName=repository, imageIds=[{"imageTag": tag}]).get("failures")
    except Exception as exc:  # noqa: BLE001 - the refusal above is the error to report; this only adds to it
        failures = [{"failureReason": str(exc)}]
    if not failures:
        return "it was deleted from ECR, so the next deploy builds it again"
    return (f"deleting it from ECR failed ({failures[0].get('failureReason', 'no reason given')}): delete it with "
            f"`aws ecr batch-delete-image --repository-name {repository} --image-ids imageTag={tag}`, or the next "
            "deploy does so")


def build_and_push(engine: str, files: dict[str, bytes], image_uri: str, arch: str, ecr_client,
                   run: Runner = subprocess.run, stream=None) -> None:
    """Log in, build, push, and check what was pushed; the engine's output goes straight to the terminal (stderr)."""
    import base64
    import sys
    import tempfile

    stream = stream or sys.stderr
    token = ecr_client.get_authorization_token()["authorizationData"][0]
    user, password = base64.b64decode(token["authorizationToken"]).decode().split(":", 1)
    registry = image_uri.split("/", 1)[0]
    with tempfile.TemporaryDirectory(prefix="stockstream-image-") as folder:
        write_context(files, Path(folder))
        login = run([engine, "login", "--username", user, "--password-stdin", registry], input=password,
                    capture_output=True, text=True)
        if login.returncode != 0:
            tail = (login.stderr or login.stdout or "").strip().splitlines()[-1:] or ["no output"]
            raise AwsError(f"`{engine} login` to {registry} failed: {tail[0]}")
        for command in (build_command(engine, image_uri, arch, folder, run), [engine, "push", image_uri]):
            stream.write(f"$ {' '.join(command)}\n")
            stream.flush()
            result = _streamed(run, command, stream)
            if result.returncode != 0:
                raise AwsError(f"`{' '.join(command[:3])}` failed for the Lambda image (exit {result.returncode}; "
                               "its output is above)")
    check_pushed_manifest(ecr_client, image_uri)


def _streamed(run: Runner, command: list[str], stream) -> subprocess.CompletedProcess:
    """Run with the output going to `stream` as it comes (through a pipe when it is not a real file)."""
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        result = run(command, capture_output=True, text=True)
        stream.write((result.stdout or "") + (result.stderr or ""))
        return result
    return run(command, stdout=stream, stderr=stream)


def image_builder(engine: str, files: dict[str, bytes] | None):
    """What the executor calls for a BuildImage instruction."""
    def build(instruction, ecr_client) -> None:
        build_and_push(engine, files or {}, instruction.image_uri, instruction.arch, ecr_client)

    return build
