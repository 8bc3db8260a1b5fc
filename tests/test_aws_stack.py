"""The AWS stack as a real account meets it (issue 14), against a moto server: stages and regions side by side,
the bucket's owner and KMS key, the repository's policies, concurrency, monitoring, logs, drift, the output."""

from __future__ import annotations

import datetime as dt
import json

import boto3
import pytest

from aws_fake import IMAGE_URI, REGION, ExpectedBucketOwner
from helpers import run_stockstream
from stockstream_cli.aws import resources as res
from stockstream_cli.aws.deploy import DeployOptions, deploy
from stockstream_cli.errors import AwsError, InputError

ACCOUNT = "123456789012"
OTHER_REGION = "us-east-1"
OTHER_IMAGE = IMAGE_URI.replace(REGION, OTHER_REGION)


def _deploy(**options) -> dict:
    return deploy(DeployOptions(**{"image_uri": IMAGE_URI, **options}), sleep=lambda s: None, waiter_delay=1)


def _client(service: str, region: str = REGION):
    return boto3.client(service, region_name=region)


def _function_names(region: str = REGION) -> set[str]:
    return {f["FunctionName"] for f in _client("lambda", region).list_functions()["Functions"]}


def _role_names() -> set[str]:
    return {r["RoleName"] for r in _client("iam").list_roles()["Roles"]}


# ---------------------------------------------------------------- 5. stages and regions side by side


def test_two_stages_and_two_regions_live_side_by_side_and_destroy_removes_only_its_own(moto_endpoint):
    _deploy()
    _deploy(stage="test")
    deploy(DeployOptions(image_uri=OTHER_IMAGE, region=OTHER_REGION, stage="test"), sleep=lambda s: None, waiter_delay=1)
    assert _function_names() == {"asx-symbol-updater", "stock-data-fetcher", "asx-symbol-updater-test",
                                 "stock-data-fetcher-test"}
    assert _function_names(OTHER_REGION) == {"asx-symbol-updater-test", "stock-data-fetcher-test"}
    assert {r for r in _role_names() if r.startswith("stockstream-")} == {
        f"stockstream-{kind}-{REGION}" for kind in ("lambda", "states", "schedule")} | {
        f"stockstream-{kind}-test-{region}" for kind in ("lambda", "states", "schedule") for region in (REGION, OTHER_REGION)}
    buckets = {b["Name"] for b in _client("s3").list_buckets()["Buckets"]}
    assert buckets == {f"stockstream-data-{ACCOUNT}-{REGION}", f"stockstream-data-test-{ACCOUNT}-{REGION}",
                       f"stockstream-data-test-{ACCOUNT}-{OTHER_REGION}"}
    dashboards = {d["DashboardName"] for d in _client("cloudwatch").list_dashboards()["DashboardEntries"]}
    assert {"stockstream-ap-southeast-2", "stockstream-test-ap-southeast-2"} <= dashboards

    # every name, role policy and tag of the test stage is its own
    lam = _client("lambda")
    fetcher = lam.get_function(FunctionName="stock-data-fetcher-test")
    assert fetcher["Tags"] == {"app": "stockstream", "stage": "test"}
    assert fetcher["Configuration"]["Role"].endswith(f":role/stockstream-lambda-test-{REGION}")
    assert fetcher["Configuration"]["Environment"]["Variables"]["STOCKSTREAM_STAGE"] == "test"
    policy = _client("iam").get_role_policy(RoleName=f"stockstream-states-test-{REGION}", PolicyName="stockstream")
    text = json.dumps(policy["PolicyDocument"])
    assert f"function:stock-data-fetcher-test" in text and "function:stock-data-fetcher\"" not in text
    alarms = {a["AlarmName"] for a in _client("cloudwatch").describe_alarms()["MetricAlarms"]}
    assert "stockstream-test-no-execution" in alarms and "stockstream-no-execution" in alarms
    [rate] = _client("cloudwatch").describe_alarms(AlarmNames=["stockstream-test-fetch-success-rate"])["MetricAlarms"]
    assert rate["Metrics"][0]["MetricStat"]["Metric"]["Dimensions"] == [{"Name": "Stage", "Value": "test"}]
    # a redeploy of one stage changes nothing of it
    assert _deploy(stage="test")["changes"] == []

    status = run_stockstream("status", "--remote", "--stage", "test", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["state_machine_arn"].endswith(":stateMachine:stock-data-pipeline-test")

    gone = run_stockstream("destroy", "--stage", "test", "--yes", "--json")
    assert gone.returncode == 0, gone.stderr
    assert _function_names() == {"asx-symbol-updater", "stock-data-fetcher"}
    assert _function_names(OTHER_REGION) == {"asx-symbol-updater-test", "stock-data-fetcher-test"}
    assert not any(r.startswith("stockstream-") and f"-test-{REGION}" in r for r in _role_names())
    assert f"stockstream-lambda-test-{OTHER_REGION}" in _role_names() and f"stockstream-lambda-{REGION}" in _role_names()
    machines = {m["name"] for m in _client("stepfunctions").list_state_machines()["stateMachines"]}
    assert machines == {"stock-data-pipeline"}
    alarms = {a["AlarmName"] for a in _client("cloudwatch").describe_alarms()["MetricAlarms"]}
    assert alarms and not any(a.startswith("stockstream-test-") for a in alarms)
    assert _deploy()["changes"] == []  # the default stack is whole
    refused = run_stockstream("status", "--remote", "--stage", "test")
    assert refused.returncode == 1 and "stock-data-pipeline-test" in refused.stderr and "--stage test" in refused.stderr
    bad = run_stockstream("deploy", "--stage", "Prod_1", "--image-uri", IMAGE_URI)
    assert bad.returncode == 2 and "--stage" in bad.stderr


def test_destroy_without_a_stage_removes_the_roles_named_before_stages_only_in_their_region(moto_endpoint):
    """Roles were once account-wide `stockstream-lambda` etc.: destroy takes them only when they name its region."""
    iam = _client("iam")
    target = res.Target(account=ACCOUNT, region=REGION, bucket="b", image_uri=IMAGE_URI)
    for name in res.LEGACY_ROLES:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(res.trust_policy("lambda.amazonaws.com")))
        iam.put_role_policy(RoleName=name, PolicyName="stockstream", PolicyDocument=json.dumps(res.states_role_policy(target)))
    other = run_stockstream("destroy", "--region", OTHER_REGION, "--yes", "--json")
    assert other.returncode == 0 and json.loads(other.stdout)["removed"] == []
    result = run_stockstream("destroy", "--yes", "--json")
    assert [s["name"] for s in json.loads(result.stdout)["removed"]] == list(res.LEGACY_ROLES)
    assert not set(res.LEGACY_ROLES) & _role_names()


# ---------------------------------------------------------------- 6. the bucket: its owner, its key


def test_every_s3_call_of_deploy_names_the_owner_and_a_bucket_of_another_account_is_refused(moto_endpoint, monkeypatch):
    owner = ExpectedBucketOwner().install(monkeypatch)
    _deploy()
    assert owner.requests and owner.without_owner() == []
    assert {r.expected for r in owner.requests} == {ACCOUNT, None}  # None: the CreateBucket

    # someone else's account created the predictable name first
    other = boto3.client("s3", region_name=REGION)
    other.meta.events.register("before-sign.s3.*", lambda request, **_: request.headers.__setitem__(
        "x-moto-account-id", "210987654321"))
    other.create_bucket(Bucket="taken-by-someone-else", CreateBucketConfiguration={"LocationConstraint": REGION})
    with pytest.raises(AwsError, match="taken-by-someone-else exists but is not this account's"):
        _deploy(bucket="taken-by-someone-else")


def test_the_functions_store_names_the_owner_on_every_call(moto_endpoint, monkeypatch):
    """STOCKSTREAM_BUCKET_OWNER (deploy sets it on the functions): the store refuses a bucket of another account."""
    from stockstream_cli.dataset.store import open_store

    owner = ExpectedBucketOwner().install(monkeypatch)
    s3 = _client("s3")
    s3.create_bucket(Bucket="ours", CreateBucketConfiguration={"LocationConstraint": REGION})
    monkeypatch.setenv("STOCKSTREAM_BUCKET_OWNER", ACCOUNT)
    store = open_store("s3://ours")
    store.put("runs/2026-11-25/run.json", b"{}")
    assert store.get("runs/2026-11-25/run.json") == b"{}" and store.list("runs/") == ["runs/2026-11-25/run.json"]
    assert store.exists("runs/2026-11-25/run.json")
    assert len(owner.requests) == 5 and owner.without_owner() == []  # the test's own CreateBucket aside
    monkeypatch.setenv("STOCKSTREAM_BUCKET_OWNER", "210987654321")
    from stockstream_cli.errors import StoreError

    with pytest.raises(StoreError):
        open_store("s3://ours").get("runs/2026-11-25/run.json")


def test_a_customer_managed_kms_key_on_the_bucket_is_granted_to_the_functions(moto_endpoint):
    kms = _client("kms")
    key = kms.create_key(Description="data key")["KeyMetadata"]
    kms.create_alias(AliasName="alias/stockstream-data", TargetKeyId=key["KeyId"])
    s3 = _client("s3")
    s3.create_bucket(Bucket="encrypted-data", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_encryption(Bucket="encrypted-data", ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/stockstream-data"}}]})
    document = _deploy(bucket="encrypted-data")
    assert not [c for c in document["changes"] if c["resource"] == "s3 bucket" and "encryption" in " ".join(c["details"])]
    policy = _client("iam").get_role_policy(RoleName=f"stockstream-lambda-{REGION}", PolicyName="stockstream")["PolicyDocument"]
    [grant] = [s for s in policy["Statement"] if s["Sid"] == "BucketKey"]
    assert grant["Resource"] == key["Arn"] and sorted(grant["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert grant["Condition"] == {"StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}}
    rule = s3.get_bucket_encryption(Bucket="encrypted-data")["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"  # the owner's choice is kept


# ---------------------------------------------------------------- 7. concurrency


class AccountSettings:
    """moto has no GetAccountSettings: answer it as Lambda does, with this many unreserved executions."""

    def __init__(self, session, unreserved: int, limit: int = 1000):
        self.answer = {"AccountLimit": {"ConcurrentExecutions": limit, "UnreservedConcurrentExecutions": unreserved},
                       "AccountUsage": {}, "ResponseMetadata": {"HTTPStatusCode": 200}}
        session.events.register("before-call.lambda.GetAccountSettings", self)

    def __call__(self, **_):
        class Http:
            status_code = 200
        return Http(), self.answer


def test_the_fetcher_reserves_the_maps_concurrency_when_the_quota_allows(moto_endpoint):
    session = boto3.session.Session(region_name=REGION)
    AccountSettings(session, unreserved=1000)
    document = deploy(DeployOptions(image_uri=IMAGE_URI), session=session, sleep=lambda s: None, waiter_delay=1)
    assert document["notes"] == []
    assert ("update", "lambda function", "stock-data-fetcher") in [(c["action"], c["resource"], c["name"]) for c in document["changes"]]
    concurrency = _client("lambda").get_function_concurrency(FunctionName="stock-data-fetcher")
    assert concurrency["ReservedConcurrentExecutions"] == res.MAP_MAX_CONCURRENCY == 10

    small = boto3.session.Session(region_name=REGION)
    AccountSettings(small, unreserved=10, limit=10)  # a new account's quota of 10: nothing to spare
    again = deploy(DeployOptions(image_uri=IMAGE_URI, stage="small"), session=small, sleep=lambda s: None, waiter_delay=1)
    assert len(again["notes"]) == 1 and "quota (10)" in again["notes"][0] and "Service Quotas" in again["notes"][0]
    assert "ReservedConcurrentExecutions" not in _client("lambda").get_function_concurrency(FunctionName="stock-data-fetcher-small")


def test_a_remote_rerun_refuses_while_the_days_execution_runs(moto_endpoint):
    """With state machines not executed, moto leaves a started execution RUNNING."""
    import requests

    from stockstream_cli.aws.remote import rerun_remote

    requests.post(f"{moto_endpoint}/moto-api/config", json={"stepfunctions": {"execute_state_machine": False}}, timeout=10)

    document = _deploy()
    sfn = _client("stepfunctions")
    sfn.start_execution(stateMachineArn=document["state_machine_arn"], name="daily-2026-11-25",
                        input=json.dumps({"date": "2026-11-25"}))
    with pytest.raises(InputError, match=r"still running 2026-11-25 \(daily-2026-11-25\)"):
        rerun_remote(dt.date(2026, 11, 25), wait=False)
    result = run_stockstream("rerun-failed", "--remote", "--date", "2026-11-25")
    assert result.returncode == 2 and "still running" in result.stderr
    assert [e["name"] for e in sfn.list_executions(stateMachineArn=document["state_machine_arn"])["executions"]] == [
        "daily-2026-11-25"]


# ---------------------------------------------------------------- 8. monitoring as the design has it


def test_the_alarms_and_the_dashboard_as_the_design_states_them(moto_endpoint):
    document = _deploy()
    cloudwatch = _client("cloudwatch")
    alarms = {a["AlarmName"]: a for a in cloudwatch.describe_alarms()["MetricAlarms"]}
    topic = document["topic_arn"]
    assert all(a["AlarmActions"] == [topic] for a in alarms.values())
    rate = alarms["stockstream-fetch-success-rate"]
    metrics = {m["Id"]: m for m in rate["Metrics"]}
    assert metrics["successrate"]["Expression"] == "100 * fetched / total"
    assert metrics["fetched"]["MetricStat"]["Metric"]["MetricName"] == "SymbolsFetched"
    assert metrics["total"]["MetricStat"]["Metric"]["MetricName"] == "TotalSymbols"
    assert (rate["Threshold"], rate["ComparisonOperator"]) == (90, "LessThanThreshold")
    silent = alarms["stockstream-no-execution"]
    assert (silent["MetricName"], silent["Statistic"], silent["Period"]) == ("ExecutionsStarted", "Sum", 86400)
    assert (silent["ComparisonOperator"], silent["Threshold"], silent["TreatMissingData"]) == ("LessThanThreshold", 1, "missing")
    assert silent["InsufficientDataActions"] == [topic]
    assert silent["Dimensions"] == [{"Name": "StateMachineArn", "Value": document["state_machine_arn"]}]
    assert {a["TreatMissingData"] for n, a in alarms.items() if n != "stockstream-no-execution"} == {"notBreaching"}

    widgets = json.loads(cloudwatch.get_dashboard(DashboardName=f"stockstream-{REGION}")["DashboardBody"])["widgets"]
    by_title = {w["properties"]["title"]: w["properties"] for w in widgets}
    assert len(widgets) == 6 and len(by_title) == 6
    assert by_title["Symbols fetched vs failed"]["view"] == "pie"
    storage = by_title["S3 storage (bytes, objects)"]["metrics"]
    assert storage[0][:4] == ["AWS/S3", "BucketSizeBytes", "BucketName", document["bucket"]]
    [cost] = [p for t, p in by_title.items() if t.startswith("Estimated cost per execution")]
    expression = cost["metrics"][-1][0]
    assert expression["id"] == "cost" and "/ IF(e, e, 1)" in expression["expression"]
    ids = {m[-1]["id"] for m in cost["metrics"][:-1]}
    assert ids == {"d1", "d2", "i1", "i2", "e"}
    assert all(w["width"] == 12 and w["height"] == 6 for w in widgets)
    assert sorted((w["x"], w["y"]) for w in widgets) == [(0, 0), (0, 6), (0, 12), (12, 0), (12, 6), (12, 12)]


def test_the_symbol_updater_emits_total_symbols_with_the_stage(monkeypatch, capsys):
    from stockstream_cli.run.lambda_runtime import emf_line, emit_metrics

    monkeypatch.setenv("STOCKSTREAM_STAGE", "test")
    emit_metrics({"TotalSymbols": 1838})
    record = json.loads(capsys.readouterr().out)
    assert record["TotalSymbols"] == 1838 and record["Stage"] == "test"
    assert record["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Stage"]]
    assert json.loads(emf_line({"SymbolsFetched": 3}))["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [[]]
    source = (res.__file__.rsplit("stockstream_cli", 1)[0] + "lambda_src/asx_symbol_updater.py")
    assert 'emit_metrics({"TotalSymbols": len(update.symbols)})' in open(source).read()


# ---------------------------------------------------------------- 9. log groups, logging, tracing


def test_log_groups_keep_what_you_choose_and_tracing_is_configurable(moto_endpoint):
    _deploy()
    changed = _deploy(log_retention_days=14)
    kinds = [(c["resource"], c["name"], c["details"]) for c in changed["changes"]]
    assert kinds == [("log group", name, ["kept 30 -> 14 days"]) for name in
                     ("/aws/lambda/asx-symbol-updater", "/aws/lambda/stock-data-fetcher",
                      "/aws/vendedlogs/states/stock-data-pipeline")]
    groups = {g["logGroupName"]: g["retentionInDays"] for g in _client("logs").describe_log_groups()["logGroups"]}
    assert set(groups.values()) == {14} and len(groups) == 3
    assert _deploy(log_retention_days=14)["changes"] == []
    # tracing on: planned for both functions and the state machine (moto keeps a function's TracingConfig
    # only when the function is created, so the traced stack is a stage of its own)
    planned = deploy(DeployOptions(image_uri=IMAGE_URI, log_retention_days=14, tracing=True), dry_run=True)
    updates = [call["params"] for c in planned["changes"] for call in c["calls"]
               if call.get("operation") in {"update_function_configuration", "update_state_machine"}]
    assert [p.get("TracingConfig") or p.get("tracingConfiguration") for p in updates] == [
        {"Mode": "Active"}, {"Mode": "Active"}, {"enabled": True}]
    traced = _deploy(stage="traced", tracing=True)
    machine = _client("stepfunctions").describe_state_machine(stateMachineArn=traced["state_machine_arn"])
    assert machine["tracingConfiguration"] == {"enabled": True} and machine["loggingConfiguration"]["level"] == "ERROR"
    function = _client("lambda").get_function(FunctionName="stock-data-fetcher-traced")["Configuration"]
    assert function["TracingConfig"] == {"Mode": "Active"}
    for role in ("states", "lambda"):
        statements = _client("iam").get_role_policy(RoleName=f"stockstream-{role}-traced-{REGION}", PolicyName="stockstream")
        assert "Tracing" in {s["Sid"] for s in statements["PolicyDocument"]["Statement"]}
    untraced = _client("iam").get_role_policy(RoleName=f"stockstream-lambda-{REGION}", PolicyName="stockstream")
    assert "Tracing" not in {s["Sid"] for s in untraced["PolicyDocument"]["Statement"]}
    assert _deploy(stage="traced", tracing=True)["changes"] == []
    bad = run_stockstream("deploy", "--image-uri", IMAGE_URI, "--log-retention-days", "10")
    assert bad.returncode == 2 and "--log-retention-days 10" in bad.stderr


# ---------------------------------------------------------------- 10. drift


def test_environment_variables_added_in_the_console_survive_a_deploy_and_env_sets_more(moto_endpoint):
    _deploy()
    lam = _client("lambda")
    config = lam.get_function_configuration(FunctionName="stock-data-fetcher")
    variables = {**config["Environment"]["Variables"], "HTTPS_PROXY": "http://proxy:3128"}
    lam.update_function_configuration(FunctionName="stock-data-fetcher", Environment={"Variables": variables})
    assert _deploy()["changes"] == []
    assert lam.get_function_configuration(FunctionName="stock-data-fetcher")["Environment"]["Variables"]["HTTPS_PROXY"] == "http://proxy:3128"
    result = run_stockstream("deploy", "--image-uri", IMAGE_URI, "--env", "STOCKSTREAM_DELAY=3", "--json")
    assert result.returncode == 0, result.stderr
    assert [c["details"] for c in json.loads(result.stdout)["changes"]] == [["configuration: Environment"]] * 2
    after = lam.get_function_configuration(FunctionName="stock-data-fetcher")["Environment"]["Variables"]
    assert (after["HTTPS_PROXY"], after["STOCKSTREAM_DELAY"], after["STOCKSTREAM_STORE"]) == (
        "http://proxy:3128", "3", f"s3://stockstream-data-{ACCOUNT}-{REGION}")
    for bad, message in ((["--env", "NOEQUALS"], "KEY=VALUE"), (["--env", "STOCKSTREAM_STORE=s3://x"], "deploy sets that one")):
        refused = run_stockstream("deploy", "--image-uri", IMAGE_URI, *bad)
        assert refused.returncode == 2 and message in refused.stderr


# ---------------------------------------------------------------- 12. what deploy prints


def test_deploy_ends_with_the_arns_and_console_links_and_a_dry_run_prices_the_stack(moto_endpoint):
    result = run_stockstream("deploy", "--image-uri", IMAGE_URI)
    assert result.returncode == 0, result.stderr
    tail = result.stdout.splitlines()[-15:]
    assert tail[0].startswith("store: s3://")
    assert tail[1] == f"bucket: arn:aws:s3:::stockstream-data-{ACCOUNT}-{REGION}"
    assert tail[2] == f"state machine: arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:stock-data-pipeline"
    assert tail[4] == f"fetcher: arn:aws:lambda:{REGION}:{ACCOUNT}:function:stock-data-fetcher"
    assert tail[8] == f"glue database: arn:aws:glue:{REGION}:{ACCOUNT}:database/stockstream"
    assert tail[9] == f"athena workgroup: arn:aws:athena:{REGION}:{ACCOUNT}:workgroup/stockstream"
    assert tail[10].startswith(f"console, state machine: https://{REGION}.console.aws.amazon.com/states/home")
    assert tail[-1].startswith("console, bucket: https://s3.console.aws.amazon.com/s3/buckets/")

    dry = json.loads(run_stockstream("deploy", "--image-uri", IMAGE_URI, "--dry-run", "--json").stdout)
    cost = dry["cost"]
    assert cost["profile"]["source"].startswith("default profile")  # the bucket holds no run yet
    assert cost["executions_per_month"] == 30.4
    lines = {line["item"]: line["monthly_usd"] for line in cost["lines"]}
    # 19 batches x 205 s (100 symbols on 1 worker, 2 s apart) at 0.5 GB + 10 s at 0.25 GB + 30 s at 0.5 GB
    # = 1,965 GB-s an execution, arm64
    assert lines["Lambda compute"] == round(30.4 * 1965 * res.PRICE_LAMBDA_ARM_GB_S, 2) == 0.80
    assert cost["shape"] == {"max_concurrency": 10, "workers": 1, "requests_per_second": 5.0}
    assert lines["CloudWatch alarms"] == 0.9  # 1 + 4 + 1 + 2 + 1 alarm metrics at $0.10
    assert cost["monthly_usd"] == round(sum(lines.values()), 2) or abs(cost["monthly_usd"] - sum(lines.values())) < 0.05
    human = run_stockstream("deploy", "--image-uri", IMAGE_URI, "--dry-run")
    assert "estimated cost: about $" in human.stdout and "Lambda compute: $0.80" in human.stdout
    assert "shape: at most 10 batches at once, 1 fetcher thread(s) each: 5 requests/s toward Yahoo" in human.stdout


def test_the_cost_uses_the_run_the_bucket_records(moto_endpoint):
    from stockstream_cli.aws.cost import executions_per_month, measured_profile
    from stockstream_cli.dataset.store import open_store

    document = _deploy()
    from aws_fake import allow_plain_http_in_moto

    allow_plain_http_in_moto(document["bucket"])
    store = open_store(document["store"])
    store.put("runs/2026-11-25/run.json", json.dumps({"total_symbols": 250, "num_batches": 3}).encode())
    for number, seconds in enumerate((100.0, 120.0, 50.0)):
        store.put(f"runs/2026-11-25/batch-{number}.json", json.dumps({"metadata": {"execution_time": seconds}}).encode())
    profile = measured_profile(store)
    assert (profile.symbols, profile.batches, profile.fetcher_seconds_per_batch) == (250, 3, 90.0)
    assert profile.source == "measured from runs/2026-11-25/ in the bucket"
    dry = deploy(DeployOptions(image_uri=IMAGE_URI), dry_run=True)
    assert dry["cost"]["profile"]["batches"] == 3
    assert executions_per_month("cron(0 20 ? * MON-FRI *)") == round(30.4 * 5 / 7, 1)
    assert executions_per_month("rate(12 hours)") == 60.8


# ---------------------------------------------------------------- 12. logs


def test_logs_prints_the_functions_events_moto_holds(moto_endpoint):
    from stockstream_cli.aws.remote import parse_since, read_logs

    _deploy()
    logs = _client("logs")
    now = int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)
    for group, message, ago in (("/aws/lambda/stock-data-fetcher", '{"level":"INFO","message":"batch 0 fetched"}', 60_000),
                                ("/aws/lambda/asx-symbol-updater", '{"level":"INFO","message":"1838 symbols"}', 120_000),
                                ("/aws/lambda/stock-data-fetcher", "old line", 3 * 3600_000)):
        logs.create_log_stream(logGroupName=group, logStreamName=f"s{ago}")
        logs.put_log_events(logGroupName=group, logStreamName=f"s{ago}",
                            logEvents=[{"timestamp": now - ago, "message": message}])
    result = run_stockstream("logs", "--since", "1h")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split("  ", 2)[1:] for line in lines] == [
        ["asx-symbol-updater", '{"level":"INFO","message":"1838 symbols"}'],
        ["stock-data-fetcher", '{"level":"INFO","message":"batch 0 fetched"}']]
    only = run_stockstream("logs", "--function", "fetcher", "--since", "4h", "--json")
    assert [json.loads(line)["message"] for line in only.stdout.splitlines()] == ["old line", '{"level":"INFO","message":"batch 0 fetched"}']
    assert run_stockstream("logs", "--function", "nope").returncode == 2
    assert run_stockstream("logs", "--since", "yesterday").returncode == 2

    # --follow: new events as they come, each once
    seen, sleeps = [], []

    def put_more(_seconds):
        sleeps.append(_seconds)
        logs.put_log_events(logGroupName="/aws/lambda/stock-data-fetcher", logStreamName="s60000",
                            logEvents=[{"timestamp": now + len(sleeps), "message": f"new {len(sleeps)}"}])

    count = read_logs(function="fetcher", since="5m", follow=True, on_event=seen.append, max_polls=3, sleep=put_more)
    assert [e["message"] for e in seen] == ['{"level":"INFO","message":"batch 0 fetched"}', "new 1", "new 2"] and count == 3
    assert parse_since("90s", dt.datetime(2026, 11, 25, tzinfo=dt.timezone.utc)) == dt.datetime(2026, 11, 24, 23, 58, 30, tzinfo=dt.timezone.utc)
