"""The one fake of AWS, for tests and benchmarks alike: a moto server (`moto_server`) and every AWS access
pointed at it (`FAKE_CREDENTIALS`, `endpoint_environment`; `pointed_at` for a benchmark's process), the
deployed pipeline run there (`deployed_pipeline`): the state machine for real in moto, the Lambdas in-process,
and what moto leaves out of AWS (ExpectedBucketOwner, moto's own IAM action names).

moto would run a Lambda in Docker; `LambdaFunction._invoke_lambda` is patched instead to call the project's
own handler, picked the way AWS picks it (the function's ImageConfig.Command, e.g.
"stock_data_fetcher.handler") from lambda_src/, with the function's environment variables applied.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.util
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import traceback
import types
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import requests

from asx_fake import markit_csv, serving

REPO = Path(__file__).resolve().parent.parent
IMAGE_URI = "123456789012.dkr.ecr.ap-southeast-2.amazonaws.com/stockstream-lambda:test-1"
REGION = "ap-southeast-2"
_ENV_LOCK = threading.Lock()
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
                    "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def moto_server(*, own_process: bool = False) -> Iterator[str]:
    """A moto server on a free loopback port, in a thread of this process or (`own_process`) in a process of
    its own, so that its Python does not share a measured reader's interpreter lock (as S3 does not); yields
    its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    port = free_port()
    server = _MotoProcess(port) if own_process else ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


class _MotoProcess:
    def __init__(self, port: int):
        self.port = port
        self.process = None

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                requests.get(f"http://127.0.0.1:{self.port}/moto-api/", timeout=1)
                return
            except requests.ConnectionError:
                threading.Event().wait(0.05)  # the process is still starting
        raise RuntimeError("the moto server did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def endpoint_environment(endpoint: str) -> dict[str, str]:
    """The variables that point every AWS access (boto3, polars, subprocesses, moto's own calls) at `endpoint`."""
    return {"AWS_ENDPOINT_URL": endpoint, "MOTO_PORT": endpoint.rsplit(":", 1)[1]}


@contextlib.contextmanager
def pointed_at(endpoint: str) -> Iterator[str]:
    """This process's environment (and so its children's) pointed at `endpoint` with the fake credentials,
    restored after; yields the endpoint. (Tests set the same variables through monkeypatch: conftest.py.)"""
    saved = dict(os.environ)
    os.environ.update({**FAKE_CREDENTIALS, **endpoint_environment(endpoint)})
    try:
        yield endpoint
    finally:
        os.environ.clear()
        os.environ.update(saved)


def reset(endpoint: str) -> None:
    """Forget everything the moto server holds (its state outlives a test, and the server itself)."""
    requests.post(f"{endpoint}/moto-api/reset", timeout=10)


def load_handler(command: str):
    module_name, function = command.rsplit(".", 1)
    spec = importlib.util.spec_from_file_location(f"lambda_{module_name}", REPO / "lambda_src" / f"{module_name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, function)


class InProcessLambdas:
    """A replacement for moto's LambdaFunction._invoke_lambda that runs the project's handlers here."""

    def __init__(self, context_for=None) -> None:
        self.invocations: list[tuple[str, dict]] = []
        self.errors: list[str] = []
        self.context_for = context_for  # (function name, event) -> the Lambda context, or None for the plain one

    def install(self, monkeypatch) -> "InProcessLambdas":
        from moto.awslambda.models import LambdaFunction

        runner = self

        def _invoke_lambda(function, event=None):
            return runner.invoke(function, event)

        monkeypatch.setattr(LambdaFunction, "_invoke_lambda", _invoke_lambda)
        return self

    def invoke(self, function, event) -> tuple[str, bool, str]:
        event = event if isinstance(event, dict) else json.loads(event or "{}")
        self.invocations.append((function.function_name, event))
        with _ENV_LOCK:  # the same values for both functions, so concurrent Map items agree
            os.environ.update({k: str(v) for k, v in function.environment_vars.items()})
        handler = load_handler(function.image_config.cmd[0])
        try:
            context = self.context_for(function.function_name, event) if self.context_for else None
            result = handler(event, context or types.SimpleNamespace(function_name=function.function_name))
            return json.dumps(result), False, ""
        except Exception as exc:  # what the Lambda runtime returns for an unhandled error
            self.errors.append(f"{function.function_name}: {type(exc).__name__}: {exc}")
            body = {"errorType": type(exc).__name__, "errorMessage": str(exc),
                    "stackTrace": traceback.format_tb(exc.__traceback__)[-3:]}
            return json.dumps(body), True, ""


def run_state_machines(endpoint: str) -> None:
    """Turn on moto's real execution of state machines (the server's config survives nothing but this call)."""
    requests.post(f"{endpoint}/moto-api/config", json={"stepfunctions": {"execute_state_machine": True}}, timeout=10)


def iso_execution_start_time(monkeypatch) -> None:
    """`$$.Execution.StartTime` is an ISO 8601 string on AWS ("2026-11-25T20:00:00.123Z"); moto hands the
    state machine a datetime, which it then cannot serialise. Give it AWS's string."""
    from moto.stepfunctions.parser.backend import execution_worker

    original = execution_worker.ExecutionWorker._get_evaluation_environment

    def _get_evaluation_environment(self):
        env = original(self)
        started = env.states.context_object.context_object_data["Execution"]["StartTime"]
        if not isinstance(started, str):
            env.states.context_object.context_object_data["Execution"]["StartTime"] = (
                started.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"))
        return env

    monkeypatch.setattr(execution_worker.ExecutionWorker, "_get_evaluation_environment", _get_evaluation_environment)


def no_retry_intervals(monkeypatch) -> None:
    """The ASL's Retry intervals (60 s, 30 s) are real waits in moto: make them instant."""
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    monkeypatch.setattr(retrier_decl, "time", types.SimpleNamespace(sleep=lambda seconds: None))


@contextlib.contextmanager
def deployed_pipeline(endpoint: str, monkeypatch, codes: list[str], *, batch_size: int, context_for=None):
    """The pipeline deployed to moto with its state machine executing and its functions running in-process
    (InProcessLambdas(context_for)), its list `codes` served by a local server in batches of `batch_size`.
    Yields deploy's document with "lambdas" added. The functions' own variables (deploy's) are applied per
    invocation; the ones set here are registered with monkeypatch so that they are undone."""
    from stockstream_cli.aws.deploy import DeployOptions, deploy

    run_state_machines(endpoint)
    no_retry_intervals(monkeypatch)
    iso_execution_start_time(monkeypatch)
    lambdas = InProcessLambdas(context_for).install(monkeypatch)
    document = deploy(DeployOptions(image_uri=IMAGE_URI), sleep=lambda s: None, waiter_delay=1)
    allow_plain_http_in_moto(document["bucket"])
    monkeypatch.setenv("STOCKSTREAM_STORE", document["store"])
    monkeypatch.setenv("STOCKSTREAM_CACHE_DIR", "/tmp/stockstream-cache")
    monkeypatch.setenv("STOCKSTREAM_BATCH_SIZE", str(batch_size))
    with serving(markit_csv(codes)) as url:
        monkeypatch.setenv("STOCKSTREAM_SOURCE_URL", url)
        yield {"lambdas": lambdas, **document}


POLL = 0.02  # seconds between polls of an execution moto runs in a thread: a busy loop would starve it of the GIL


def poll_pause(_seconds: float = POLL) -> None:
    threading.Event().wait(POLL)


def wait_for(sfn, execution_arn: str, attempts: int = 3000) -> dict:
    """Poll an execution until it stops."""
    for _ in range(attempts):
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return described
        poll_pause()
    raise AssertionError(f"{execution_arn} still running")


def allow_plain_http_in_moto(bucket: str) -> None:
    """Drop the bucket's deny-non-TLS policy: moto ignores policy Conditions, so a conditional Deny refuses
    every object request (real S3 over HTTPS lets them through). Done only where a test moves data."""
    import boto3

    boto3.client("s3", region_name=REGION).delete_bucket_policy(Bucket=bucket)


# moto's IAM enforcement authorizes some requests under names that are no IAM action: S3's under its own
# (s3:HeadBucket, s3:GetPublicAccessBlock, and from moto 5.2.6 s3:ListObjectsV2 and s3:PutBucketEncryption,
# where IAM checks s3:ListBucket, s3:GetBucketPublicAccessBlock, s3:PutEncryptionConfiguration...), CloudWatch's and ECR's under their endpoints' names
# (monitoring:, api.ecr:). A policy replayed on moto gets moto's names beside IAM's; the policies the
# product writes keep IAM's alone.
MOTO_ACTION_NAMES = {"s3:ListBucket": ("s3:HeadBucket", "s3:ListObjectsV2"),
                     "s3:GetBucketPublicAccessBlock": ("s3:GetPublicAccessBlock",),
                     "s3:PutBucketPublicAccessBlock": ("s3:PutPublicAccessBlock",),
                     "s3:GetEncryptionConfiguration": ("s3:GetBucketEncryption",),
                     "s3:PutEncryptionConfiguration": ("s3:PutBucketEncryption",),
                     "s3:PutLifecycleConfiguration": ("s3:PutBucketLifecycleConfiguration",),
                     "s3:GetLifecycleConfiguration": ("s3:GetBucketLifecycleConfiguration",)}
MOTO_SERVICE_NAMES = {"cloudwatch": "monitoring", "ecr": "api.ecr"}


def with_moto_action_names(policy: dict) -> dict:
    """`policy` with moto's name of each action granted beside IAM's (test-only: see MOTO_ACTION_NAMES)."""
    def aliases(action: str) -> list[str]:
        service, name = action.split(":", 1)
        named = list(MOTO_ACTION_NAMES.get(action, ()))
        return named + ([f"{MOTO_SERVICE_NAMES[service]}:{name}"] if service in MOTO_SERVICE_NAMES else [])

    statements = []
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        statements.append({**statement, "Action": actions + [alias for a in actions for alias in aliases(a)]})
    return {**policy, "Statement": statements}


class BucketRequest(NamedTuple):
    method: str
    url: str
    expected: str | None  # the owner it named, None: it named none
    client: str  # the User-Agent's first product ("Boto3/1.34.0", "object_store/0.12.2": polars' reader)


class ExpectedBucketOwner:
    """What S3 does with ExpectedBucketOwner, which moto ignores: a request naming an owner that is not the
    bucket's account gets 403 AccessDenied. Every bucket request is recorded, with the owner it expected."""

    def __init__(self) -> None:
        self.requests: list[BucketRequest] = []

    def install(self, monkeypatch) -> "ExpectedBucketOwner":
        from moto.s3.exceptions import S3AccessDeniedError
        from moto.s3.models import s3_backends
        from moto.s3.responses import S3Response

        recorder = self

        def checked(original):
            def respond(self, request, full_url):
                expected = request.headers.get("x-amz-expected-bucket-owner")
                client = (request.headers.get("user-agent") or "").split(" ")[0]
                recorder.requests.append(BucketRequest(request.method, full_url, expected, client))
                owner = s3_backends.bucket_accounts.get(self.bucket_name, (None, None))[1]
                if expected and owner and expected != owner:
                    raise S3AccessDeniedError()
                return original(self, request, full_url)
            return respond

        monkeypatch.setattr(S3Response, "_bucket_response", checked(S3Response._bucket_response))
        monkeypatch.setattr(S3Response, "_key_response", checked(S3Response._key_response))
        return self

    def without_owner(self) -> list[BucketRequest]:
        """Requests that did not say whose the bucket must be, but CreateBucket (it cannot: it makes it yours)."""
        import urllib.parse

        def is_create(request: BucketRequest) -> bool:
            parsed = urllib.parse.urlparse(request.url)
            return request.method == "PUT" and not parsed.query and parsed.path.strip("/").count("/") == 0

        return [r for r in self.requests if r.expected is None and not is_create(r)]
