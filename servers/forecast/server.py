"""The `forecast` server: statistical forecasts with model choice by cross-validation.

Tools are thin: they check nothing themselves, run the synchronous engine off the
event loop, turn input errors into tool errors with the engine's message, and record
each run in the `forecast` schema. numpy, pandas and statsforecast are imported when
a tool first runs, so loading this spec (as `bastion.components` does) stays cheap.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from bastion.errors import ConfigError
from bastion.mcp import ServerRuntime, ServerSpec
from bastion.mcp.arguments import SeriesTimestamps, SeriesValues
from bastion.mcp.runs import record_run
from servers.forecast.runs import MIGRATIONS, RunRecord

__all__ = ["spec"]

logger = logging.getLogger(__name__)

spec = ServerSpec(
    name="forecast",
    description="Statistical forecasts (ETS, ARIMA, Theta, MSTL, seasonal naive, Croston) with intervals.",
    instructions=(
        "Call `forecast` with a series and a horizon; `model='auto'` picks a model (or a combination) by "
        "rolling-origin cross-validation and reports every candidate's errors. Use `forecast_batch` for "
        "many series, `backtest` to compare models on past windows and `chart` for a Vega-Lite chart."
    ),
    migrations=MIGRATIONS,
)

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)

Values = Annotated[
    SeriesValues, Field(description="The series, oldest first: numbers, null for a missing value.")
]
Timestamps = Annotated[
    SeriesTimestamps | None,
    Field(description="One per value: ISO 8601 text or Unix epoch seconds. Optional."),
]
Freq = Annotated[
    str | None,
    Field(
        description="pandas frequency alias (h, D, W-SUN, MS...) or hourly, daily, weekly, monthly, "
        "quarterly, yearly; inferred if absent."
    ),
]
Season = Annotated[
    int | None, Field(description="Season length in steps (24 for hourly); inferred if absent.")
]
Model = Annotated[
    str,
    Field(
        description="auto, AutoETS, AutoARIMA, AutoTheta, AutoCES, MSTL, SeasonalNaive, "
        "SeasonalNaive(<season>), Naive, CrostonOptimized, CrostonSBA, TSB, ADIDA or IMAPA"
    ),
]
Levels = Annotated[
    list[int] | None, Field(description="Prediction interval levels in percent; default [80, 95].")
]
NonNegative = Annotated[
    bool | None,
    Field(
        description="Floor the forecast and its intervals at 0 (true), or not (false); default: when "
        "the history never goes below 0 (counts, sales, prices)."
    ),
]
Fill = Annotated[
    str,
    Field(
        description="How skipped steps and null values are filled: 'interpolate' (linearly between "
        "neighbours) or 'zero' (counts and sales, where a step with no record had none)."
    ),
]


def _points(values: object) -> int:
    return len(values) if isinstance(values, list) else 0  # pyright: ignore[reportUnknownArgumentType]


async def _run(
    ctx: Context[ServerRuntime, Any], tool: str, work: Callable[[], dict[str, Any]], series: int, points: int
) -> dict[str, Any]:
    from bastion.timeseries import require_extra

    require_extra("forecast")
    started = time.perf_counter()
    record = RunRecord(tool=tool, series=series, points=points, duration_ms=0.0)
    try:
        result = await anyio.to_thread.run_sync(work)
        record.model = result.get("model")
        return result
    except ConfigError as exc:
        record.error = exc.message
        raise ToolError(exc.message) from None
    finally:
        record.duration_ms = (time.perf_counter() - started) * 1000
        await record_run(ctx.request_context.lifespan_context.database, "forecast", record)


@spec.tool(annotations=READ_ONLY)
async def forecast(
    values: Values,
    horizon: Annotated[int, Field(description="Steps to forecast.")],
    ctx: Context[ServerRuntime, Any],
    timestamps: Timestamps = None,
    freq: Freq = None,
    season_length: Season = None,
    model: Model = "auto",
    levels: Levels = None,
    fill: Fill = "interpolate",
    non_negative: NonNegative = None,
) -> dict[str, Any]:
    """Forecast `horizon` steps with prediction intervals. Returns {model, season_length, freq,
    forecast: [{ds, mean, lower: {"80": ..}, upper: {..}}], cv: {model: {smape, mase}}, skipped,
    warnings}; `ds` is an ISO timestamp when timestamps were given, else the step index."""
    from servers.forecast.engine import ForecastRequest, run_forecast

    request = ForecastRequest(
        values, horizon, timestamps, freq, season_length, model, levels, fill=fill, non_negative=non_negative
    )
    return await _run(ctx, "forecast", lambda: run_forecast(request), 1, _points(values))


@spec.tool(annotations=READ_ONLY)
async def forecast_batch(
    series: Annotated[
        list[dict[str, Any]],
        Field(description="Series to forecast: [{id, values, timestamps?}]."),
    ],
    horizon: Annotated[int, Field(description="Steps to forecast, for every series.")],
    ctx: Context[ServerRuntime, Any],
    freq: Freq = None,
    season_length: Season = None,
    model: Model = "auto",
    levels: Levels = None,
    fill: Fill = "interpolate",
    non_negative: NonNegative = None,
) -> dict[str, Any]:
    """Forecast many series in parallel over the machine's cores. Returns {results: [...]}: per
    series the `forecast` result with its `id`, or {id, error} when that series was unusable."""
    from servers.forecast.batch import run_batch
    from servers.forecast.engine import ForecastRequest

    template = ForecastRequest(
        [], horizon, None, freq, season_length, model, levels, fill=fill, non_negative=non_negative
    )
    points = sum(_points(item.get("values")) for item in series if isinstance(item, dict))  # pyright: ignore[reportUnnecessaryIsInstance]
    return await _run(
        ctx, "forecast_batch", lambda: {"results": run_batch(series, template)}, len(series), points
    )


@spec.tool(annotations=READ_ONLY)
async def backtest(
    values: Values,
    horizon: Annotated[int, Field(description="Steps per backtest window.")],
    ctx: Context[ServerRuntime, Any],
    windows: Annotated[int, Field(description="How many windows at the end of the series (1-20).")] = 3,
    timestamps: Timestamps = None,
    freq: Freq = None,
    season_length: Season = None,
    models: Annotated[
        list[str] | None, Field(description="Models to compare; default: the ones `auto` compares.")
    ] = None,
    fill: Fill = "interpolate",
) -> dict[str, Any]:
    """Rolling-origin backtest: per model, sMAPE and MASE in each of the last `windows` windows of
    `horizon` steps and their mean. Returns {season_length, freq, horizon, windows: [{start,
    train_size}], models: {name: {windows: [{smape, mase}], mean: {smape, mase}}}, skipped, warnings}."""
    from servers.forecast.backtest import run_backtest
    from servers.forecast.engine import ForecastRequest

    request = ForecastRequest(values, horizon, timestamps, freq, season_length, windows=windows, fill=fill)
    return await _run(ctx, "backtest", lambda: run_backtest(request, models), 1, _points(values))


@spec.tool(annotations=READ_ONLY)
async def chart(
    values: Values,
    horizon: Annotated[int, Field(description="Steps to forecast.")],
    ctx: Context[ServerRuntime, Any],
    timestamps: Timestamps = None,
    freq: Freq = None,
    season_length: Season = None,
    model: Model = "auto",
    levels: Levels = None,
    title: Annotated[str | None, Field(description="Chart title; default names the model.")] = None,
    fill: Fill = "interpolate",
    non_negative: NonNegative = None,
) -> dict[str, Any]:
    """A Vega-Lite v5 spec of the history, the forecast and its intervals (data inlined).
    Returns {spec, model, warnings}."""
    from servers.forecast.chart import forecast_chart
    from servers.forecast.engine import ForecastRequest, prepare, run_forecast

    request = ForecastRequest(
        values, horizon, timestamps, freq, season_length, model, levels, fill=fill, non_negative=non_negative
    )

    def work() -> dict[str, Any]:
        result = run_forecast(request)
        series, _, _ = prepare(request)
        history = [float(v) for v in series.values]
        vega = forecast_chart(series.labels(), history, result, title)
        return {"spec": vega, "model": result["model"], "warnings": result["warnings"]}

    return await _run(ctx, "chart", work, 1, _points(values))
