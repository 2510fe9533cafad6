"""The `analytics` server: datasets from files, external PostgreSQL sources, read-only SQL.

Tools (names and arguments are a contract):

    list_datasets()                              datasets and source tables the caller may read
    describe(dataset)                            columns, types, row count, sample rows
    profile(dataset, columns?)                   nulls, distinct, min, max, mean, quantiles, top values
    query(sql, params?, max_rows=1000, source?)  rows of one read-only statement
    explain(sql, source?)                        the plan, as PostgreSQL's JSON
    chart(sql, kind?, x?, y?, color?, source?)   a Vega-Lite v5 spec with the rows inlined
    load_dataset(name, path?, content?, format?) create or atomically replace a dataset
    drop_dataset(name)                           remove a dataset
    register_source(name, dsn)                   admin: add an external PostgreSQL database
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from bastion.mcp import ServerRuntime, ServerSpec, current_caller, structured
from bastion.mcp.arguments import SqlParams
from servers.analytics import browse
from servers.analytics.chart import vega_lite
from servers.analytics.guard import CheckedQuery, check_sql
from servers.analytics.loader import column_summary
from servers.analytics.migrations import MIGRATIONS
from servers.analytics.readers import ReadOptions
from servers.analytics.sandbox import QueryResult
from servers.analytics.service import service_for

__all__ = ["spec"]

spec = ServerSpec(
    name="analytics",
    description="Datasets from CSV, Parquet and JSON files, external PostgreSQL sources, and read-only SQL.",
    instructions=(
        "Call list_datasets to see what can be queried, describe or profile a dataset to learn its "
        "columns, then query it with one read-only SELECT (PostgreSQL dialect; bind values as $1, $2 "
        "with params). Name an external source with `source`. chart returns a Vega-Lite spec."
    ),
    migrations=MIGRATIONS,
)

_READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)


Params = Annotated[
    SqlParams | None,
    Field(description="Values bound to $1, $2... in order: text, numbers, booleans, null or arrays of them."),
]


def _service(ctx: Context[ServerRuntime, Any]):
    return service_for(ctx.request_context.lifespan_context)


@spec.tool(annotations=_READ)
async def list_datasets(ctx: Context[ServerRuntime, Any]) -> dict[str, Any]:
    """The datasets you may query (name, description, owner, row count, columns) and the tables of
    registered external sources, named `source.schema.table`."""
    return await browse.list_all(_service(ctx), current_caller())


@spec.tool(annotations=_READ)
async def describe(dataset: str, ctx: Context[ServerRuntime, Any]) -> dict[str, Any]:
    """Columns and types, row count, sample rows and stored statistics of a dataset or of an
    external table (`source.schema.table`)."""
    return await browse.describe(_service(ctx), current_caller(), dataset)


@spec.tool(annotations=_READ)
async def profile(
    dataset: str, ctx: Context[ServerRuntime, Any], columns: list[str] | None = None
) -> dict[str, Any]:
    """Exact statistics per column: nulls, distinct values, min, max, mean, quantiles (p5..p95)
    and the most frequent values. `columns` limits it to those columns."""
    return await browse.profile(_service(ctx), current_caller(), dataset, columns)


@spec.tool(annotations=_READ)
async def query(
    sql: str,
    ctx: Context[ServerRuntime, Any],
    params: Params = None,
    max_rows: Annotated[int, Field(ge=0, description="At most this many rows (0: the columns only).")] = 1000,
    source: str | None = None,
) -> Annotated[CallToolResult, QueryResult]:
    """Run one read-only statement (SELECT, WITH, VALUES or EXPLAIN) on the datasets, or on the
    external `source` named. Bind values as $1, $2... with `params`. Returns columns with types,
    rows, row_count, truncated (true when max_rows or the byte cap cut the result) and elapsed_ms."""
    return structured(await _service(ctx).query(current_caller(), sql, params, max_rows, source))


@spec.tool(annotations=_READ)
async def explain(
    sql: str,
    ctx: Context[ServerRuntime, Any],
    source: str | None = None,
    params: Params = None,
) -> dict[str, Any]:
    """The query plan PostgreSQL would use for `sql`, without running it (EXPLAIN, FORMAT JSON)."""
    service = _service(ctx)
    caller = current_caller()
    checked = check_sql(sql)
    if checked.kind == "select":
        checked = CheckedQuery(
            text=f"EXPLAIN (FORMAT JSON) {checked.text}\n",
            kind="explain",
            relations=checked.relations,
            param_count=checked.param_count,
        )
    result = await service.run_checked(caller, checked, params, service.limits(caller, None), source)
    lines = [
        str(row[0]) if not isinstance(row[0], list | dict) else orjson.dumps(row[0]).decode()
        for row in result["rows"]
    ]
    text = "\n".join(lines)
    try:
        plan: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        plan = text
    return {"plan": plan, "elapsed_ms": result["elapsed_ms"]}


@spec.tool(annotations=_READ)
async def chart(
    sql: str,
    ctx: Context[ServerRuntime, Any],
    kind: str | None = None,
    x: str | None = None,
    y: str | None = None,
    color: str | None = None,
    source: str | None = None,
    params: Params = None,
    title: str | None = None,
    max_points: Annotated[
        int | None,
        Field(ge=1, description="At most this many points inlined (default and ceiling 5,000)."),
    ] = None,
) -> Annotated[CallToolResult, dict[str, Any]]:
    """A Vega-Lite v5 chart (bar, line, scatter or histogram) of a query's result, data inlined.
    Defaults follow the column types; `kind`, `x`, `y` and `color` override them. Over
    `max_points` rows (5,000) the chart is drawn from every row: lines keep each stretch's
    first, last, lowest and highest point, histograms and row counts are binned and counted
    here, scatters are sampled with each axis's extremes; `description` says how."""
    service = _service(ctx)
    caller = current_caller()
    # Every row up to the query ceiling is read, and reduced to what the chart inlines.
    result = await service.query(caller, sql, params, service.config.max_rows, source)
    ceiling = service.config.chart_max_rows
    limit = ceiling if max_points is None else min(max_points, ceiling)
    spec = vega_lite(result, kind=kind, x=x, y=y, color=color, title=title, limit=limit)
    return structured(spec)


@spec.tool(annotations=ToolAnnotations(destructive_hint=True, idempotent_hint=True, open_world_hint=False))
async def load_dataset(
    name: str,
    ctx: Context[ServerRuntime, Any],
    path: str | None = None,
    # Plain `str` (not Optional): the SDK would parse JSON-looking text into objects otherwise.
    content: str = "",
    format: str | None = None,
    column_types: dict[str, str] | None = None,
    null_values: list[str] | None = None,
    encoding: str | None = None,
    decimal: str | None = None,
    date_order: str | None = None,
    thousands: str | None = None,
    sheet: str | None = None,
    description: str = "",
) -> dict[str, Any]:
    """Create or atomically replace dataset `name` from a CSV, Parquet, JSON (lines, array or one
    object) or workbook (.xlsx, .xls, .ods; one `sheet`, by name or position from 1, default the
    first) file at `path` on the server (a relative path is read from BASTION_HOME/uploads), or
    from `content` (text; Parquet and workbooks as base64). Types are
    inferred; `column_types` overrides them per column, e.g. {"zip": "text"}. In a CSV column of
    numbers, dates or booleans, words for a missing value (NA, N/A, #N/A, NaN, NULL, None, ...) load
    as NULL; `null_values` replaces that list, e.g. ["?"], and [] keeps every value as written. A
    CSV file not in UTF-8 needs its `encoding`, e.g. "windows-1252"; `decimal` "," reads numbers
    written 1.234,5 and `thousands` "," numbers written 1,234.5; `date_order` "DMY" reads dates
    written 15/03/2024, "MDY" 03/15/2024 (ISO and year-first dates need none). An empty
    `description` keeps the current one on a reload."""
    record = await _service(ctx).load(
        current_caller(),
        name,
        path=path,
        content=content or None,
        fmt=format,
        column_types=column_types,
        read_options=ReadOptions(null_values, encoding, decimal, thousands, date_order, sheet),
        description=description or None,
    )
    return record.summary() | {
        "columns": column_summary(record.columns),
        "statistics": record.stats,
        "warnings": record.warnings,
    }


@spec.tool(annotations=ToolAnnotations(destructive_hint=True, open_world_hint=False))
async def drop_dataset(name: str, ctx: Context[ServerRuntime, Any]) -> dict[str, Any]:
    """Remove a dataset and its table. Only its owner or an admin may."""
    return await _service(ctx).drop(current_caller(), name)


@spec.tool(annotations=ToolAnnotations(destructive_hint=False, idempotent_hint=True, open_world_hint=True))
async def register_source(name: str, dsn: str, ctx: Context[ServerRuntime, Any]) -> dict[str, Any]:
    """Admin only: register an external PostgreSQL database by DSN. The DSN is stored encrypted and
    never returned; use a role that can only read (GRANT SELECT), as it is the sandbox there."""
    return await _service(ctx).register_source(current_caller(), name, dsn)
