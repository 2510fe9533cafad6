"""`chart`: a Vega-Lite v5 spec of the history, the forecast and its intervals.

Data is inlined (the spec renders with no server behind it): one row per point with
`ds`, `value`, `kind` ("history" or "forecast") and, for forecasts, `lo_<level>` and
`hi_<level>`. Each level is a band, widest palest; the mean is a dashed line.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_HISTORY_SHOWN", "forecast_chart"]

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
MAX_HISTORY_SHOWN = 2_000


def forecast_chart(
    history_labels: list[str | int], history: list[float], result: dict[str, Any], title: str | None = None
) -> dict[str, Any]:
    temporal = bool(history_labels) and isinstance(history_labels[0], str)
    x_type = "temporal" if temporal else "quantitative"
    rows: list[dict[str, Any]] = [
        {"ds": ds, "value": v, "kind": "history"}
        for ds, v in zip(history_labels[-MAX_HISTORY_SHOWN:], history[-MAX_HISTORY_SHOWN:], strict=True)
    ]
    levels = sorted({int(lv) for point in result["forecast"] for lv in point["lower"]}, reverse=True)
    for point in result["forecast"]:
        row: dict[str, Any] = {"ds": point["ds"], "value": point["mean"], "kind": "forecast"}
        for lv in levels:
            row[f"lo_{lv}"] = point["lower"][str(lv)]
            row[f"hi_{lv}"] = point["upper"][str(lv)]
        rows.append(row)
    x = {"field": "ds", "type": x_type, "title": "time" if temporal else "step"}
    layers: list[dict[str, Any]] = []
    for i, lv in enumerate(levels):
        layers.append(
            {
                "transform": [{"filter": "datum.kind === 'forecast'"}],
                "mark": {"type": "area", "opacity": 0.2 + 0.15 * i, "color": "#4c78a8"},
                "encoding": {
                    "x": x,
                    "y": {"field": f"lo_{lv}", "type": "quantitative", "title": "value"},
                    "y2": {"field": f"hi_{lv}"},
                    "tooltip": [
                        {"field": "ds", "type": x_type},
                        {"field": f"lo_{lv}", "title": f"lower {lv}%", "format": ".4~g"},
                        {"field": f"hi_{lv}", "title": f"upper {lv}%", "format": ".4~g"},
                    ],
                },
            }
        )
    layers.append(
        {
            "mark": {"type": "line"},
            "encoding": {
                "x": x,
                "y": {"field": "value", "type": "quantitative", "title": "value"},
                "color": {"field": "kind", "type": "nominal", "title": None},
                "strokeDash": {
                    "field": "kind",
                    "type": "nominal",
                    "scale": {"domain": ["history", "forecast"], "range": [[1, 0], [6, 3]]},
                    "legend": None,
                },
                "tooltip": [{"field": "ds", "type": x_type}, {"field": "value", "format": ".4~g"}],
            },
        }
    )
    return {
        "$schema": SCHEMA,
        "title": title or f"{result['model']} forecast",
        "width": "container",
        "height": 300,
        "data": {"values": rows},
        "layer": layers,
    }
