"""Load a file into a dataset: COPY into a staging table, then swap it in atomically.

Everything happens in one transaction on a dedicated connection: create the staging
table with the planned types, COPY the data, ANALYZE it, then drop the old table,
rename the staging one, re-grant it to its reader roles and write the catalog row.
A bad row anywhere aborts the whole transaction, so a dataset is either entirely
the new file or entirely what it was; readers see the old table until the commit.
A CSV whose typed column first shows a missing-value word (`NA`) after the sample
the types came from is loaded once more, with such words read as NULL.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, LiteralString, cast

import anyio
import psycopg
from psycopg import AsyncConnection, sql

from bastion.db.database import Database
from servers.analytics.catalog import ColumnSpec, DatasetRecord, get_dataset, save_dataset
from servers.analytics.config import AnalyticsConfig
from servers.analytics.errors import LoadError
from servers.analytics.migrations import DATA_SCHEMA
from servers.analytics.names import check_name
from servers.analytics.readers import Input, LoadPlan, Progress, ReadOptions, build_plan, detect_format
from servers.analytics.roles import grant_to_roles_reading

__all__ = ["ReplaceCheck", "column_summary", "file_input", "load_dataset"]

logger = logging.getLogger(__name__)

ReplaceCheck = Callable[[DatasetRecord], None]
_LINE = re.compile(r"line (\d+)")
_COLUMN = re.compile(r"column (\w+)")
_VALUE = re.compile(r'column \w+: "(.*)"$', re.DOTALL)
_TYPE_ERRORS = frozenset({"22P02", "22007", "22008", "22003", "22023", "22009"})
MAX_COLUMNS = 1600  # PostgreSQL's limit for one table
_NOT_IN_ENCODING = "22021"  # "invalid byte sequence for encoding"


async def load_dataset(
    database: Database,
    name: str,
    source: Input,
    *,
    owner: str,
    fmt: str | None = None,
    column_types: dict[str, str] | None = None,
    read_options: ReadOptions | None = None,
    description: str | None = None,
    config: AnalyticsConfig | None = None,
    progress: Progress | None = None,
    may_replace: ReplaceCheck | None = None,
) -> DatasetRecord:
    """Create or atomically replace dataset `name` from `source`."""
    config = config or AnalyticsConfig()
    check_name(name)
    chosen = detect_format(source, fmt)

    def plan_for(rewrite: bool) -> LoadPlan:
        return build_plan(
            source,
            chosen,
            column_types,
            config.inference_rows,
            read_options=read_options,
            rewrite=rewrite,
        )

    plan = await anyio.to_thread.run_sync(plan_for, False)
    if len(plan.columns) > MAX_COLUMNS:
        raise LoadError(
            f"{source.label}: {len(plan.columns):,} columns, and a PostgreSQL table holds at most "
            f"{MAX_COLUMNS:,}. Load fewer columns, or reshape the data to long form first (one row per "
            f"series and step, say). Nothing was loaded; '{name}' is unchanged."
        )
    conn = await database.connect()
    try:
        try:
            record = await _load(conn, name, source, plan, owner, description, may_replace, progress)
        except _MissingAfterSample as late:
            logger.info("dataset %s: %r in %s after the sample; loading again", name, late.value, late.column)
            plan = await anyio.to_thread.run_sync(plan_for, True)
            record = await _load(conn, name, source, plan, owner, description, may_replace, progress)
    finally:
        await conn.close()
    logger.info(
        "loaded dataset %s: %d rows, %d columns (%s)", name, record.row_count, len(record.columns), chosen
    )
    return record


async def _load(
    conn: AsyncConnection[Any],
    name: str,
    source: Input,
    plan: LoadPlan,
    owner: str,
    description: str | None,
    may_replace: ReplaceCheck | None,
    progress: Progress | None,
) -> DatasetRecord:
    staging = f"_load_{secrets.token_hex(6)}"
    table = sql.Identifier(DATA_SCHEMA, staging)
    try:
        async with conn.transaction():
            columns = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(c["name"]), sql.SQL(cast(LiteralString, c["type"])))
                for c in plan.columns
            )
            await conn.execute(sql.SQL("CREATE TABLE {} ({})").format(table, columns))
            if plan.date_style is not None:  # 15/03/2024: which number is the day
                await conn.execute(sql.SQL("SET LOCAL DateStyle = {}").format(sql.Literal(plan.date_style)))
            async with conn.cursor() as cur:
                statement = sql.SQL("COPY {} FROM STDIN {}").format(table, plan.copy_options)
                async with cur.copy(statement) as copy:
                    await plan.feed(copy, progress)
                rows = max(cur.rowcount, 0)
            # A small sample keeps ANALYZE cheap at any size; autovacuum refines it later.
            await conn.execute("SET LOCAL default_statistics_target = 10")
            await conn.execute(sql.SQL("ANALYZE {}").format(table))
            stats = await _estimated_stats(conn, staging, plan.columns, rows)
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"analytics:{name}",)
            )
            existing = await get_dataset(conn, name, lock=True)
            if existing is not None and may_replace is not None:
                may_replace(existing)
            await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(DATA_SCHEMA, name)))
            await conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(table, sql.Identifier(name)))
            await grant_to_roles_reading(conn, name)
            record = DatasetRecord(
                name=name,
                owner=owner,
                format=plan.format,
                origin=str(source.path) if source.path is not None else source.label,
                row_count=rows,
                columns=plan.columns,
                description=description
                if description is not None
                else (existing.description if existing else ""),
                stats=stats,
                warnings=plan.warnings,
            )
            await save_dataset(conn, record)
    except psycopg.Error as exc:
        late = _missing_after_sample(exc, plan)
        if late is not None:
            raise late from None
        raise _load_error(exc, source, plan, staging, name) from None
    return record


class _MissingAfterSample(Exception):
    """COPY met a missing-value word in a typed CSV column the sample showed none in."""

    def __init__(self, column: str, value: str) -> None:
        super().__init__(column, value)
        self.column = column
        self.value = value


def _missing_after_sample(exc: psycopg.Error, plan: LoadPlan) -> _MissingAfterSample | None:
    if not plan.read_as_csv or plan.rewritten or exc.sqlstate not in _TYPE_ERRORS:
        return None
    context = exc.diag.context or ""
    column, value = _COLUMN.search(context), _VALUE.search(context)
    if column is None or value is None or value.group(1) not in plan.missing:
        return None
    return _MissingAfterSample(column.group(1), value.group(1))


async def _estimated_stats(
    conn: AsyncConnection[Any], table: str, columns: list[ColumnSpec], rows: int
) -> dict[str, Any]:
    """Per-column statistics from ANALYZE's sample: cheap at any size, marked as estimates.
    Values keep their column's type (numbers as numbers). The lowest and highest are taken
    over the most common values and the histogram together, in the column's own order: the
    histogram leaves the common values out, so alone it missed a column's commonest 0."""
    parts = [
        sql.SQL(
            """
            SELECT attname, null_frac, n_distinct,
                   to_jsonb((most_common_vals::text::{array})[1:5]),
                   (SELECT to_jsonb(v) FROM unnest(most_common_vals::text::{array}
                        || histogram_bounds::text::{array}) v ORDER BY v LIMIT 1),
                   (SELECT to_jsonb(v) FROM unnest(most_common_vals::text::{array}
                        || histogram_bounds::text::{array}) v ORDER BY v DESC LIMIT 1)
            FROM pg_stats WHERE schemaname = {schema} AND tablename = {table} AND attname = {column}
            """
        ).format(
            array=sql.SQL(cast(LiteralString, f"{c['type']}[]")),
            schema=sql.Literal(DATA_SCHEMA),
            table=sql.Literal(table),
            column=sql.Literal(c["name"]),
        )
        for c in columns
    ]
    stats: dict[str, Any] = {}
    if parts:
        cur = await conn.execute(sql.SQL(" UNION ALL ").join(parts))
        for attname, null_frac, n_distinct, common, low, high in await cur.fetchall():
            distinct = n_distinct if n_distinct >= 0 else -n_distinct * rows
            stats[attname] = {
                "null_fraction": round(float(null_frac), 4),
                "distinct_estimate": round(float(distinct)),
                "most_common": common or [],
                "min_estimate": low,
                "max_estimate": high,
            }
    return {"estimated": True, "method": "ANALYZE sample", "columns": stats}


def _load_error(exc: psycopg.Error, source: Input, plan: LoadPlan, staging: str, name: str) -> LoadError:
    diag = exc.diag
    message = (diag.message_primary or str(exc)).strip()
    context = (diag.context or "").replace(staging, name)
    where = ""
    line = _LINE.search(context)
    if line:
        where = f"{plan.locate(int(line.group(1)))}: "
    hint = ""
    column = _COLUMN.search(context)
    if exc.sqlstate in _TYPE_ERRORS and column:
        spec = next((c for c in plan.columns if c["name"] == column.group(1)), None)
        if spec is not None and spec["name"] in plan.chosen:
            hint = (
                f" Column {spec['name']!r} was loaded as {spec['type']}, as column_types asked; fix the "
                f"value, or pass column_types={{{spec['name']!r}: 'text'}} (or the right type)."
            )
        elif spec is not None:
            hint = (
                f" Column {spec['name']!r} was loaded as {spec['type']}"
                f"{' (inferred from a sample)' if plan.read_as_csv else ''}; pass "
                f"column_types={{{spec['name']!r}: 'text'}} (or the right type) to override it."
            )
    if "datestyle" in (diag.message_hint or "").lower() and plan.read_as_csv:
        hint += (
            " Dates written day first (15/03/2024) load with date_order='DMY', month first "
            "(03/15/2024) with date_order='MDY'."
        )
    if exc.sqlstate == _NOT_IN_ENCODING and plan.format == "csv":
        hint = (
            " The file is not in the encoding it was read in: give its `encoding` (windows-1252 for "
            "Excel's CSV on Western Windows), or save it as UTF-8."
        )
    return LoadError(f"{source.label}: {where}{message}.{hint} Nothing was loaded; '{name}' is unchanged.")


def file_input(path: str | Path) -> Input:
    """An `Input` for a readable regular file, or LoadError saying what is wrong."""
    file = Path(path).expanduser()
    if not file.exists():
        raise LoadError(f"{file}: no such file")
    if not file.is_file():
        raise LoadError(f"{file}: not a regular file")
    try:
        with file.open("rb"):
            pass
    except OSError as exc:
        raise LoadError(f"{file}: cannot read it ({exc.strerror})") from None
    return Input(str(file), path=file.resolve())


def column_summary(columns: list[ColumnSpec]) -> list[dict[str, str]]:
    return [{"name": c["name"], "type": c["type"], "source_name": c["source_name"]} for c in columns]
