"""The dataset in the Glue Data Catalog, for Athena: what deploy registers, as plain data (no AWS call here).

Athena reads Parquet through a table over a folder, and a folder of the store holds superseded fetches beside
the current rows, so the answer `load` gives needs the newest-wins rule on top. Per stage, a Glue database
(Names.database) holds:
- `raw_prices` over s3://BUCKET/raw-data/ and `raw_actions` over s3://BUCKET/actions/: every stored row, as
  the files hold them (the Parquet schema's columns; Athena adds "$path", the row's file);
- `prices` and `actions`: views giving exactly `load`'s and `actions`' rows, the rule's SQL text from
  dataset/views.py in Athena's dialect (views.ATHENA: what differs, and the one tie it cannot break).
And an Athena workgroup (Names.workgroup) writing query results under s3://BUCKET/athena-results/WORKGROUP/,
which a lifecycle rule on the bucket expires after RESULTS_KEPT_DAYS.

The views are Glue tables of type VIRTUAL_VIEW in the encoding Athena writes itself for CREATE VIEW (Trino's
"Presto view": the SELECT, its catalog, schema and columns as base64 JSON in ViewOriginalText, parameter
presto_view=true). So deploy makes them with the Glue API like the tables, reads them back and compares them
like every other resource, and runs no query (no results location, no polling, nothing to wait for).
"""

from __future__ import annotations

import base64
import json

from ..dataset.layout import ACTIONS_PREFIX, RAW_DATA_PREFIX
from ..dataset.views import ATHENA, actions_select, prices_select

RESULTS_PREFIX = "athena-results/"
RESULTS_KEPT_DAYS = 7
RESULTS_RULE_ID = "stockstream-athena-results"
ENGINE_VERSION = "Athena engine version 3"
ATHENA_CATALOG = "awsdatacatalog"  # how Athena names the account's Glue Data Catalog
PRESTO_VIEW_PREFIX, PRESTO_VIEW_SUFFIX = "/* Presto View: ", " */"

PARQUET = {
    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
}
# polars type -> (the Glue/Hive name, the Trino name a view's columns carry)
TYPES = {"String": ("string", "varchar"), "Date": ("date", "date"), "Float64": ("double", "double"),
         "Int64": ("bigint", "bigint"), "Int32": ("int", "integer")}

RAW_PRICES, RAW_ACTIONS, PRICES, ACTIONS = "raw_prices", "raw_actions", "prices", "actions"
TABLES = (RAW_PRICES, RAW_ACTIONS, PRICES, ACTIONS)  # in the order they are created (a view after its table)


def columns(kind: str) -> list[tuple[str, str, str]]:
    """(name, Hive type, Trino type) of each column of the prices' or the actions' Parquet schema."""
    from .. import schema

    types = schema.polars_schema() if kind == "prices" else schema.action_schema()
    return [(name, *TYPES[str(dtype)]) for name, dtype in types.items()]


def database_input(database: str, stage: str | None) -> dict:
    return {"Name": database, "Description": f"stockstream: the dataset for Athena{f' (stage {stage})' if stage else ''}"}


def table_inputs(database: str, bucket: str) -> list[dict]:
    """The Glue TableInput of each table, in TABLES' order."""
    return [
        _raw_table(RAW_PRICES, f"s3://{bucket}/{RAW_DATA_PREFIX}", "prices",
                   f"every stored price row, superseded fetches included: query {PRICES}"),
        _raw_table(RAW_ACTIONS, f"s3://{bucket}/{ACTIONS_PREFIX}", "actions",
                   f"every stored corporate action row: query {ACTIONS}"),
        _view(PRICES, database, "prices", prices_select(RAW_PRICES, ATHENA),
              "load's rows: one per (symbol, date), the newest fetch winning"),
        _view(ACTIONS, database, "actions", actions_select(RAW_ACTIONS, ATHENA),
              "the actions command's rows: one per (symbol, date, kind), the newest fetch winning"),
    ]


def _glue_columns(kind: str) -> list[dict]:
    return [{"Name": name, "Type": hive} for name, hive, _ in columns(kind)]


def _raw_table(name: str, location: str, kind: str, description: str) -> dict:
    return {"Name": name, "Description": f"stockstream: {description}", "TableType": "EXTERNAL_TABLE",
            "Parameters": {"classification": "parquet", "EXTERNAL": "TRUE"},
            "StorageDescriptor": {"Columns": _glue_columns(kind), "Location": location, **PARQUET}}


def _view(name: str, database: str, kind: str, sql: str, description: str) -> dict:
    return {"Name": name, "Description": f"stockstream: {description}", "TableType": "VIRTUAL_VIEW",
            "Parameters": {"presto_view": "true", "comment": "Presto View"},
            "ViewOriginalText": presto_view_text(sql, database, kind),
            "ViewExpandedText": "/* Presto View */",
            "StorageDescriptor": {"Columns": _glue_columns(kind), "SerdeInfo": {}}}


def presto_view_text(sql: str, database: str, kind: str) -> str:
    definition = {"originalSql": sql, "catalog": ATHENA_CATALOG, "schema": database,
                  "columns": [{"name": name, "type": trino} for name, _, trino in columns(kind)]}
    encoded = base64.b64encode(json.dumps(definition, separators=(",", ":")).encode()).decode()
    return f"{PRESTO_VIEW_PREFIX}{encoded}{PRESTO_VIEW_SUFFIX}"


def view_definition(text: str) -> dict:
    """The JSON a Presto view's ViewOriginalText carries (the inverse of presto_view_text)."""
    return json.loads(base64.b64decode(text.removeprefix(PRESTO_VIEW_PREFIX).removesuffix(PRESTO_VIEW_SUFFIX)))


def results_location(bucket: str, workgroup: str) -> str:
    return f"s3://{bucket}/{RESULTS_PREFIX}{workgroup}/"


def workgroup_configuration(bucket: str, workgroup: str) -> dict:
    """Results under the data bucket (encrypted by its default encryption), enforced for every query in it."""
    return {"ResultConfiguration": {"OutputLocation": results_location(bucket, workgroup)},
            "EnforceWorkGroupConfiguration": True,
            "EngineVersion": {"SelectedEngineVersion": ENGINE_VERSION}}


def workgroup_updates(configuration: dict) -> dict:
    """UpdateWorkGroup's ConfigurationUpdates for `configuration` (its shape differs from CreateWorkGroup's)."""
    return {"ResultConfigurationUpdates": configuration["ResultConfiguration"],
            "EnforceWorkGroupConfiguration": configuration["EnforceWorkGroupConfiguration"],
            "EngineVersion": configuration["EngineVersion"]}


def results_rule() -> dict:
    return {"ID": RESULTS_RULE_ID, "Filter": {"Prefix": RESULTS_PREFIX}, "Status": "Enabled",
            "Expiration": {"Days": RESULTS_KEPT_DAYS}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}
