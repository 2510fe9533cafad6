"""Vega-Lite v5 specifications from a query result, with the rows inlined.

Defaults follow the column types: a time on x with a number on y is a line, a
category with a number is a bar, two numbers are a scatter, and a single number is a
histogram. Any of `kind`, `x`, `y` and `color` may be given to override the choice.
A result longer than the chart inlines is reduced over all its rows (`chart_points`),
and `description` says how.
"""

from __future__ import annotations

from typing import Any, Literal

from servers.analytics import chart_points
from servers.analytics.errors import AnalyticsError
from servers.analytics.sandbox import ColumnInfo, QueryResult

__all__ = ["KINDS", "SCHEMA_URL", "ChartKind", "vega_lite"]

SCHEMA_URL = "https://vega.github.io/schema/vega-lite/v5.json"
ChartKind = Literal["bar", "line", "scatter", "histogram"]
KINDS: tuple[ChartKind, ...] = ("bar", "line", "scatter", "histogram")

_NUMERIC = ("smallint", "integer", "bigint", "numeric", "real", "double precision", "int", "float")
_TEMPORAL = ("date", "timestamp", "time")


def _measure(column_type: str) -> Literal["quantitative", "temporal", "nominal"]:
    kind = column_type.lower()
    if kind.startswith(_NUMERIC):
        return "quantitative"
    if kind.startswith(_TEMPORAL):
        return "temporal"
    return "nominal"


def _pick(columns: list[ColumnInfo], name: str | None, what: str) -> ColumnInfo | None:
    if name is None:
        return None
    for column in columns:
        if column["name"] == name:
            return column
    known = ", ".join(c["name"] for c in columns)
    raise AnalyticsError(f"chart {what}={name!r} is not a column of the result; its columns: {known}")


def _defaults(columns: list[ColumnInfo]) -> tuple[ChartKind, ColumnInfo, ColumnInfo | None]:
    types = [_measure(c["type"]) for c in columns]
    numbers = [c for c, t in zip(columns, types, strict=True) if t == "quantitative"]
    others = [c for c, t in zip(columns, types, strict=True) if t != "quantitative"]
    if len(columns) == 1:
        return ("histogram" if numbers else "bar"), columns[0], None
    if others and numbers:
        x = others[0]
        return ("line" if _measure(x["type"]) == "temporal" else "bar"), x, numbers[0]
    if len(numbers) >= 2:
        return "scatter", numbers[0], numbers[1]
    return "bar", columns[0], None


def vega_lite(
    result: QueryResult,
    *,
    kind: str | None = None,
    x: str | None = None,
    y: str | None = None,
    color: str | None = None,
    title: str | None = None,
    limit: int = 5_000,
) -> dict[str, Any]:
    """A Vega-Lite v5 spec for `result`, inlining at most `limit` rows."""
    columns = result["columns"]
    if not columns:
        raise AnalyticsError("the query returned no columns to chart")
    if kind is not None and kind not in KINDS:
        raise AnalyticsError(f"chart kind {kind!r} is not supported: use one of {', '.join(KINDS)}")
    color_col = _pick(columns, color, "color")
    # The color column is a series, not a candidate axis.
    axes = [c for c in columns if c is not color_col] or columns
    default_kind, default_x, default_y = _defaults(axes)
    x_col = _pick(columns, x, "x") or default_x
    y_col = _pick(columns, y, "y") or (default_y if x is None or default_y != x_col else None)
    chosen: ChartKind = kind or default_kind  # type: ignore[assignment]
    names = [c["name"] for c in columns]
    values = [dict(zip(names, row, strict=True)) for row in result["rows"]]
    color_name = color_col["name"] if color_col is not None else None
    # Over `limit` rows, a histogram's bins and a bar's row counts are taken here.
    count_field = _free_name("count", {*names, f"{x_col['name']}_end"})
    how: str | None = None
    encoding: dict[str, Any] = {}
    if chosen == "histogram" and len(values) > limit:
        values, how = chart_points.bins(values, x_col["name"], count_field, color_name)
        encoding["x"] = {"field": x_col["name"], "type": "quantitative", "bin": {"binned": True}}
        encoding["x2"] = {"field": f"{x_col['name']}_end"}
        encoding["y"] = {"field": count_field, "type": "quantitative", "title": "count"}
    elif chosen == "histogram":
        encoding["x"] = {"field": x_col["name"], "type": "quantitative", "bin": True}
        encoding["y"] = {"aggregate": "count", "type": "quantitative"}
    else:
        x_type = _measure(x_col["type"])
        x_encoding: dict[str, Any] = {
            "field": x_col["name"],
            "type": "ordinal" if chosen == "bar" and x_type == "quantitative" else x_type,
        }
        if chosen == "bar" and x_type == "nominal":
            x_encoding["sort"] = None  # keep the query's ORDER BY
        encoding["x"] = x_encoding
        if y_col is None and len(values) > limit:
            values, how = chart_points.counts(values, x_col["name"], color_name, count_field, limit)
            encoding["y"] = {"field": count_field, "type": "quantitative", "title": "count"}
        elif y_col is None:
            encoding["y"] = {"aggregate": "count", "type": "quantitative"}
        else:
            encoding["y"] = {"field": y_col["name"], "type": _measure(y_col["type"])}
            if len(values) > limit:
                values, how = _fit(values, chosen, x_col["name"], y_col["name"], color_name, limit)
    if color_col is not None:
        encoding["color"] = {"field": color_col["name"], "type": _measure(color_col["type"])}
    mark: dict[str, Any] = {
        "type": {"scatter": "point", "histogram": "bar"}.get(chosen, chosen),
        "tooltip": True,
    }
    if chosen == "line":
        mark["point"] = how is None and len(values) <= 100  # a reduced line shows no points
    spec: dict[str, Any] = {
        "$schema": SCHEMA_URL,
        "data": {"values": values},
        "mark": mark,
        "encoding": encoding,
        "width": "container",
    }
    if title:
        spec["title"] = title
    notes: list[str] = []
    if result["truncated"]:
        notes.append(f"the query's first {result['row_count']:,} rows (cut by {result['truncated_by']})")
    if how is not None:
        notes.append(how)
    if notes:
        spec["description"] = "; ".join(notes)
    return spec


def _fit(
    values: list[dict[str, Any]], kind: ChartKind, x: str, y: str, color: str | None, limit: int
) -> chart_points.Reduced:
    """Rows with a y each, over `limit`: lines and scatters reduced, bars cut."""
    if kind == "line":
        return chart_points.line_points(values, x, y, color, limit)
    if kind == "scatter":
        return chart_points.scatter_sample(values, x, y, limit)
    return values[:limit], f"first {limit:,} of {len(values):,} rows (one bar each)"


def _free_name(wanted: str, taken: set[str]) -> str:
    """`wanted`, or `wanted_2`, `wanted_3`... if a column already has that name."""
    name, n = wanted, 1
    while name in taken:
        n += 1
        name = f"{wanted}_{n}"
    return name
