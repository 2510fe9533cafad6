"""Parquet into a `LoadPlan`: its declared types kept, converted to CSV by Arrow for COPY."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import orjson
from psycopg import sql

from servers.analytics.catalog import ColumnSpec
from servers.analytics.errors import LoadError
from servers.analytics.load_plan import Input, LoadPlan, apply_types, stream
from servers.analytics.names import column_names

__all__ = ["parquet_plan"]


def _is_aware_timestamp(arrow_type: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_timestamp(arrow_type) and arrow_type.tz is not None)


def _arrow_type(arrow_type: Any) -> str:
    import pyarrow as pa

    t = pa.types
    checks: list[tuple[Callable[[Any], bool], str]] = [
        (t.is_boolean, "boolean"),
        (t.is_int8, "smallint"),
        (t.is_int16, "smallint"),
        (t.is_uint8, "smallint"),
        (t.is_int32, "integer"),
        (t.is_uint16, "integer"),
        (t.is_integer, "bigint"),
        (t.is_floating, "double precision"),
        (t.is_decimal, "numeric"),
        (t.is_date, "date"),
        (t.is_time, "time"),
        (t.is_duration, "interval"),
        (_is_aware_timestamp, "timestamptz"),
        (t.is_timestamp, "timestamp"),
        (t.is_string, "text"),
        (t.is_large_string, "text"),
        (t.is_binary, "bytea"),
        (t.is_large_binary, "bytea"),
    ]
    for check, pg in checks:
        if check(arrow_type):
            return pg
    return "jsonb"


def parquet_plan(source: Input, overrides: dict[str, str] | None) -> LoadPlan:
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise LoadError("loading Parquet needs pyarrow: pip install 'bastion[analytics]'") from None
    try:
        with source.open() as f:
            table = pq.read_table(f)
    except (pa.ArrowException, OSError) as exc:
        raise LoadError(f"{source.label}: not a readable Parquet file ({exc}); nothing was loaded") from None
    headers = [str(n) for n in table.column_names]
    names = column_names(headers)
    columns: list[ColumnSpec] = []
    arrays: list[Any] = []
    for name, header, column in zip(names, headers, table.columns, strict=True):
        pg = _arrow_type(column.type)
        if pg == "jsonb":
            column = pa.array(
                [None if v is None else orjson.dumps(v, default=str).decode() for v in column.to_pylist()]
            )
        elif pg == "bytea":
            column = pa.array([None if v is None else "\\x" + v.hex() for v in column.to_pylist()])
        elif pg == "interval":
            column = pa.array(
                [None if v is None else f"{v.total_seconds()} seconds" for v in column.to_pylist()]
            )
        columns.append({"name": name, "type": pg, "source_name": header})
        arrays.append(column)
    buffer = io.BytesIO()
    pacsv.write_csv(pa.table(arrays, names=names), buffer, pacsv.WriteOptions(include_header=True))
    data = buffer.getvalue()
    options = sql.SQL("(FORMAT csv, HEADER true, ENCODING 'UTF8', FREEZE true)")
    chosen = apply_types(columns, overrides)
    return LoadPlan(
        "parquet",
        columns,
        options,
        len(data),
        stream(Input(source.label, data=data)),
        lambda line: f"row {line - 1}",
        chosen=chosen,
    )
