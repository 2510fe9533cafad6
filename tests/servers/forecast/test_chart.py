"""The Vega-Lite chart of history, forecast and intervals."""

from __future__ import annotations

from servers.forecast.chart import SCHEMA, forecast_chart

RESULT = {
    "model": "AutoETS",
    "forecast": [
        {"ds": "2024-01-03", "mean": 3.0, "lower": {"80": 2.5, "95": 2.0}, "upper": {"80": 3.5, "95": 4.0}},
    ],
}


def test_the_spec_inlines_history_and_forecast_rows_with_a_band_per_level() -> None:
    spec = forecast_chart(["2024-01-01", "2024-01-02"], [1.0, 2.0], RESULT)
    assert spec["$schema"] == SCHEMA
    rows = spec["data"]["values"]
    assert [r["kind"] for r in rows] == ["history", "history", "forecast"]
    assert rows[-1]["lo_95"] == 2.0 and rows[-1]["hi_80"] == 3.5
    bands = [layer for layer in spec["layer"] if layer["mark"]["type"] == "area"]
    assert [b["encoding"]["y"]["field"] for b in bands] == ["lo_95", "lo_80"]  # widest first
    assert spec["layer"][-1]["encoding"]["x"]["type"] == "temporal"
    assert spec["title"] == "AutoETS forecast"


def test_step_indexes_use_a_quantitative_axis() -> None:
    result = {**RESULT, "forecast": [{**RESULT["forecast"][0], "ds": 2}]}
    spec = forecast_chart([0, 1], [1.0, 2.0], result, title="demo")
    assert spec["layer"][-1]["encoding"]["x"]["type"] == "quantitative"
    assert spec["title"] == "demo"
