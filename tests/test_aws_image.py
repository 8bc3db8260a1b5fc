"""The Lambda image build with a fake `docker` on PATH (issue 14 item 1, and ECR item 3): buildx asked for the
platform and the attestation flags, the build's output streamed, what was pushed checked, the repository's
policies, and retries only for a role this deploy created."""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap

import boto3
import pytest

from aws_fake import REGION
from helpers import run_stockstream
from stockstream_cli.aws import image as image_module
from stockstream_cli.aws import resources as res
from stockstream_cli.aws.assets import find_sources
from stockstream_cli.errors import AwsError, InputError

ACCOUNT = "123456789012"
REPOSITORY = "stockstream-lambda"

FAKE_DOCKER = textwrap.dedent('''\
    #!{python}
    """A docker client as far as stockstream uses it. FAKE_DOCKER_* variables say which kind."""
    import json, os, sys
    args = sys.argv[1:]
    with open(os.environ["FAKE_DOCKER_LOG"], "a") as log:
        log.write(json.dumps(args) + "\\n")
    kind = os.environ.get("FAKE_DOCKER_KIND", "buildx")
    if args[:1] == ["info"] or args[:1] == ["login"]:
        sys.exit(0)
    if args[:2] == ["buildx", "version"]:
        sys.exit(1 if kind == "legacy" else 0)
    if args[:2] == ["buildx", "inspect"]:
        platforms = os.environ.get("FAKE_DOCKER_PLATFORMS", "linux/amd64, linux/amd64/v2, linux/arm64*")
        print("Name:   default\\nDriver: docker\\nPlatforms: " + platforms)
        sys.exit(0)
    if args[:3] == ["buildx", "build", "--help"]:
        print("--platform\\n--load\\n--push\\n--provenance string\\n" + ("" if kind == "old-buildx" else "--sbom string\\n"))
        sys.exit(0)
    if "build" in args[:2]:
        for n in range(1, 4):
            print(f"#{{n}} building step {{n}}/3", flush=True)
        sys.exit(0)
    if args[:1] == ["push"]:
        import boto3
        registry_path, tag = args[1].rsplit(":", 1)
        repository = registry_path.split("/", 1)[1]
        if os.environ.get("FAKE_DOCKER_PUSHES") == "index":
            manifest = {{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [{{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                       "digest": "sha256:" + "1" * 64, "size": 1,
                                       "platform": {{"architecture": "amd64", "os": "linux"}}}}]}}
        else:
            manifest = {{"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                        "config": {{"digest": "sha256:" + "0" * 64, "size": 1,
                                   "mediaType": "application/vnd.docker.container.image.v1+json"}}, "layers": []}}
        boto3.client("ecr", region_name="{region}").put_image(
            repositoryName=repository, imageTag=tag, imageManifest=json.dumps(manifest))
        print("pushed " + args[1])
        sys.exit(0)
    sys.exit(f"fake docker: unexpected {{args}}")
''')


@pytest.fixture
def fake_docker(tmp_path, monkeypatch):
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "docker"
    script.write_text(FAKE_DOCKER.format(python=sys.executable, region=REGION))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "docker.log"
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.path.dirname(sys.executable)}")
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))

    def commands() -> list[list[str]]:
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    return commands


def _builds(commands) -> list[list[str]]:
    return [c for c in commands() if "build" in c[:2] and "--help" not in c]


def test_deploy_builds_with_buildx_streams_the_output_and_sets_the_repositorys_policies(moto_endpoint, fake_docker):
    result = run_stockstream("deploy", "--json")  # no --arch: this machine's own
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    arch = image_module.host_arch()
    [build] = _builds(fake_docker)
    assert build[:2] == ["buildx", "build"] and f"--platform={image_module.ARCHITECTURES[arch]}" not in build
    assert build[build.index("--platform") + 1] == image_module.ARCHITECTURES[arch]
    assert "--provenance=false" in build and "--sbom=false" in build and build[build.index("-t") + 1] == document["image_uri"]
    assert ["push", document["image_uri"]] in fake_docker()
    assert "#3 building step 3/3" in result.stderr and f"pushed {document['image_uri']}" in result.stderr  # streamed
    assert f"$ docker buildx build --platform {image_module.ARCHITECTURES[arch]}" in result.stderr

    ecr = boto3.client("ecr", region_name=REGION)
    policy = json.loads(ecr.get_repository_policy(repositoryName=REPOSITORY)["policyText"])
    [statement] = policy["Statement"]
    assert statement["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert sorted(statement["Action"]) == ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    assert statement["Condition"] == {"StringLike": {"aws:sourceArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:*"}}
    [rule] = json.loads(ecr.get_lifecycle_policy(repositoryName=REPOSITORY)["lifecyclePolicyText"])["rules"]
    assert rule["selection"] == {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": res.KEEP_IMAGES}
    assert rule["action"] == {"type": "expire"}
    functions = boto3.client("lambda", region_name=REGION).list_functions()["Functions"]
    assert {f["Architectures"][0] for f in functions} == {arch}

    again = run_stockstream("deploy", "--json")
    assert json.loads(again.stdout)["changes"] == [] and len(_builds(fake_docker)) == 1


def test_buildx_that_cannot_build_the_platform_says_how_to_fix_it(moto_endpoint, fake_docker, monkeypatch):
    other = "arm64" if image_module.host_arch() == "x86_64" else "x86_64"
    monkeypatch.setenv("FAKE_DOCKER_PLATFORMS", "linux/amd64, linux/386" if other == "arm64" else "linux/arm64")
    result = run_stockstream("deploy", "--arch", other)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert f"docker buildx here cannot build {image_module.ARCHITECTURES[other]}" in line
    assert "tonistiigi/binfmt --install" in line and f"--arch {image_module.host_arch()}" in line
    assert _builds(fake_docker) == []
    assert boto3.client("lambda", region_name=REGION).list_functions()["Functions"] == []


def test_buildx_without_the_attestation_flags_is_refused_clearly(moto_endpoint, fake_docker, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_KIND", "old-buildx")
    result = run_stockstream("deploy")
    assert result.returncode == 2 and "has no --sbom option: update Docker" in result.stderr
    assert _builds(fake_docker) == []


def test_the_legacy_builder_builds_natively_without_buildx_flags_and_never_another_platform(moto_endpoint, fake_docker,
                                                                                          monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_KIND", "legacy")
    other = "arm64" if image_module.host_arch() == "x86_64" else "x86_64"
    refused = run_stockstream("deploy", "--arch", other)
    assert refused.returncode == 2 and "legacy builder, which cannot build" in refused.stderr
    result = run_stockstream("deploy", "--json")
    assert result.returncode == 0, result.stderr
    [build] = _builds(fake_docker)
    assert build[0] == "build" and not any(flag.startswith(("--provenance", "--sbom")) for flag in build)


def test_an_image_index_is_refused_after_the_push_with_the_reason(moto_endpoint, fake_docker, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_PUSHES", "index")
    result = run_stockstream("deploy")
    assert result.returncode == 1
    assert "is a application/vnd.oci.image.index.v1+json, which Lambda does not run" in result.stderr
    assert "it was deleted from ECR, so the next deploy builds it again" in result.stderr
    assert boto3.client("lambda", region_name=REGION).list_functions()["Functions"] == []  # never tried
    # the content tag is free again (tags are immutable): the next deploy, with a fixed builder, builds and deploys
    ecr = boto3.client("ecr", region_name=REGION)
    assert ecr.describe_images(repositoryName=REPOSITORY).get("imageDetails", []) == []
    monkeypatch.delenv("FAKE_DOCKER_PUSHES")
    again = run_stockstream("deploy", "--json")
    assert again.returncode == 0, again.stderr
    assert len(_builds(fake_docker)) == 2
    assert len(boto3.client("lambda", region_name=REGION).list_functions()["Functions"]) == 2


# ---------------------------------------------------------------- retries: only IAM propagation, only for new roles


def _refusing(session, message: str, times: int):
    left = {"n": times}

    class Http:
        status_code = 400

    def refuse(model=None, **_):
        if left["n"]:
            left["n"] -= 1
            return Http(), {"Error": {"Code": "InvalidParameterValueException", "Message": message},
                            "ResponseMetadata": {"HTTPStatusCode": 400}}
        return None

    session.events.register("before-call.lambda.CreateFunction", refuse)
    return left


def test_an_unsupported_image_is_not_retried_as_if_a_role_were_propagating(moto_endpoint):
    from aws_fake import IMAGE_URI
    from stockstream_cli.aws.deploy import DeployOptions, deploy

    session = boto3.session.Session(region_name=REGION)
    _refusing(session, "The image manifest, config or layer media type for the source image "
                       f"{IMAGE_URI} is not supported.", times=5)
    waits = []
    with pytest.raises(AwsError, match="media type .* is not supported"):
        deploy(DeployOptions(image_uri=IMAGE_URI), session=session, sleep=waits.append, waiter_delay=1)
    assert waits == []


def test_a_role_that_exists_already_is_not_waited_for(moto_endpoint):
    """Propagation is retried only for a role this deploy created: an old role refused is a real error."""
    from aws_fake import IMAGE_URI
    from stockstream_cli.aws.deploy import DeployOptions, deploy

    deploy(DeployOptions(image_uri=IMAGE_URI), sleep=lambda s: None, waiter_delay=1)
    boto3.client("lambda", region_name=REGION).delete_function(FunctionName="stock-data-fetcher")
    session = boto3.session.Session(region_name=REGION)
    _refusing(session, "The role defined for the function cannot be assumed by Lambda.", times=1)
    waits = []
    with pytest.raises(AwsError, match="cannot be assumed"):
        deploy(DeployOptions(image_uri=IMAGE_URI), session=session, sleep=waits.append, waiter_delay=1)
    assert waits == []


def test_build_command_unit_cases():
    class Answer:
        def __init__(self, code, out=""):
            self.returncode, self.stdout = code, out

    def runner(answers):
        return lambda command, **kw: answers.get(tuple(command[:3]), answers.get(tuple(command[:2]), Answer(0)))

    native = image_module.host_arch()
    podman = image_module.build_command("podman", "r/i:t", native, "/ctx", runner({}))
    assert podman == ["podman", "build", "--platform", image_module.ARCHITECTURES[native], "-t", "r/i:t", "/ctx"]
    with pytest.raises(InputError, match="lists: nothing"):
        image_module.build_command("docker", "r/i:t", native, "/ctx", runner({("docker", "buildx", "inspect"): Answer(1)}))
    assert image_module.host_arch("aarch64") == "arm64" and image_module.host_arch("AMD64") == "x86_64"
    assert find_sources().dockerfile.is_file()
