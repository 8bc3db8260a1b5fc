"""A data file's bytes: Parquet in the contract's schema (schema.py), written by fetch and backfill, read back
checked by fetch's merge and compact. No typer or rich here."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from .. import schema
from ..errors import CorruptFileError, KeyNotFound

if TYPE_CHECKING:
    import polars as pl


def to_parquet_bytes(rows: "pl.DataFrame") -> bytes:
    buffer = io.BytesIO()
    rows.select(schema.COLUMNS).cast(dict(schema.polars_schema())).write_parquet(buffer)
    return buffer.getvalue()


def read_parquet_key(store, key: str, expected_schema, what: str) -> "pl.DataFrame | None":
    """A stored Parquet file checked against `expected_schema` (CorruptFileError naming it, else); None when
    there is none. `what` names the schema in the message."""
    import polars as pl

    try:
        data = store.get(key)
    except KeyNotFound:
        return None
    try:
        rows = pl.read_parquet(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - polars raises several kinds for a broken file
        raise CorruptFileError(key, f"not a readable Parquet file: {exc}") from None
    if rows.schema != expected_schema:
        raise CorruptFileError(key, f"schema {dict(rows.schema)} is not {what}")
    return rows


def read_batch_rows(store, key: str) -> "pl.DataFrame | None":
    """A stored batch file, checked against the contract's schema; None when there is none."""
    return read_parquet_key(store, key, schema.polars_schema(), "the contract's")
