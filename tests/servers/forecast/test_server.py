"""The forecast server through MCP: in process (every tool, errors, run records) and as `bastion serve`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from mcp import Client, StdioServerParameters

from bastion.db.database import Database
from bastion.mcp import ServerRuntime, build_server
from bastion.settings import Settings
from servers.forecast.server import spec
from tests.vega_render import drawn_marks

REPO = Path(__file__).resolve().parents[3]
SERIES = [float(v) for v in 20 + 3 * np.sin(np.arange(72) * 2 * np.pi / 12) + np.arange(72) * 0.05]


@pytest.fixture
async def runtime(settings: Settings, database: Database) -> AsyncIterator[ServerRuntime]:
    async with ServerRuntime.open(spec, settings, transport="stdio", database=database) as opened:
        yield opened


async def _call(runtime: ServerRuntime, tool: str, arguments: dict[str, Any]) -> Any:
    async with Client(build_server(spec, runtime)) as client:
        return await client.call_tool(tool, arguments)


async def test_forecast_returns_the_contract_and_records_the_run(runtime: ServerRuntime) -> None:
    result = await _call(
        runtime, "forecast", {"values": SERIES, "horizon": 4, "season_length": 12, "model": "AutoTheta"}
    )
    assert not result.is_error
    body = result.structured_content
    assert body is not None
    assert set(body) >= {"model", "season_length", "freq", "forecast", "cv", "warnings"}
    assert body["model"] == "AutoTheta"
    assert [p["ds"] for p in body["forecast"]] == [72, 73, 74, 75]
    assert set(body["forecast"][0]["lower"]) == {"80", "95"}
    async with runtime.database.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT tool, subject, series, points, model, error FROM forecast.runs ORDER BY id DESC LIMIT 1"
        )
        row = await cur.fetchone()
    assert row is not None
    assert row[0] == "forecast" and row[1].startswith("local:") and row[2:] == (1, 72, "AutoTheta", None)


async def test_bad_input_is_a_tool_error_with_the_message_and_the_server_keeps_serving(
    runtime: ServerRuntime,
) -> None:
    async with Client(build_server(spec, runtime)) as client:
        bad = await client.call_tool("forecast", {"values": [1.0, 2.0, "x"], "horizon": 1})
        good = await client.call_tool("forecast", {"values": SERIES, "horizon": 2, "model": "Naive"})
    assert bad.is_error
    assert "`values[2]` is 'x' (str), not a number" in bad.content[0].text  # type: ignore[union-attr]
    assert not good.is_error


async def test_batch_backtest_and_chart_answer_through_mcp(runtime: ServerRuntime) -> None:
    async with Client(build_server(spec, runtime)) as client:
        batch = await client.call_tool(
            "forecast_batch",
            {
                "series": [{"id": "a", "values": SERIES}, {"id": "b", "values": [1.0]}],
                "horizon": 2,
                "model": "Naive",
            },
        )
        backtest = await client.call_tool(
            "backtest", {"values": SERIES, "horizon": 6, "windows": 2, "models": ["Naive", "SeasonalNaive"]}
        )
        chart = await client.call_tool("chart", {"values": SERIES, "horizon": 3, "model": "Naive"})
    assert batch.structured_content is not None
    results = batch.structured_content["results"]
    assert results[0]["id"] == "a" and "forecast" in results[0] and "error" in results[1]
    assert backtest.structured_content is not None
    assert set(backtest.structured_content["models"]) == {"Naive", "SeasonalNaive"}
    assert chart.structured_content is not None
    assert chart.structured_content["spec"]["$schema"].startswith(
        "https://vega.github.io/schema/vega-lite/v5"
    )
    # Vega-Lite draws it: the history and the 3 forecast steps as lines, and the 80% and
    # 95% intervals as bands over those steps.
    assert drawn_marks(chart.structured_content["spec"]) == {"line": len(SERIES) + 3, "area": 2 * 3}


async def test_fill_reaches_every_tool_and_a_wrong_one_is_refused(runtime: ServerRuntime) -> None:
    # One row per day with a sale, as a GROUP BY over a sales table returns them.
    days = [f"2024-01-{d:02d}" for d in (1, 2, 5, 6, 9, 12, 13, 16, 20, 23, 26, 27, 30)]
    sales = [3.0, 1.0, 2.0, 4.0, 1.0, 2.0, 3.0, 1.0, 5.0, 2.0, 1.0, 2.0, 3.0]
    common = {"values": sales, "timestamps": days, "horizon": 3, "fill": "zero"}
    async with Client(build_server(spec, runtime)) as client:
        forecast = await client.call_tool("forecast", {**common, "model": "CrostonSBA"})
        batch = await client.call_tool(
            "forecast_batch",
            {"series": [{"id": "a", "values": sales, "timestamps": days}], "horizon": 3, "fill": "zero"},
        )
        backtest = await client.call_tool("backtest", {**common, "windows": 1, "models": ["Naive"]})
        chart = await client.call_tool("chart", {**common, "model": "Naive"})
        wrong = await client.call_tool("forecast", {**common, "fill": "previous"})
    filled = "17 steps were missing from the timestamps (first at 2024-01-03T00:00:00) and were filled with 0"
    for result in (forecast, backtest, chart):
        assert result.structured_content is not None
        assert any(filled in w for w in result.structured_content["warnings"])
    assert batch.structured_content is not None
    assert any(filled in w for w in batch.structured_content["results"][0]["warnings"])
    assert forecast.structured_content is not None
    assert 0 < forecast.structured_content["forecast"][0]["mean"] < 2  # 38 sold in 30 days
    assert wrong.is_error and "`fill` 'previous' is not one of: interpolate, zero" in wrong.content[0].text  # type: ignore[union-attr]


async def test_non_negative_reaches_forecast_batch_and_chart(runtime: ServerRuntime) -> None:
    # A weekly cycle of counts that touches zero: the default floors the forecast at 0.
    counts = [0.0, 1.0, 5.0, 9.0, 5.0, 1.0, 0.0] * 6 + [0.0, 2.0, 6.0, 8.0, 4.0, 2.0, 1.0]
    common = {"values": counts, "horizon": 7, "season_length": 7, "model": "SeasonalNaive"}
    batch_of = {
        "series": [{"id": "a", "values": counts}],
        "horizon": 7,
        "season_length": 7,
        "model": "SeasonalNaive",
    }
    async with Client(build_server(spec, runtime)) as client:
        results = {
            non_negative: (
                await client.call_tool("forecast", {**common, "non_negative": non_negative}),
                await client.call_tool("forecast_batch", {**batch_of, "non_negative": non_negative}),
                await client.call_tool("chart", {**common, "non_negative": non_negative}),
            )
            for non_negative in (None, False)
        }
    for non_negative, (forecast, batch, chart) in results.items():
        assert forecast.structured_content and batch.structured_content and chart.structured_content
        warned = any("never goes below 0" in w for w in forecast.structured_content["warnings"])
        lowest = min(p["lower"]["95"] for p in forecast.structured_content["forecast"])
        assert (warned, lowest >= 0) == (non_negative is None, non_negative is None)
        assert batch.structured_content["results"][0]["forecast"] == forecast.structured_content["forecast"]
        assert chart.structured_content["warnings"] == forecast.structured_content["warnings"]


def test_loading_the_spec_imports_no_numeric_stack() -> None:
    code = (
        "import sys, servers.forecast.server; "
        "print(sorted({'numpy', 'pandas', 'statsforecast'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


async def test_bastion_serve_forecast_over_stdio_forecasts(shared_home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_") and k != "DATABASE_URL"}
    env["BASTION_HOME"] = str(shared_home)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "bastion.cli", "serve", "forecast", "--transport", "stdio"],
        env=env,
        cwd=str(REPO),
    )
    with anyio.fail_after(120):
        async with Client(params) as client:
            tools = await client.list_tools()
            result = await client.call_tool("forecast", {"values": SERIES, "horizon": 3, "season_length": 12})
    assert {t.name for t in tools.tools} == {"forecast", "forecast_batch", "backtest", "chart"}
    assert not result.is_error
    assert result.structured_content is not None
    assert len(result.structured_content["forecast"]) == 3
    assert result.structured_content["model"] in result.structured_content["cv"]
