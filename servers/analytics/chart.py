"""Vega-Lite v5 specifications from a query result, with the rows inlined.

Defaults follow the column types: a time on x with a number on y is a line, a
category with a number is a bar, two numbers are a scatter, and a single number is a
histogram. Any of `kind`, `x`, `y` and `color` may be given to override the choice.
"""

from __future__ import annotations

from typing import Any, Literal

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
) -> dict[str, Any]:
    """A Vega-Lite v5 spec for `result`."""
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
    encoding: dict[str, Any] = {}
    if chosen == "histogram":
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
        if y_col is not None:
            encoding["y"] = {"field": y_col["name"], "type": _measure(y_col["type"])}
        else:
            encoding["y"] = {"aggregate": "count", "type": "quantitative"}
    if color_col is not None:
        encoding["color"] = {"field": color_col["name"], "type": _measure(color_col["type"])}
    mark: dict[str, Any] = {
        "type": {"scatter": "point", "histogram": "bar"}.get(chosen, chosen),
        "tooltip": True,
    }
    if chosen == "line":
        mark["point"] = len(values) <= 100
    spec: dict[str, Any] = {
        "$schema": SCHEMA_URL,
        "data": {"values": values},
        "mark": mark,
        "encoding": encoding,
        "width": "container",
    }
    if title:
        spec["title"] = title
    if result["truncated"]:
        spec["description"] = (
            f"first {result['row_count']} rows; the result was truncated ({result['truncated_by']})"
        )
    return spec
