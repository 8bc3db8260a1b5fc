"""The dataset for Athena (aws/catalog.py): what deploy registers in the Glue Data Catalog and the workgroup,
on moto as far as moto holds them (the database, the tables and views as Glue stores them, the workgroup, the
results' lifecycle rule, their removal), and as plans where moto has no operation (UpdateWorkGroup). The
views' SQL text is run on DuckDB against `load` in tests/test_views.py."""

from __future__ import annotations

import json

import boto3
import pytest

from aws_fake import IMAGE_URI, REGION
from helpers import run_stockstream
from stockstream_cli.aws import catalog
from stockstream_cli.aws import resources as res
from stockstream_cli.aws.deploy import DeployOptions, deploy
from stockstream_cli.aws.destroy import destroy
from stockstream_cli.aws.planner import _plan_results_expiry, _plan_tables, _plan_workgroup
from stockstream_cli.dataset.views import ATHENA, actions_select, prices_select

ACCOUNT = "123456789012"
BUCKET = f"stockstream-data-{ACCOUNT}-{REGION}"
QUICK = {"sleep": lambda s: None, "waiter_delay": 1}


def _client(service: str):
    return boto3.client(service, region_name=REGION)


def _catalog_steps(changes: list[dict]) -> list[tuple[str, str, str]]:
    kinds = ("glue database", "glue table", "athena workgroup", "s3 lifecycle rule")
    return [(c["action"], c["resource"], c["name"]) for c in changes if c["resource"] in kinds]


def test_deploy_dry_run_lists_the_glue_database_its_tables_and_the_workgroup(moto_endpoint):
    result = run_stockstream("deploy", "--dry-run", "--image-uri", IMAGE_URI, "--stage", "prod", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    bucket = plan["bucket"]
    assert _catalog_steps(plan["changes"]) == [
        ("create", "s3 lifecycle rule", f"{bucket}/athena-results/"),
        ("create", "glue database", "stockstream_prod"),
        ("create", "glue table", "stockstream_prod.raw_prices"),
        ("create", "glue table", "stockstream_prod.raw_actions"),
        ("create", "glue table", "stockstream_prod.prices"),
        ("create", "glue table", "stockstream_prod.actions"),
        ("create", "athena workgroup", "stockstream-prod"),
    ]
    text = run_stockstream("deploy", "--dry-run", "--image-uri", IMAGE_URI)
    assert "+ create glue table stockstream.prices: view: load's rows" in text.stdout
    assert "+ create athena workgroup stockstream: query results to s3://" in text.stdout


def test_deploy_registers_the_dataset_and_destroy_removes_it_keeping_the_bucket(moto_endpoint):
    s3 = _client("s3")
    first = deploy(DeployOptions(image_uri=IMAGE_URI), **QUICK)
    glue, athena = _client("glue"), _client("athena")
    database = glue.get_database(Name="stockstream")["Database"]
    assert database["Description"] == "stockstream: the dataset for Athena"
    assert glue.get_tags(ResourceArn=f"arn:aws:glue:{REGION}:{ACCOUNT}:database/stockstream")["Tags"] == {"app": "stockstream"}
    tables = {t["Name"]: t for t in glue.get_tables(DatabaseName="stockstream")["TableList"]}
    assert sorted(tables) == ["actions", "prices", "raw_actions", "raw_prices"]
    raw = tables["raw_prices"]
    assert raw["TableType"] == "EXTERNAL_TABLE" and raw["StorageDescriptor"]["Location"] == f"s3://{BUCKET}/raw-data/"
    assert raw["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    assert [(c["Name"], c["Type"]) for c in raw["StorageDescriptor"]["Columns"]] == [
        ("symbol", "string"), ("date", "date"), ("open", "double"), ("high", "double"), ("low", "double"),
        ("close", "double"), ("volume", "bigint"), ("adjusted_close", "double"), ("fetch_timestamp", "string"),
        ("batch_number", "int")]
    assert tables["raw_actions"]["StorageDescriptor"]["Location"] == f"s3://{BUCKET}/actions/"
    view = tables["prices"]
    assert view["TableType"] == "VIRTUAL_VIEW" and view["Parameters"]["presto_view"] == "true"
    definition = catalog.view_definition(view["ViewOriginalText"])
    assert definition["originalSql"] == prices_select("raw_prices", ATHENA)
    assert (definition["catalog"], definition["schema"]) == ("awsdatacatalog", "stockstream")
    assert [(c["name"], c["type"]) for c in definition["columns"]][-3:] == [
        ("adjusted_close", "double"), ("fetch_timestamp", "varchar"), ("batch_number", "integer")]
    assert catalog.view_definition(tables["actions"]["ViewOriginalText"])["originalSql"] == \
        actions_select("raw_actions", ATHENA)
    workgroup = athena.get_work_group(WorkGroup="stockstream")["WorkGroup"]["Configuration"]
    assert workgroup["ResultConfiguration"]["OutputLocation"] == f"s3://{BUCKET}/athena-results/stockstream/"
    assert workgroup["EnforceWorkGroupConfiguration"] is True
    arn = f"arn:aws:athena:{REGION}:{ACCOUNT}:workgroup/stockstream"
    assert {t["Key"]: t["Value"] for t in athena.list_tags_for_resource(ResourceARN=arn)["Tags"]} == {"app": "stockstream"}
    rules = s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    assert [(r["ID"], r["Filter"]["Prefix"], r["Expiration"]["Days"]) for r in rules] == [
        ("stockstream-athena-results", "athena-results/", 7)]
    assert first["resources"]["glue database"] == f"arn:aws:glue:{REGION}:{ACCOUNT}:database/stockstream"

    assert deploy(DeployOptions(image_uri=IMAGE_URI), **QUICK)["changes"] == []  # nothing changed, nothing applied

    shown = run_stockstream("destroy", "--dry-run")
    assert shown.returncode == 0, shown.stderr
    assert "- delete athena workgroup stockstream" in shown.stdout and "- delete glue database stockstream" in shown.stdout
    assert "- delete glue table stockstream.prices: the definition only: the files stay" in shown.stdout
    planned = destroy(dry_run=True)
    assert [(s["action"], s["resource"], s["name"]) for s in planned["to_remove"][:6]] == [
        ("delete", "athena workgroup", "stockstream"), ("delete", "glue table", "stockstream.actions"),
        ("delete", "glue table", "stockstream.prices"), ("delete", "glue table", "stockstream.raw_actions"),
        ("delete", "glue table", "stockstream.raw_prices"), ("delete", "glue database", "stockstream")]
    assert glue.get_database(Name="stockstream")  # a dry run removes nothing
    destroy()
    assert glue.get_databases()["DatabaseList"] == []
    assert "stockstream" not in [w["Name"] for w in athena.list_work_groups()["WorkGroups"]]
    assert s3.head_bucket(Bucket=BUCKET)  # the data bucket stays
    assert destroy()["removed"] == []


def test_a_changed_view_is_updated_and_the_owners_lifecycle_rules_are_kept(moto_endpoint):
    deploy(DeployOptions(image_uri=IMAGE_URI), **QUICK)
    glue, s3 = _client("glue"), _client("s3")
    edited = {k: v for k, v in glue.get_table(DatabaseName="stockstream", Name="prices")["Table"].items()
              if k in ("Name", "TableType", "Parameters", "StorageDescriptor", "ViewExpandedText")}
    glue.update_table(DatabaseName="stockstream", TableInput={
        **edited, "ViewOriginalText": catalog.presto_view_text("SELECT * FROM raw_prices", "stockstream", "prices")})
    owners = {"ID": "owners-logs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled", "Expiration": {"Days": 30}}
    s3.put_bucket_lifecycle_configuration(Bucket=BUCKET, LifecycleConfiguration={"Rules": [owners]})

    again = deploy(DeployOptions(image_uri=IMAGE_URI), **QUICK)
    assert _catalog_steps(again["changes"]) == [("create", "s3 lifecycle rule", f"{BUCKET}/athena-results/"),
                                                 ("update", "glue table", "stockstream.prices")]
    view = glue.get_table(DatabaseName="stockstream", Name="prices")["Table"]
    assert catalog.view_definition(view["ViewOriginalText"])["originalSql"] == prices_select("raw_prices", ATHENA)
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]}
    assert set(rules) == {"owners-logs", "stockstream-athena-results"} and rules["owners-logs"]["Expiration"]["Days"] == 30
    assert deploy(DeployOptions(image_uri=IMAGE_URI), **QUICK)["changes"] == []


def test_each_stage_has_its_own_database_and_workgroup():
    default, prod = res.Names(None, REGION), res.Names("prod", REGION)
    assert (default.database, default.workgroup) == ("stockstream", "stockstream")
    assert (prod.database, prod.workgroup) == ("stockstream_prod", "stockstream-prod")


TARGET = res.Target(account=ACCOUNT, region=REGION, bucket=BUCKET, image_uri=IMAGE_URI)


def test_a_workgroup_whose_results_go_elsewhere_is_updated_in_updatework_groups_shape():
    """moto has no UpdateWorkGroup: the plan is checked as data."""
    elsewhere = {"Configuration": {"ResultConfiguration": {"OutputLocation": "s3://other/"},
                                   "EnforceWorkGroupConfiguration": False,
                                   "EngineVersion": {"SelectedEngineVersion": "AUTO"}},
                 "tags": {"app": "stockstream"}}
    steps = _plan_workgroup(TARGET, elsewhere)
    assert [c.operation for s in steps for c in s.calls] == ["update_work_group"]
    assert steps[0].calls[0].params == {"WorkGroup": "stockstream", "ConfigurationUpdates": {
        "ResultConfigurationUpdates": {"OutputLocation": f"s3://{BUCKET}/athena-results/stockstream/"},
        "EnforceWorkGroupConfiguration": True, "EngineVersion": {"SelectedEngineVersion": "Athena engine version 3"}}}
    as_wanted = {"Configuration": catalog.workgroup_configuration(BUCKET, "stockstream"), "tags": {"app": "stockstream"}}
    assert _plan_workgroup(TARGET, as_wanted) == []


def test_a_table_glue_returns_without_its_empty_serde_info_is_as_wanted():
    wanted = {t["Name"]: t for t in catalog.table_inputs("stockstream", BUCKET)}
    answered = {name: {**t, "StorageDescriptor": {k: v for k, v in t["StorageDescriptor"].items() if v != {}},
                       "CreateTime": "2026-12-07", "IsRegisteredWithLakeFormation": False}
                for name, t in wanted.items()}
    assert _plan_tables(TARGET, answered) == []
    moved = {**answered, "raw_prices": {**answered["raw_prices"], "StorageDescriptor": {
        **answered["raw_prices"]["StorageDescriptor"], "Location": "s3://elsewhere/raw-data/"}}}
    assert [(s.action, s.name) for s in _plan_tables(TARGET, moved)] == [("update", "stockstream.raw_prices")]


@pytest.mark.parametrize("rules, expected", [
    ([catalog.results_rule()], []),
    ([{**catalog.results_rule(), "Expiration": {"Days": 30}}], ["update"]),
    ([], ["create"]),
])
def test_the_results_rule_is_put_only_when_missing_or_changed(rules, expected):
    assert [s.action for s in _plan_results_expiry(TARGET, rules)] == expected
