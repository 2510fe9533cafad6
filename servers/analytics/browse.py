"""What a caller may see: the dataset list, one dataset's shape, and its profile.

Embedded datasets and the tables of external sources appear side by side; a source
table is named `source.schema.table`. Sample rows and profiles run through the same
sandbox as any query, as the same reader role, under the same limits.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from psycopg import sql

from bastion.caller import CallerContext
from servers.analytics import access
from servers.analytics.catalog import list_datasets, list_sources
from servers.analytics.errors import AnalyticsError, NotFoundError
from servers.analytics.guard import CheckedQuery, Relation
from servers.analytics.service import AnalyticsService
from servers.analytics.sources import source_tables

__all__ = ["describe", "list_all", "profile"]

logger = logging.getLogger(__name__)

_NUMERIC = frozenset({"smallint", "integer", "bigint", "numeric", "real", "double precision"})
_TEMPORAL = frozenset(
    {"date", "timestamp", "timestamp without time zone", "timestamptz", "timestamp with time zone"}
)
_UNORDERED = frozenset({"boolean", "jsonb", "json", "xml", "bytea"})
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
TOP_VALUES = 5
_INTEGER = re.compile(r"[+-]?\d+")
# Means and interpolated quantiles to 12 significant digits: exact for any data a person
# writes, without binary noise (138.1, not 138.09999999999854).
_DIGITS = 12


def _typed(text: str | None, kind: str) -> Any:
    """A min, max or top value, read as text so that one query holds every column, back in
    its column's JSON type: numbers as numbers (NaN, infinities and integers beyond 64 bits
    keep their text), booleans as booleans, the rest as PostgreSQL prints it."""
    if text is None:
        return None
    if kind in _NUMERIC:
        if _INTEGER.fullmatch(text):
            integer = int(text)
            return integer if -(2**63) <= integer < 2**64 else text
        number = float(text)
        return number if math.isfinite(number) else text
    if kind == "boolean":
        return text == "true"
    return text


def _rounded(value: float | str | None) -> float | str | None:
    return float(f"{value:.{_DIGITS}g}") if isinstance(value, float) else value


async def list_all(service: AnalyticsService, caller: CallerContext) -> dict[str, Any]:
    async with service.database.pool.connection() as conn:
        datasets = [d for d in await list_datasets(conn) if caller.may_read_dataset(d.name)]
        sources = [s for s in await list_sources(conn) if access.may_use_source(caller, s.name)]
    listed: list[dict[str, Any]] = []
    for src in sources:
        entry: dict[str, Any] = {"name": src.name, "server": src.display, "schemas": []}
        try:
            async with service.source_connection(src.name) as conn:
                tables = await source_tables(conn)
        except AnalyticsError as exc:
            entry["error"] = exc.message
            listed.append(entry)
            continue
        schemas: dict[str, list[dict[str, str]]] = {}
        for schema, table, kind in tables:
            if access.may_read_source_table(caller, src.name, schema, table):
                schemas.setdefault(schema, []).append(
                    {"name": table, "dataset": f"{src.name}.{schema}.{table}", "kind": kind}
                )
        entry["schemas"] = [{"name": s, "tables": t} for s, t in schemas.items()]
        listed.append(entry)
    return {"datasets": [d.summary() for d in datasets], "sources": listed}


def _split_source_name(name: str) -> tuple[str, str, str]:
    parts = name.split(".")
    if len(parts) == 2:
        return parts[0], access.DEFAULT_SCHEMA, parts[1]
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    raise NotFoundError(f"{name!r}: name a dataset, or a source table as source.schema.table")


async def _target(
    service: AnalyticsService, caller: CallerContext, name: str
) -> tuple[str | None, Relation, list[dict[str, str]], dict[str, Any]]:
    """(source, relation, columns, extra facts) of a dataset or source table the caller may read."""
    if "." not in name:
        record = await service.readable_dataset(caller, name)
        columns = [
            {"name": c["name"], "type": c["type"], "source_name": c["source_name"]} for c in record.columns
        ]
        extra = record.summary() | {"statistics": record.stats}
        return None, Relation(None, name), columns, extra
    source, schema, table = _split_source_name(name)
    if not access.may_read_source_table(caller, source, schema, table):
        raise NotFoundError(f"no table {schema}.{table} on source {source!r} that you may read")
    async with service.source_connection(source) as conn:
        cur = await conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (schema, table),
        )
        columns = [{"name": str(c), "type": str(t)} for c, t in await cur.fetchall()]
    if not columns:
        raise NotFoundError(f"no table {schema}.{table} on source {source!r} that you may read")
    return source, Relation(schema, table), columns, {"name": name, "kind": "source_table", "source": source}


def _table(rel: Relation) -> sql.Composable:
    return sql.Identifier(rel.name) if rel.schema is None else sql.Identifier(rel.schema, rel.name)


async def _run(
    service: AnalyticsService, caller: CallerContext, source: str | None, rel: Relation, query: sql.Composable
) -> dict[str, Any]:
    text = query.as_string(None)
    checked = CheckedQuery(text=text, kind="select", relations=[rel])
    return dict(await service.run_checked(caller, checked, None, service.limits(caller, None), source))


async def describe(service: AnalyticsService, caller: CallerContext, name: str) -> dict[str, Any]:
    source, rel, columns, extra = await _target(service, caller, name)
    table = _table(rel)
    sample = await _run(
        service,
        caller,
        source,
        rel,
        sql.SQL("SELECT * FROM {} LIMIT {}").format(table, sql.Literal(service.config.sample_rows)),
    )
    count = await _run(service, caller, source, rel, sql.SQL("SELECT count(*) FROM {}").format(table))
    return extra | {"columns": columns, "row_count": count["rows"][0][0], "sample_rows": sample["rows"]}


def _kind(column: dict[str, str]) -> str:
    return column["type"].split("(")[0].strip()


def _scalar_stats(column: dict[str, str]) -> list[sql.Composable]:
    ident = sql.Identifier(column["name"])
    kind = _kind(column)
    parts: list[sql.Composable] = [
        sql.SQL("count(*) - count({})").format(ident),
        sql.SQL("count(DISTINCT {})").format(ident),
    ]
    if kind in _UNORDERED:
        parts += [sql.SQL("NULL"), sql.SQL("NULL")]
    else:
        parts += [sql.SQL("min({})::text").format(ident), sql.SQL("max({})::text").format(ident)]
    quantiles = sql.SQL("ARRAY[{}]").format(sql.SQL(", ").join(sql.Literal(q) for q in QUANTILES))
    if kind in _NUMERIC:
        parts.append(sql.SQL("avg({})::float8").format(ident))
        parts.append(sql.SQL("percentile_cont({}) WITHIN GROUP (ORDER BY {})").format(quantiles, ident))
    elif kind in _TEMPORAL:
        parts.append(sql.SQL("NULL"))
        parts.append(
            sql.SQL("percentile_disc({}) WITHIN GROUP (ORDER BY {})::text[]").format(quantiles, ident)
        )
    else:
        parts += [sql.SQL("NULL"), sql.SQL("NULL")]
    return parts


async def profile(
    service: AnalyticsService, caller: CallerContext, name: str, columns: list[str] | None = None
) -> dict[str, Any]:
    source, rel, all_columns, _ = await _target(service, caller, name)
    if columns:
        unknown = [c for c in columns if c not in {col["name"] for col in all_columns}]
        if unknown:
            known = ", ".join(c["name"] for c in all_columns)
            raise NotFoundError(f"{name} has no column {', '.join(map(repr, unknown))}; its columns: {known}")
        by_name = {c["name"]: c for c in all_columns}
        chosen = [by_name[c] for c in dict.fromkeys(columns)]
    else:
        chosen = all_columns
    table = _table(rel)
    select = [sql.SQL("count(*)")]
    for column in chosen:
        select += _scalar_stats(column)
    stats = await _run(
        service, caller, source, rel, sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(select), table)
    )
    row = stats["rows"][0]
    total = row[0]
    tops = [
        sql.SQL(
            "(SELECT {} AS col, v, n FROM (SELECT {}::text AS v, count(*) AS n FROM {} GROUP BY 1 "
            "ORDER BY 2 DESC, 1 LIMIT {}) t)"
        ).format(sql.Literal(c["name"]), sql.Identifier(c["name"]), table, sql.Literal(TOP_VALUES))
        for c in chosen
    ]
    top_rows = (
        await _run(service, caller, source, rel, sql.SQL(" UNION ALL ").join(tops)) if tops else {"rows": []}
    )
    kinds = {c["name"]: _kind(c) for c in chosen}
    top: dict[str, list[dict[str, Any]]] = {}
    for col, value, n in top_rows["rows"]:
        top.setdefault(col, []).append({"value": _typed(value, kinds[col]), "count": n})
    profiled: list[dict[str, Any]] = []
    for index, column in enumerate(chosen):
        nulls, distinct, low, high, mean, qs = row[1 + index * 6 : 7 + index * 6]
        kind = kinds[column["name"]]
        entry: dict[str, Any] = {
            "name": column["name"],
            "type": column["type"],
            "nulls": nulls,
            "distinct": distinct,
            "min": _typed(low, kind),
            "max": _typed(high, kind),
            "mean": _rounded(mean),
            "quantiles": None
            if qs is None
            else dict(zip([f"p{round(q * 100)}" for q in QUANTILES], map(_rounded, qs), strict=True)),
            "top_values": top.get(column["name"], []),
        }
        profiled.append(entry)
    return {"dataset": name, "row_count": total, "columns": profiled}
